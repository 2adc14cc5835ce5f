using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Equalize;

[TestClass]
public sealed class SmoothQuantPassTests
{
    // X (16 channels, two of them outliers ×40) → MatMul W1 → Y1, and X → MatMul W2 → Y2 (one group, shared smoothing).
    // W2 sits in a Constant node, as PaddleOCR keeps its weights.
    internal static string TwoMatMuls(TempDirectory directory)
    {
        var random = new Random(4);
        var w2 = MLNet.Quantization.Onnx.Tensors.FromFloats("W2", new long[] { 16, 8 },
            Enumerable.Range(0, 128).Select(_ => 0.2f * (float)(random.NextDouble() * 2 - 1)).ToArray());
        return new TinyModel()
            .Input("X", 4, 16).Output("Y1", 4, 8).Output("Y2", 4, 8)
            .Weight("W1", new long[] { 16, 8 })
            .Node("Constant", Array.Empty<string>(), new[] { "W2" },
                new global::Onnx.AttributeProto { Name = "value", Type = global::Onnx.AttributeProto.Types.AttributeType.Tensor, T = w2 })
            .Node("MatMul", new[] { "X", "W1" }, new[] { "Y1" })
            .Node("MatMul", new[] { "X", "W2" }, new[] { "Y2" })
            .Save(directory.Path);
    }

    internal static IDataView Outliers(MLContext ml, int rows = 64) =>
        TinyData.X(ml, TinyData.Normal(rows, 64).Select(r => r.Select((v, i) => i % 16 < 2 ? 40 * v : v).ToArray()).ToArray(), 64);

