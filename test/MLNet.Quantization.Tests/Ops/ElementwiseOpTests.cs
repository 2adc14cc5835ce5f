using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class ElementwiseOpTests
{
    [TestMethod]
    public void AddAndMulBetweenConvsQuantizeTheirInputsAndOutputs()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 2, 4, 4).Input("X2", 1, 2, 4, 4).Output("Y", 1, 2, 4, 4)
            .Weight("W1", new long[] { 2, 2, 1, 1 }).Weight("W2", new long[] { 2, 2, 1, 1 })
            .Node("Conv", new[] { "X", "W1" }, new[] { "A" })
            .Node("Conv", new[] { "X2", "W2" }, new[] { "B" })
            .Node("Add", new[] { "A", "B" }, new[] { "S" })
            .Node("Mul", new[] { "S", "A" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.XX2(ml, TinyData.Normal(64, 32, seed: 1), TinyData.Normal(64, 32, seed: 2, std: 3), 32), "Y");

        Assert.AreEqual(6, run.Count("QuantizeLinear"), "X, X2, A, B, S, Y");
        Assert.AreEqual(8, run.Count("DequantizeLinear"), "the six activations and two weights");
        var s = run.Table.Find("S", TensorRole.Activation)!;
        Assert.IsTrue(s.ZeroPoint is > 0 and < 255, $"a signed activation gets an asymmetric uint8 zero point that maps 0 exactly, not {s.ZeroPoint}");
        Assert.AreEqual(1, run.Int8Model.Graph.Output.Count(o => o.Name == "Y"), "the graph output keeps its name");
        Assert.IsTrue(run.MinCosine > 0.998, $"int8 vs float cosine {run.MinCosine}: a product of two quantized values");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= run.Scale("Y") * 1.01f);
    }

    [TestMethod]
    public void AnAddBetweenFloatOpsStaysFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 8).Input("X2", 1, 8).Output("Y", 1, 8)
            .Node("Softmax", new[] { "X" }, new[] { "A" })
            .Node("Softmax", new[] { "X2" }, new[] { "B" })
            .Node("Add", new[] { "A", "B" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.XX2(ml, TinyData.Normal(8, 8, seed: 1), TinyData.Normal(8, 8, seed: 2), 8), "Y");

        Assert.AreEqual(0, run.Count("QuantizeLinear"), "quantizing a lone Add would only add error");
        Assert.AreEqual(0f, TinyData.MaxAbsDifference(run.Float, run.Int8));
    }

    [TestMethod]
    public void AddOfAConstantStaysFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 2, 2, 2).Output("Y", 1, 2, 2, 2)
            .Weight("W", new long[] { 2, 2, 1, 1 }).Weight("C", new long[] { 1, 2, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "A" })
            .Node("Add", new[] { "A", "C" }, new[] { "Y" }).Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(8, 8), 8), "Y");

        Assert.IsNull(run.Table.Find("Y", TensorRole.Activation));
        Assert.IsTrue(run.Int8Model.Graph.Node.Any(n => n.OpType == "Add" && n.Input[1] == "C"), "the Add keeps its float constant");
    }
}
