using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class ConvOpTests
{
    private static string ConvRelu(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
        .Weight("W", new long[] { 4, 3, 3, 3 }).Weight("B", new long[] { 4 }, 0.2f)
        .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1), TinyModel.Ints("kernel_shape", 3, 3))
        .Node("Relu", new[] { "C" }, new[] { "Y" })
        .Save(directory.Path);

    [TestMethod]
    public void ConvWithReluGetsQdqOnInputAndFusedOutputAndInt8Weights()
    {
        using var directory = new TempDirectory();
        var run = QuantizedRun.Of(ConvRelu(directory), ml => TinyData.X(ml, TinyData.Normal(64, 3 * 64), 3 * 64), "Y");

        Assert.AreEqual(2, run.Count("QuantizeLinear"), "Q on the input and on the (Relu-fused) output");
        Assert.AreEqual(4, run.Count("DequantizeLinear"), "DQ on input, output, weight, bias");
        Assert.AreEqual(0, run.Count("Relu"), "the Relu is folded into the uint8 output quantization");
        var weightDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("W"));
        Assert.AreEqual(0L, weightDq.Attribute.Single(a => a.Name == "axis").I, "per output channel");
        Assert.AreEqual(MLNet.Quantization.Onnx.Tensors.Int8, run.Int8Model.FindInitializer(weightDq.Input[0])!.DataType);
        var biasDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("B"));
        Assert.AreEqual(MLNet.Quantization.Onnx.Tensors.Int32, run.Int8Model.FindInitializer(biasDq.Input[0])!.DataType);

        var bias = run.Table.Find("B", TensorRole.Bias)!;
        var weight = run.Table.Find("W", TensorRole.Weight)!;
        Assert.AreEqual(4, weight.ChannelScales.Count);
        for (int c = 0; c < 4; c++)
            Assert.AreEqual(run.Scale("X") * weight.ChannelScales[c], bias.ChannelScales[c], "bias scale = input scale × weight scale");

        Assert.IsTrue(run.Float.SelectMany(r => r).All(v => v >= 0), "the float model ends in a Relu");
        Assert.IsTrue(run.Int8.SelectMany(r => r).All(v => v >= 0), "the fused Relu still clamps at zero");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
        float step = run.Scale("Y");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Float, run.Int8) < 6 * step, $"int8 within 6 output steps ({TinyData.MaxAbsDifference(run.Float, run.Int8)} vs step {step})");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= 1.01 * step, "simulated and int8 differ by at most one rounding step");
    }

    [TestMethod]
    public void PerTensorWeightsGetOneScale()
    {
        using var directory = new TempDirectory();
        var run = QuantizedRun.Of(ConvRelu(directory), ml => TinyData.X(ml, TinyData.Normal(16, 3 * 64), 3 * 64), "Y", perChannel: false);

        var weightDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("W"));
        Assert.IsFalse(weightDq.Attribute.Any(a => a.Name == "axis"));
        Assert.AreEqual(0, run.Table.Find("W", TensorRole.Weight)!.ChannelScales.Count);
        Assert.IsTrue(run.MinCosine > 0.995, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void AClipFromZeroFoldsIntoTheOutputQuantizationLikeARelu()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 3, 3, 3 }).Weight("W2", new long[] { 4, 4, 1, 1 })
            .Constant("zero", Array.Empty<long>(), new[] { 0f }).Constant("six", Array.Empty<long>(), new[] { 0.6f })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Clip", new[] { "C", "zero", "six" }, new[] { "R" })
            .Node("Conv", new[] { "R", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 192), 192), "Y");

        Assert.AreEqual(0, run.Count("Clip"), "Clip(0, 0.6) folds into the uint8 quantization of the Conv's output");
        var r = run.Table.Find("R", TensorRole.Activation)!;
        Assert.AreEqual(0, r.ZeroPoint);
        Assert.IsTrue(r.Threshold <= 0.6f, $"the range {r.Threshold} stays within the Clip");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void DepthwiseWeightsUseTheFullRangeAndStillAgreeWithTheSimulation()
    {
        // A depthwise Conv of positive 3×3 weights (the two largest of a channel sum to about 2× the largest), then a
        // pointwise Conv, on positive activations that reach uint8 255. The pair bound would give the depthwise weights
        // |q| ≤ 64; ONNX Runtime's depthwise kernels widen each product to int32 alone, so they take the full 127 and
        // the realized model still equals the simulated one (under the AVX2 emulation too, where paired products of
        // these magnitudes, 255 × (127 + 120), would saturate int16). The pointwise Conv keeps the bound.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16, 12, 12).Output("Y", 1, 4, 12, 12)
            .Weight("W", new long[] { 16, 1, 3, 3 }, 0.5f, offset: 0.6f).Weight("B", new long[] { 16 }, 0.1f)
            .Weight("W2", new long[] { 4, 16, 1, 1 }, 0.5f, offset: 0.6f)
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "D" }, TinyModel.Ints("pads", 1, 1, 1, 1), TinyModel.Int("group", 16))
            .Node("Conv", new[] { "D", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 16 * 144, mean: 3), 16 * 144), "Y");

        var depthwise = run.Table.Find("W", TensorRole.Weight)!;
        var pointwise = run.Table.Find("W2", TensorRole.Weight)!;
        Assert.AreEqual(0, depthwise.LargestPairSum, "the depthwise weights are not bound by pairs");
        Assert.IsTrue(pointwise.LargestPairSum is > 64 and <= 128, $"the pointwise weights keep the pair bound: {pointwise.LargestPairSum}");
        var dq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("W_", StringComparison.Ordinal));
        var q = run.Int8Model.FindInitializer(dq.Input[0])!.RawData.ToByteArray().Select(b => (sbyte)b).ToArray();
        for (int c = 0; c < 16; c++)
            Assert.AreEqual(127, q.Skip(9 * c).Take(9).Max(v => Math.Abs((int)v)), $"channel {c} reaches the full range");
        Assert.IsTrue(MLNet.Quantization.Calibration.WeightQuantizer.LargestPairSum(q, new long[] { 16, 1, 3, 3 }, 0) > 200,
            "pairs that the u8s8 GEMM kernels of CPUs without VNNI would saturate");
        Assert.IsTrue(run.Scale("D") > 0 && run.Float.Length == 32);

        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} output values");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }
}
