using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Realize;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class ErrorMeasurementTests
{
    [TestMethod]
    public void TheWorstOutputDecidesNotTheirConcatenation()
    {
        // Output 0 is large and exact; output 1 is small and points the other way half the time: concatenated, the
        // large one would hide it (cosine ≈ 1).
        var cosines = new OutputComparisons(new[] { "large", "small" });
        for (int row = 0; row < 4; row++)
        {
            var large = Enumerable.Range(0, 64).Select(i => 100f + i).ToArray();
            var small = new[] { 0.01f, 0.02f, 0.03f };
            var wrong = row % 2 == 0 ? small : small.Select(v => -v).ToArray();
            using var a = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(large.ToArray(), new long[] { 64 });
            using var b = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(wrong, new long[] { 3 });
            cosines.Add(new float[]?[] { large, small }, new[] { a, b });
        }
        Assert.AreEqual(4, cosines.Rows);
        Assert.AreEqual(0, cosines.Worst, 1e-6, "the small output's rows average cosine 1 and −1");
    }

    [TestMethod]
    public void TheFallbacksCosineIsTheSameFromKeptOutputsAndPastTheirBudget()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16).Output("Y", 1, 8)
            .Weight("W", new long[] { 16, 8 }).Node("MatMul", new[] { "X", "W" }, new[] { "Y" }).Save(directory.Path);
        var context = Contexts.For(model, TinyData.X(new MLContext(seed: 1), TinyData.Normal(40, 16), 16))
            .Run(new AnnotatePass(), new ActivationStatisticsPass(), new CalibratePass(), new RealizePass());
        var kept = new FloatOutputs();
        var none = new FloatOutputs(budget: 0);
        var measured = ErrorMeasurement.Measure(context.Model, context.Realized, context.Dequantized, context.Realized, context.Data, context.Settings, context.Plan, kept);
        ErrorMeasurement.Measure(context.Model, context.Realized, context.Dequantized, context.Realized, context.Data, context.Settings, context.Plan, none);
        Assert.IsTrue(kept.Complete);
        Assert.IsFalse(none.Complete, "a budget of 0 bytes keeps nothing");
        Assert.IsTrue(measured.OutputCosine is > 0.9 and < 1, $"{measured.OutputCosine}");
        Assert.AreEqual(measured.OutputCosine, ErrorMeasurement.DeployedCosine(context.Model, context.Realized, kept, context.Data, context.Settings), 1e-9);
        Assert.AreEqual(measured.OutputCosine, ErrorMeasurement.DeployedCosine(context.Model, context.Realized, none, context.Data, context.Settings), 1e-9,
            "past the budget the float model runs again, with the same result");
    }
}
