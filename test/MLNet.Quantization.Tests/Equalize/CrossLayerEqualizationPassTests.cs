using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Equalize;

[TestClass]
public sealed class CrossLayerEqualizationPassTests
{
    // Channel c of the first Conv's weights is scaled by Imbalance[c]: per-tensor int8 weights then lose the small channels.
    private static readonly float[] Imbalance = { 20f, 1f, 0.05f, 0.3f };

    private static float[] Weights(int seed, long[] dims, Func<int, float> scaleOfRow)
    {
        var random = new Random(seed);
        int rows = (int)dims[0], inner = (int)(dims.Aggregate(1L, (a, d) => a * d) / rows);
        return Enumerable.Range(0, rows * inner).Select(i => scaleOfRow(i / inner) * (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    // X → Conv(3→4, 3×3) → Relu → Conv(4→4, 1×1) → Y.
    internal static string Chain(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
        .Constant("W1", new long[] { 4, 3, 3, 3 }, Weights(1, new long[] { 4, 3, 3, 3 }, c => Imbalance[c]))
        .Constant("B1", new long[] { 4 }, new[] { 0.5f, 0.1f, 0.01f, 0.05f })
        // Input channel c of the second Conv is scaled by 1 / Imbalance[c], so that every channel matters to Y.
        .Constant("W2", new long[] { 4, 4, 1, 1 }, Weights(2, new long[] { 16, 1 }, i => 0.5f / Imbalance[i % 4]))
        .Node("Conv", new[] { "X", "W1", "B1" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C" }, new[] { "R" })
        .Node("Conv", new[] { "R", "W2" }, new[] { "Y" })
        .Save(directory.Path, "chain.onnx");

    // X → Conv(3→4) → Relu → depthwise Conv(4 groups, 3×3) → Relu → Conv(4→4, 1×1) → Y: two pairs, one depthwise at each end.
    private static string Depthwise(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
        .Constant("W1", new long[] { 4, 3, 1, 1 }, Weights(3, new long[] { 4, 3, 1, 1 }, c => Imbalance[c]))
        .Constant("W2", new long[] { 4, 1, 3, 3 }, Weights(4, new long[] { 4, 1, 3, 3 }, c => Imbalance[3 - c]))
        .Constant("B2", new long[] { 4 }, new[] { 0.1f, 0.2f, 0.3f, 0.4f })
        .Constant("W3", new long[] { 4, 4, 1, 1 }, Weights(5, new long[] { 4, 4, 1, 1 }, _ => 1f))
        .Node("Conv", new[] { "X", "W1" }, new[] { "C1" })
        .Node("Relu", new[] { "C1" }, new[] { "R1" })
        .Node("Conv", new[] { "R1", "W2", "B2" }, new[] { "C2" }, TinyModel.Ints("pads", 1, 1, 1, 1), TinyModel.Int("group", 4))
        .Node("Relu", new[] { "C2" }, new[] { "R2" })
        .Node("Conv", new[] { "R2", "W3" }, new[] { "Y" })
        .Save(directory.Path, "depthwise.onnx");

    private static float[][] Score(MLContext ml, string model, IDataView rows) =>
        TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");

    [TestMethod]
    public void EqualizationIsAnExactRescalingThatEvensTheChannelRanges()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(16, 192), 192);
        foreach (var (path, pairs) in new[] { (Chain(directory), 1), (Depthwise(directory), 2) })
        {
            var graph = GraphPreparation.Prepare(OnnxGraph.Load(path));
            Assert.AreEqual(pairs, CrossLayerEqualizationPass.Equalize(graph), $"{Path.GetFileName(path)}: pairs found");
            Assert.IsTrue(graph.IndexIsCurrent());
            var equalized = directory.File("equalized-" + Path.GetFileName(path));
            File.WriteAllBytes(equalized, graph.ToBytes());
            var before = Score(ml, path, rows);
            var after = Score(ml, equalized, rows);
            float scale = before.SelectMany(r => r).Max(Math.Abs);
            Assert.IsTrue(TinyData.MaxAbsDifference(before, after) < 1e-5f * scale,
                $"{Path.GetFileName(path)}: the float function is unchanged ({TinyData.MaxAbsDifference(before, after)} of {scale})");

            // After equalization, each channel of the first Conv and the matching input channel of the second share one range.
            var convs = graph.Graph.Node.Where(n => n.OpType == "Conv").ToList();
            var w1 = graph.FindInitializer(convs[0].Input[1])!;
            var w2 = graph.FindInitializer(convs[1].Input[1])!;
            var (v1, v2) = (Tensors.ReadFloats(w1), Tensors.ReadFloats(w2));
            int inner1 = v1.Length / 4, perGroup = (int)w2.Dims[1], kernel = v2.Length / (4 * perGroup);
            for (int c = 0; c < 4; c++)
            {
                float r1 = v1.Skip(c * inner1).Take(inner1).Max(Math.Abs);
                float r2 = perGroup == 1 ? v2.Skip(c * kernel).Take(kernel).Max(Math.Abs)
                    : Enumerable.Range(0, 4).SelectMany(m => v2.Skip((m * perGroup + c) * kernel).Take(kernel)).Max(Math.Abs);
                if (pairs == 1) Assert.AreEqual(1.0, r1 / r2, 0.01, $"channel {c}: ranges {r1} and {r2}");
            }
        }
    }

    [TestMethod]
    public void EqualizationLowersThePerTensorWeightError()
    {
        using var directory = new TempDirectory();
        var model = Chain(directory);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(64, 192), 192);
        var reference = Score(ml, model, rows);
        double Error(bool equalize)
        {
            using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
            {
                CheckDeployment = false, Tuning = null, ModelFile = model, PerChannelWeights = false, CrossLayerEqualization = equalize,
            }).Fit(rows);
            var output = TinyData.Column(fitted.Transform(rows), "Y");
            return reference.Zip(output, (a, b) => a.Zip(b, (u, v) => (double)(u - v) * (u - v)).Sum()).Sum()
                / reference.Sum(r => r.Sum(u => (double)u * u));
        }
        double plain = Error(false), equalized = Error(true);
        Assert.IsTrue(equalized < 0.5 * plain, $"relative squared error: {equalized:G4} with equalization, {plain:G4} without");
    }

    [TestMethod]
    public void ChainsWithOtherReadersOrNonHomogeneousActivationsAreLeftAlone()
    {
        using var directory = new TempDirectory();
        var clip = new TinyModel().Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8).Output("C", 1, 4, 8, 8)
            .Weight("W1", new long[] { 4, 3, 1, 1 }).Weight("W2", new long[] { 4, 4, 1, 1 })
            .Constant("zero", Array.Empty<long>(), new[] { 0f }).Constant("six", Array.Empty<long>(), new[] { 6f })
            .Node("Conv", new[] { "X", "W1" }, new[] { "C" })
            .Node("Clip", new[] { "C", "zero", "six" }, new[] { "R" })
            .Node("Conv", new[] { "R", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var graph = GraphPreparation.Prepare(OnnxGraph.Load(clip));
        Assert.AreEqual(0, CrossLayerEqualizationPass.Equalize(graph), "Clip(0, 6) is not homogeneous, and C is a graph output");
    }
}
