using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class GemmOpTests
{
    [TestMethod]
    [DataRow(0L, 1L)]
    [DataRow(1L, 0L)]
    public void GemmWeightsArePerOutputColumnAndTheBiasIsInt32(long transB, long expectedAxis)
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 2, 12).Output("Y", 2, 6)
            .Weight("B", transB == 1 ? new long[] { 6, 12 } : new long[] { 12, 6 }).Weight("C", new long[] { 6 })
            .Node("Gemm", new[] { "X", "B", "C" }, new[] { "Y" }, TinyModel.Int("transB", transB))
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 24), 24), "Y");

        var weightDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("B"));
        Assert.AreEqual(expectedAxis, weightDq.Attribute.Single(a => a.Name == "axis").I);
        var bias = run.Table.Find("C", TensorRole.Bias)!;
        Assert.AreEqual("int32", bias.ElementType);
        Assert.AreEqual(6, bias.ChannelScales.Count);
        Assert.AreEqual(1, run.Count("QuantizeLinear"), "X only");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void TransposedAStaysFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 12, 2).Output("Y", 2, 6).Weight("B", new long[] { 12, 6 })
            .Node("Gemm", new[] { "X", "B" }, new[] { "Y" }, TinyModel.Int("transA", 1))
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(8, 24), 24), "Y");

        Assert.AreEqual(0, run.Table.Count);
        Assert.AreEqual(0f, TinyData.MaxAbsDifference(run.Float, run.Int8));
    }
}