    [TestMethod]
    public void SmoothingKeepsTheFloatFunctionAndSharesOneMulPerActivation()
    {
        using var directory = new TempDirectory();
        var model = TwoMatMuls(directory);
        var ml = new MLContext(seed: 1);
        var rows = Outliers(ml);
        var context = Contexts.For(model, rows).Run(new SmoothQuantPass(0.5));
        Assert.AreEqual(1, context.Model.Graph.Node.Count(n => n.OpType == "Mul"), "one Mul serves both MatMuls that read X");
        Assert.IsTrue(context.Model.Graph.Node.Where(n => n.OpType == "MatMul").All(n => n.Input[0] != "X"), "both read the smoothed X");
        Assert.IsFalse(context.Model.Graph.Node.Any(n => n.OpType == "Constant"), "the Constant node's weight was rescaled into an initializer");
        var smoothed = context.SaveModel(directory.File("smoothed.onnx"));
        foreach (var output in new[] { "Y1", "Y2" })
        {
            var before = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), output);
            var after = TinyData.Column(ml.Transforms.ApplyOnnxModel(smoothed).Fit(rows).Transform(rows), output);
            float scale = before.SelectMany(r => r).Max(Math.Abs);
            Assert.IsTrue(TinyData.MaxAbsDifference(before, after) < 1e-5f * scale, $"{output}: the float function is unchanged");
        }
    }

    [TestMethod]
    public void SmoothingLowersTheErrorOfOutlierActivations()
    {
        using var directory = new TempDirectory();
        var model = TwoMatMuls(directory);
        var ml = new MLContext(seed: 1);
        var rows = Outliers(ml);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y1");
        double Error(double? alpha)
        {
            using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = model, SmoothQuantAlpha = alpha }).Fit(rows);
            var output = TinyData.Column(fitted.Transform(rows), "Y1");
            return reference.Zip(output, (a, b) => a.Zip(b, (u, v) => (double)(u - v) * (u - v)).Sum()).Sum()
                / reference.Sum(r => r.Sum(u => (double)u * u));
        }
        double plain = Error(null), smoothed = Error(0.5);
        Assert.IsTrue(smoothed < 0.5 * plain, $"relative squared error: {smoothed:G4} smoothed, {plain:G4} without");
    }

    [TestMethod]
    public void AfterSmoothingOnlyTheSmoothedTensorsAreCollectedAndTheOthersKeepTheStatisticsOfBefore()
    {
        // X → MatMul W1 → H → Relu → R → MatMul W3 → M, and Z = H · Mᵀ, as attention multiplies two activations: the
        // inputs of that MatMul (H and Mᵀ) keep their values when the MatMuls with weights are smoothed, and those read new,
        // smoothed tensors.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 4, 16).Output("Z", 4, 4)
            .Weight("W1", new long[] { 16, 8 }).Weight("W3", new long[] { 8, 8 })
            .Node("MatMul", new[] { "X", "W1" }, new[] { "H" })
            .Node("Relu", new[] { "H" }, new[] { "R" })
            .Node("MatMul", new[] { "R", "W3" }, new[] { "M" })
            .Node("Transpose", new[] { "M" }, new[] { "T" })
            .Node("MatMul", new[] { "H", "T" }, new[] { "Z" })
            .Save(directory.Path);
        var rows = Outliers(new MLContext(seed: 1));
        var root = Contexts.For(model, rows);
        var before = root.Fork(root.Settings, cloneModel: false);
        QuantizationPipeline.Run(before, new IQuantizationPass[] { new AnnotatePass(), new ActivationStatisticsPass() });
        var settings = root.Settings with { Equalization = root.Settings.Equalization with { SmoothQuantAlpha = 0.8 } };
        var steps = QuantizationPipeline.Recipe(settings);
        QuantizationContext Smoothed()
        {
            var context = before.Fork(settings, cloneModel: true);
            QuantizationPipeline.Run(context, steps.Single(s => s.Name == "SmoothQuant"));
            QuantizationPipeline.Run(context, steps.Single(s => s.Name == "statistics"));
            return context;
        }
        var smoothed = Smoothed();

        // The same rewritten model, collected from scratch.
        var fresh = Contexts.For(smoothed.SaveModel(directory.File("smoothed.onnx")), rows);
        QuantizationPipeline.Run(fresh, new IQuantizationPass[] { new AnnotatePass(), new ActivationStatisticsPass() });
        var expected = fresh.Statistics.Tensors.ToDictionary(t => t.Tensor);
        var actual = smoothed.Statistics.Tensors.ToDictionary(t => t.Tensor);
        CollectionAssert.AreEquivalent(expected.Keys.ToList(), actual.Keys.ToList(), "the same tensors are described");
        foreach (var (tensor, e) in expected)
        {
            var a = actual[tensor];
            double tolerance = 1e-5 * Math.Max(1, e.AbsMax);
            Assert.AreEqual(e.Min, a.Min, tolerance, tensor);
            Assert.AreEqual(e.Max, a.Max, tolerance, tensor);
            Assert.AreEqual(e.MeanSampleMax, a.MeanSampleMax, tolerance, tensor);
            Assert.AreEqual(e.Node, a.Node, $"{tensor}: attributed to the node that reads it in the rewritten model");
        }
        var kept = before.Statistics.Tensors.Select(t => t.Tensor).Intersect(actual.Keys).ToList();
        var added = actual.Keys.Except(kept).ToList();
        Assert.IsTrue(kept.Count > 0 && added.Count > 0 && added.All(t => t.EndsWith("_smoothed", StringComparison.Ordinal)),
            $"kept {string.Join(", ", kept)}; added {string.Join(", ", added)}");
        // Marked, so that a later collection given them as known counts over them widened (StatisticsCollector.RangeSlack).
        Assert.IsTrue(kept.All(t => actual[t].ReadOnAnotherModel), "the kept tensors' ranges were read on the model before the rewrite");
        Assert.IsTrue(added.All(t => actual[t].ReadOnAnotherModel), "the smoothed tensors' ranges were derived from X's extremes before the rewrite");
        Assert.IsTrue(fresh.Statistics.Tensors.All(t => !t.ReadOnAnotherModel), "a collection from scratch reads every range on its model");

        // Taken, not streamed: a kept tensor's range altered before the rewrite comes out of the rewritten model's statistics.
        var altered = before.Statistics.Tensors.First(t => kept.Contains(t.Tensor));
        altered.Restore(altered.Min, altered.Max + 1000, altered.Count);
        var again = Smoothed().Statistics.Tensors.ToDictionary(t => t.Tensor);
        Assert.AreEqual(altered.Max, again[altered.Tensor].Max, $"{altered.Tensor} comes from the statistics of before");
        foreach (var tensor in added)
            Assert.AreEqual(actual[tensor].Max, again[tensor].Max, $"{tensor} is collected on the rewritten model");
    }

    [TestMethod]
    public void AlphaOutsideZeroToOneIsRefused()
    {
        using var directory = new TempDirectory();
        var options = new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = TwoMatMuls(directory), SmoothQuantAlpha = 1.5 };
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MLContext().Transforms.QuantizeCalibrated(options).Fit(Outliers(new MLContext(), 4)));
        Assert.AreEqual(nameof(QuantizingEstimator.Options.SmoothQuantAlpha), error.ParamName);
    }
}
