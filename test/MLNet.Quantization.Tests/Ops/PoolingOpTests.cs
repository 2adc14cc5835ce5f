using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class PoolingOpTests
{
    [TestMethod]
    public void MaxPoolSharesItsInputScaleAndAveragePoolsGetTheirOwn()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 2, 8, 8).Output("Y", 1, 2, 1, 1)
            .Weight("W", new long[] { 2, 2, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" })
            .Node("MaxPool", new[] { "C" }, new[] { "P" }, TinyModel.Ints("kernel_shape", 2, 2), TinyModel.Ints("strides", 2, 2))
            .Node("AveragePool", new[] { "P" }, new[] { "A" }, TinyModel.Ints("kernel_shape", 2, 2), TinyModel.Ints("strides", 2, 2))
            .Node("GlobalAveragePool", new[] { "A" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 128, mean: 1), 128), "Y");

        Assert.AreEqual(5, run.Count("QuantizeLinear"), "X, C, P, A, Y");
        Assert.AreEqual(6, run.Count("DequantizeLinear"), "the five activations and the weight");
        var p = run.Table.Find("P", TensorRole.Activation)!;
        Assert.AreEqual(run.Scale("C"), p.Scale, "MaxPool output reuses the input scale");
        Assert.AreEqual("SharedWith(C)", p.Method);
        Assert.AreNotEqual(run.Scale("P"), run.Scale("A"));
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= run.Scale("Y") * 1.01f);
    }
}
