using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class AddOpTests
{
    [TestMethod]
    public void AddOfTwoActivationsQuantizesBothInputsAndTheOutput()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 32).Input("X2", 1, 32).Output("Y", 1, 32)
            .Node("Add", new[] { "X", "X2" }, new[] { "Y" }).Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.XX2(ml, TinyData.Normal(64, 32, seed: 1), TinyData.Normal(64, 32, seed: 2, std: 3), 32), "Y");

        Assert.AreEqual(3, run.Count("QuantizeLinear"));
        Assert.AreEqual(3, run.Count("DequantizeLinear"));
        Assert.AreEqual(128, run.Table.Find("X", TensorRole.Activation)!.ZeroPoint, "signed activations are uint8 with zero point 128");
        Assert.AreEqual(1, run.Int8Model.Graph.Output.Count(o => o.Name == "Y"), "the graph output keeps its name");
        float tolerance = run.Scale("X") / 2 + run.Scale("X2") / 2 + run.Scale("Y") / 2;
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Float, run.Int8) <= tolerance * 1.01f,
            $"error {TinyData.MaxAbsDifference(run.Float, run.Int8)} exceeds the sum of half steps {tolerance}");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= run.Scale("Y") * 1.01f);
    }

    [TestMethod]
    public void AddOfAConstantStaysFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 8).Output("Y", 1, 8).Weight("C", new long[] { 8 })
            .Node("Add", new[] { "X", "C" }, new[] { "Y" }).Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(8, 8), 8), "Y");

        Assert.AreEqual(0, run.Count("QuantizeLinear"));
        Assert.AreEqual(0, run.Table.Count);
        Assert.AreEqual(0f, TinyData.MaxAbsDifference(run.Float, run.Int8));
    }
}
