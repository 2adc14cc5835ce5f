using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Onnx;

[TestClass]
public sealed class OnnxGraphTests
{
    [TestMethod]
    public void AMissingFileIsNamed()
    {
        var error = Assert.ThrowsExactly<FileNotFoundException>(() => OnnxGraph.Load("/no/such/model.onnx"));
        StringAssert.Contains(error.Message, "/no/such/model.onnx");
    }

    [TestMethod]
    public void BytesThatAreNotAModelAreRejectedWithTheirOrigin()
    {
        var error = Assert.ThrowsExactly<InvalidDataException>(() => OnnxGraph.Parse(new byte[] { 0xff, 0xff, 0xff }, "garbage.onnx"));
        StringAssert.Contains(error.Message, "garbage.onnx");
        var empty = Assert.ThrowsExactly<InvalidDataException>(() => OnnxGraph.Parse(Array.Empty<byte>(), "empty.onnx"));
        StringAssert.Contains(empty.Message, "no graph nodes");
    }

    [TestMethod]
    public void TopologicalSortPutsProducersFirstAndDetectsUndefinedTensors()
    {
        using var directory = new TempDirectory();
        var graph = OnnxGraph.Load(new TinyModel().Input("X", 1).Output("Z", 1)
            .Node("Relu", new[] { "Y" }, new[] { "Z" })
            .Node("Neg", new[] { "X" }, new[] { "Y" }).Save(directory.Path));

        graph.SortTopologically();
        CollectionAssert.AreEqual(new[] { "Neg", "Relu" }, graph.Graph.Node.Select(n => n.OpType).ToArray());

        graph.Graph.Node[0].Input[0] = "undefined";
        var error = Assert.ThrowsExactly<InvalidOperationException>(graph.SortTopologically);
        StringAssert.Contains(error.Message, "undefined");
    }

    [TestMethod]
    public void MetadataRoundTrips()
    {
        using var directory = new TempDirectory();
        var graph = OnnxGraph.Load(new TinyModel().Input("X", 1).Output("Y", 1).Node("Relu", new[] { "X" }, new[] { "Y" }).Save(directory.Path));
        graph.SetMetadata("k", "v1");
        graph.SetMetadata("k", "v2");
        Assert.AreEqual("v2", OnnxGraph.Parse(graph.ToBytes(), "m").GetMetadata("k"));
        Assert.IsNull(graph.GetMetadata("other"));
    }

    [TestMethod]
    public void EditsKeepTheIndexCurrent()
    {
        using var directory = new TempDirectory();
        var graph = OnnxGraph.Load(new TinyModel().Input("X", 1).Output("Z", 1)
            .Node("Neg", new[] { "X" }, new[] { "Y" })
            .Node("Relu", new[] { "Y" }, new[] { "Z" }).Save(directory.Path));
        var neg = graph.Producer("Y")!;
        var relu = graph.Consumers("Y").Single();
        Assert.AreEqual("Relu", relu.OpType);

        var abs = OnnxGraph.MakeNode("Abs", graph.UniqueName("abs"), new[] { "Y" }, new[] { graph.UniqueName("Y") });
        graph.AddNode(abs);
        Assert.AreEqual("Y_1", abs.Output[0], "a name handed out is reserved");
        Assert.AreSame(abs, graph.Producer("Y_1"));
        Assert.AreEqual(2, graph.Consumers("Y").Count);

        graph.SetInput(relu, 0, "Y_1");
        Assert.AreSame(abs, graph.Consumers("Y").Single());
        Assert.AreSame(relu, graph.Consumers("Y_1").Single());

        graph.SetOutput(neg, 0, "N");
        Assert.IsNull(graph.Producer("Y"));
        Assert.AreSame(neg, graph.Producer("N"));
        graph.SetInput(abs, 0, "N");

        graph.AddInitializer(MLNet.Quantization.Onnx.Tensors.FromFloats("c", System.Array.Empty<long>(), new[] { 2f }));
        Assert.IsNotNull(graph.FindConstant("c"));
        graph.RemoveNode(abs);
        Assert.IsNull(graph.Producer("Y_1"));
        Assert.AreEqual(0, graph.Consumers("N").Count);
        Assert.IsTrue(graph.IndexIsCurrent(), "the index equals one rebuilt from the graph");
        Assert.AreSame(relu, graph.FindNode(relu.Name));
    }
}
