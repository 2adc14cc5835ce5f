using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class ConcatOpTests
{
    [TestMethod]
    public void ConcatInputsShareTheOutputScaleUnlessAnotherOpClaimedThem()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 2, 4, 4).Output("Y", 1, 2, 4, 4)
            .Weight("W1", new long[] { 2, 2, 1, 1 }).Weight("W2", new long[] { 2, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W1" }, new[] { "A" })
            .Node("Softmax", new[] { "X" }, new[] { "S" })
            .Node("Concat", new[] { "A", "S" }, new[] { "K" }, TinyModel.Int("axis", 1))
            .Node("Conv", new[] { "K", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 32), 32), "Y");

        Assert.AreEqual("SharedWith(K)", run.Table.Find("S", TensorRole.Activation)!.Method, "the Softmax output takes the Concat's scale");
        Assert.AreEqual(run.Scale("K"), run.Scale("S"));
        Assert.AreNotEqual("SharedWith(K)", run.Table.Find("A", TensorRole.Activation)!.Method, "the Conv output keeps its own scale");
        Assert.AreEqual(5, run.Count("QuantizeLinear"), "X, A, S, K, Y");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }
}
