using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class OutputValuesTests
{
    // A classifier that outputs only its label: y = ArgMax(x·W), with W's four columns so close that int8's rounding of
    // the weights and of x changes which one wins on many rows.
    private static string LabelOnly(TempDirectory directory)
    {
        var random = new Random(5);
        var w = new float[16 * 4];
        for (int i = 0; i < 16; i++)
        {
            float shared = (float)(random.NextDouble() * 2 - 1);
            for (int j = 0; j < 4; j++) w[i * 4 + j] = shared + (float)(random.NextDouble() - 0.5) * 0.004f;
        }
        var model = new TinyModel().Input("X", 1, 16).TypedOutput("L", Tensors.Int64, 1)
            .Node("MatMul", new[] { "X", "W" }, new[] { "S" })
            .Node("ArgMax", new[] { "S" }, new[] { "L" }, TinyModel.Int("axis", 1), TinyModel.Int("keepdims", 0));
        model.Graph.Initializer.Add(Tensors.FromFloats("W", new long[] { 16, 4 }, w));
        return model.Save(directory.Path);
    }

    [TestMethod]
    public void IntegerOutputsAreComparedByEquality()
    {
        float[][] f = { new[] { 1f, 2f, 3f, 4f }, new[] { 7f } };
        float[][] q = { new[] { 1f, 2f, 0f, 4f }, new[] { 7f } };
        var equal = OutputCosine.Over(f, q, new[] { 0, 1 }, exact: true);
        Assert.AreEqual((0.75 + 1) / 2, equal.Mean, 1e-12);
        Assert.AreEqual(0.75, equal.Worst, 1e-12);
        Assert.AreEqual(1 / 5.0, equal.Differing, 1e-12, "one value of five differs");
        Assert.IsFalse(equal.OneValuePerRow);
        CollectionAssert.AreEqual(new[] { 0.75, 1.0 }, OutputCosine.PerRow(f, q, exact: true));
        Assert.AreEqual(1.0, OutputCosine.Over(f, f, new[] { 0, 1 }, exact: true).Mean);
    }

    [TestMethod]
    public void ALabelOnlyOutputIsMeasuredAndItsChangedLabelsAreSeen()
    {
        using var directory = new TempDirectory();
        var model = LabelOnly(directory);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(200, 16), 16);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = model, MinimumSpeedup = 0, MaximumOutputError = null,
        }).Fit(data);
        var label = fitted.Deployment!.Outputs.SingleOrDefault();
        Assert.IsNotNull(label, "an int64 output is compared, not skipped as a non-float one");
        Assert.AreEqual("L", label.Name);
        Assert.IsTrue(label.ComparedByEquality);
        Assert.IsTrue(label.MeanCosine is > 0 and < 1, $"int8 changes labels on this model: {label}");
        Assert.AreEqual(1 - label.MeanCosine, label.RelativeError, 1e-12, "one label per row: the share of rows changed");
        Assert.AreEqual(0.0, label.WorstCosine, "a row whose one label changed");
        // The tuner scores the same: the share of held-back labels kept.
        var tuning = fitted.Tuning!;
        StringAssert.Contains(tuning.Objective, "values equal", tuning.ToCsv());
        Assert.IsTrue(tuning.Trials.Where(t => t.Skipped is null).All(t => t.Score is >= 0 and <= 1), tuning.ToCsv());
        Assert.IsTrue(tuning.Trials.Any(t => t.Score < 1), tuning.ToCsv());
    }

    [TestMethod]
    public void TheErrorBoundSendsLayersBackUntilFewerLabelsChange()
    {
        using var directory = new TempDirectory();
        var model = LabelOnly(directory);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(200, 16), 16);
        QuantizingTransformer Fit(double? bound) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = model, MinimumSpeedup = 0, MaximumOutputError = bound, Tuning = null,
        }).Fit(data);
        using var unbounded = Fit(null);
        double changed = unbounded.Deployment!.Outputs.Single().RelativeError;
        Assert.IsTrue(changed > 0.05, $"the model changes more than 5% of its labels in int8: {unbounded.Deployment}");
        using var bounded = Fit(0.05);
        var output = bounded.Deployment!.Outputs.Single();
        Assert.IsTrue(output.RelativeError <= 0.05, $"{output}\n{bounded.Deployment}");
        Assert.IsTrue(bounded.Deployment.FloatNodes.Count > 0 || bounded.Deployment.KeptFloat, bounded.Deployment.ToString());
    }
}
