using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class QdqWriterTests
{
    // X → Conv (bias lifts its output just above 0) → C; C → Conv → Y and C → Log → Z, C → Sqrt → S, 1 / C → D.
    private static string DomainLimitedReaders(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 2, 4, 4).Output("Y", 1, 2, 4, 4).Output("Z", 1, 2, 4, 4).Output("S", 1, 2, 4, 4).Output("D", 1, 2, 4, 4)
        .Constant("W", new long[] { 2, 2, 1, 1 }, new[] { 0.01f, 0, 0, 0.01f })
        .Constant("B", new long[] { 2 }, new[] { 0.002f, 0.002f })
        .Weight("W2", new long[] { 2, 2, 1, 1 })
        .Constant("one", Array.Empty<long>(), new[] { 1f })
        .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" })
        .Node("Conv", new[] { "C", "W2" }, new[] { "Y" })
        .Node("Log", new[] { "C" }, new[] { "Z" })
        .Node("Sqrt", new[] { "C" }, new[] { "S" })
        .Node("Div", new[] { "one", "C" }, new[] { "D" })
        .Save(directory.Path);

    [TestMethod]
    public void DomainLimitedReadersOfAQuantizedTensorReadItInFloat()
    {
        using var directory = new TempDirectory();
        var model = DomainLimitedReaders(directory);
        var ml = new MLContext(seed: 1);
        // Non-negative inputs with a wide range: C ∈ [0.002, ~1], so that its smallest values quantize to 0.
        var rows = TinyData.X(ml, TinyData.Normal(32, 32, std: 30).Select(r => r.Select(Math.Abs).ToArray()).ToArray(), 32);
        var reference = ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows);
        foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
        {
            using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = model, Mode = mode }).Fit(rows);
            Assert.IsNotNull(fitted.Calibration.Find("C", TensorRole.Activation), "C is quantized for the second Conv");
            fitted.ExportOnnx(directory.File($"{mode}.onnx"));
            var graph = MLNet.Quantization.Onnx.OnnxGraph.Load(directory.File($"{mode}.onnx"));
            foreach (var op in new[] { "Log", "Sqrt" })
                Assert.AreEqual("C", graph.Graph.Node.Single(n => n.OpType == op).Input[0], $"{mode}: {op} reads the float C");
            Assert.AreEqual("C", graph.Graph.Node.Single(n => n.OpType == "Div" && n.Input[0] == "one").Input[1], $"{mode}: the divisor is the float C");
            Assert.AreNotEqual("C", graph.Graph.Node.Where(n => n.OpType == "Conv").Last().Input[0], "the second Conv reads C quantized");
            var output = fitted.Transform(rows);
            foreach (var name in new[] { "Z", "S", "D" })
            {
                var expected = TinyData.Column(reference, name).SelectMany(v => v).ToArray();
                var actual = TinyData.Column(output, name).SelectMany(v => v).ToArray();
                Assert.IsTrue(expected.All(float.IsFinite), $"{name}: the float model is finite");
                Assert.IsTrue(actual.All(float.IsFinite), $"{mode} {name}: no NaN or infinity where float has none");
                // (Values differ by the quantization of C's own inputs: C comes from a quantized Conv.)
            }
        }
    }
}
