using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class Int8EmitterTests
{
    // X → Conv_0 (3×3) → T → Conv_1 or Gemm (kept float) → U → Conv/Gemm (quantized) → Y. The float node's weights
    // span a wide range (one of 50, the others within ±1): quantized per tensor in int8, as ONNX Runtime would do to a
    // float Conv or Gemm that reads a DequantizeLinear, the small ones lose up to a fifth of their value.
    private static string FloatNodeBetweenQuantizedOnes(TempDirectory directory, string floatOp)
    {
        var model = new TinyModel().Input("X", 1, 4, 6, 6).Output("Y", 1, 2, 6, 6);
        var wide = Enumerable.Range(0, 16).Select(i => i == 5 ? 50f : (float)Math.Sin(i * 1.7)).ToArray();
        model.Weight("W0", new long[] { 4, 4, 3, 3 }).Weight("W2", new long[] { 2, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W0" }, new[] { "T" }, TinyModel.Ints("pads", 1, 1, 1, 1));
        if (floatOp == "Conv")
        {
            model.Constant("W1", new long[] { 4, 4, 1, 1 }, wide).Constant("B1", new long[] { 4 }, new[] { 0.1f, -0.2f, 0.3f, 0 })
                .Node("Conv", new[] { "T", "W1", "B1" }, new[] { "U" })
                .Node("Conv", new[] { "U", "W2" }, new[] { "Y" });
        }
        else
        {
            // T as 36 rows of 4 channels: Transpose → Reshape → Gemm → Reshape → Transpose back.
            model.Constant("W1", new long[] { 4, 4 }, wide).Constant("B1", new long[] { 4 }, new[] { 0.1f, -0.2f, 0.3f, 0 })
                .Graph.Initializer.Add(Tensors.FromLongs("rows", new long[] { 2 }, new long[] { 36, 4 }));
            model.Graph.Initializer.Add(Tensors.FromLongs("image", new long[] { 4 }, new long[] { 1, 6, 6, 4 }));
            model.Node("Transpose", new[] { "T" }, new[] { "Tt" }, TinyModel.Ints("perm", 0, 2, 3, 1))
                .Node("Reshape", new[] { "Tt", "rows" }, new[] { "Tr" })
                .Node("Gemm", new[] { "Tr", "W1", "B1" }, new[] { "Ur" })
                .Node("Reshape", new[] { "Ur", "image" }, new[] { "Ut" })
                .Node("Transpose", new[] { "Ut" }, new[] { "U" }, TinyModel.Ints("perm", 0, 3, 1, 2))
                .Node("Conv", new[] { "U", "W2" }, new[] { "Y" });
        }
        return model.Save(directory.Path);
    }

    [TestMethod]
    [DataRow("Conv")]
    [DataRow("Gemm")]
    public void AFloatConvOrGemmBetweenQuantizedNodesStaysFloat(string floatOp)
    {
        using var directory = new TempDirectory();
        var model = FloatNodeBetweenQuantizedOnes(directory, floatOp);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(24, 144), 144);
        var kept = floatOp == "Conv" ? "Conv_1" : "Gemm_3";
        var outputs = new Dictionary<QuantizationMode, float[][]>();
        foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
        {
            using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
            {
                ModelFile = model, Mode = mode, CheckDeployment = false, Tuning = null, ExcludeNodes = new[] { kept },
            }).Fit(rows);
            Assert.IsNotNull(fitted.Calibration.Find(floatOp == "Conv" ? "T" : "Tr", TensorRole.Activation), $"{mode}: the float node's input is quantized");
            outputs[mode] = TinyData.Column(fitted.Transform(rows), "Y");
            if (mode != QuantizationMode.Int8) continue;
            fitted.ExportOnnx(directory.File("int8.onnx"));
            var graph = OnnxGraph.Load(directory.File("int8.onnx"));
            var node = graph.FindNode(kept)!;
            Assert.AreEqual("W1", node.Input[1], "the kept node's weights stay float");
            Assert.AreNotEqual("DequantizeLinear", graph.Producer(node.Input[0])?.OpType,
                "a DequantizeLinear in front of it would let ONNX Runtime quantize its weights per tensor");
            Assert.AreEqual("DequantizeLinear", graph.Producer(graph.Graph.Node.Last(n => n.OpType == "Conv").Input[0])?.OpType, "the last Conv stays quantized");
        }
        // Realized = simulated: the float node runs in float in both (float rounding apart).
        float scale = outputs[QuantizationMode.Simulated].Max(r => r.Max(Math.Abs));
        float difference = TinyData.MaxAbsDifference(outputs[QuantizationMode.Int8], outputs[QuantizationMode.Simulated]);
        Assert.IsTrue(difference <= 1e-4f * scale, $"realized vs simulated: {difference} against outputs up to {scale}");
    }
}
