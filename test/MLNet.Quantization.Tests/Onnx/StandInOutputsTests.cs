using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Onnx;

[TestClass]
public sealed class StandInOutputsTests
{
    // X → MatMul W → Softmax → P → SplitToSequence → Q (a sequence output); X → SplitToSequence → R (a sequence of the input).
    private static OnnxGraph Model(TempDirectory directory, bool pIsAnOutput = false)
    {
        var tiny = new TinyModel().Input("X", 1, 4).Weight("W", new long[] { 4, 4 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "M" })
            .Node("Softmax", new[] { "M" }, new[] { "P" })
            .Node("SplitToSequence", new[] { "P" }, new[] { "Q" })
            .Node("SplitToSequence", new[] { "X" }, new[] { "R" });
        if (pIsAnOutput) tiny.Output("P", 1, 4);
        tiny.Graph.Output.Add(TinyModel.FloatSequence("Q"));
        tiny.Graph.Output.Add(TinyModel.FloatSequence("R"));
        return OnnxGraph.Load(tiny.Save(directory.Path));
    }

    [TestMethod]
    public void ASequenceOutputOfAComputedFloatTensorGetsThatTensorAsAStandInAndLosesItAgain()
    {
        using var directory = new TempDirectory();
        var graph = Model(directory);

        var standIns = StandInOutputs.Add(graph);

        CollectionAssert.AreEqual(new[] { "P" }, standIns.Keys.ToArray(), "not R, which only splits the input: nothing to compare");
        Assert.AreEqual("Q", standIns["P"]);
        CollectionAssert.AreEqual(new[] { "Q", "R", "P" }, graph.Graph.Output.Select(o => o.Name).ToArray());
        StandInOutputs.Remove(graph, standIns);
        CollectionAssert.AreEqual(new[] { "Q", "R" }, graph.Graph.Output.Select(o => o.Name).ToArray());
    }

    [TestMethod]
    public void ATensorThatIsAlreadyAnOutputNeedsNoStandIn()
    {
        using var directory = new TempDirectory();
        var graph = Model(directory, pIsAnOutput: true);

        Assert.AreEqual(0, StandInOutputs.Add(graph).Count);
        Assert.AreEqual(3, graph.Graph.Output.Count);
    }
}
