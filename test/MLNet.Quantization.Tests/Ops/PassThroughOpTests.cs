using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class PassThroughOpTests
{
    [TestMethod]
    public void AFlattenAfterAQuantizedConvPassesItsScaleOn()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 2, 3, 3).Output("Y", 1, 4)
            .Weight("W", new long[] { 2, 2, 1, 1 }).Weight("B", new long[] { 18, 4 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" })
            .Node("Relu", new[] { "C" }, new[] { "R" })
            .Node("Flatten", new[] { "R" }, new[] { "F" })
            .Node("Gemm", new[] { "F", "B" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 18), 18), "Y");

        Assert.AreEqual("SharedWith(R)", run.Table.Find("F", TensorRole.Activation)!.Method);
        Assert.AreEqual(0, run.Count("Relu"), "the Relu folds into the Conv's uint8 output");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void APassThroughOpAfterAFloatOpStaysFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 2, 3).Output("Y", 3, 2)
            .Node("Softmax", new[] { "X" }, new[] { "S" })
            .Node("Transpose", new[] { "S" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(4, 6), 6), "Y");

        Assert.AreEqual(0, run.Table.Count);
    }
}
