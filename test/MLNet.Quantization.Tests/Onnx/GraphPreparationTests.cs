using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Onnx;

[TestClass]
public sealed class GraphPreparationTests
{
    private static float[] Run(byte[] model, float[] input, long[] shape, string output)
    {
        using var session = new InferenceSession(model);
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var outputs = session.Run(new RunOptions(), new[] { "X" }, new[] { value }, new[] { output });
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [TestMethod]
    public void Opset8BatchNormalizationWithSpatialFoldsIntoTheConvBeforeIt()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel(opset: 8)
            .Input("X", 1, 2, 5, 5).Output("Y", 1, 3, 5, 5)
            .Weight("W", new long[] { 3, 2, 3, 3 })
            .Weight("gamma", new long[] { 3 }, 0.5f, 1f).Weight("beta", new long[] { 3 }).Weight("mean", new long[] { 3 })
            .Weight("var", new long[] { 3 }, 0.2f, 0.5f)
            .Node("Conv", new[] { "X", "W" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("BatchNormalization", new[] { "C", "gamma", "beta", "mean", "var" }, new[] { "N" },
                TinyModel.Float("epsilon", 1e-3f), TinyModel.Int("spatial", 1))
            .Node("Relu", new[] { "N" }, new[] { "Y" })
            .Save(directory.Path);
        // IR 3 lists initializers as inputs.
        var source = OnnxGraph.Load(path);
        foreach (var init in source.Graph.Initializer) source.Graph.Input.Add(new global::Onnx.ValueInfoProto { Name = init.Name, Type = source.Graph.Input[0].Type });

        var prepared = GraphPreparation.Prepare(source);

        Assert.AreEqual(13L, prepared.Opset);
        Assert.IsTrue(prepared.Model.IrVersion >= 7);
        CollectionAssert.AreEqual(new[] { "Conv", "Relu" }, prepared.Graph.Node.Select(n => n.OpType).ToArray());
        Assert.AreEqual(3, prepared.Graph.Node[0].Input.Count, "the folded Conv has a bias");
        Assert.AreEqual(1, prepared.RealInputs().Count);
        Assert.AreEqual(1, prepared.Graph.Input.Count, "initializers are no longer listed as inputs");
        Assert.IsTrue(prepared.Graph.Node.All(n => n.Name.Length > 0), "every node is named");

        var input = TinyData.Normal(1, 50)[0];
        var shape = new long[] { 1, 2, 5, 5 };
        var expected = Run(OnnxGraph.Load(path).ToBytes(), input, shape, "Y");
        var actual = Run(prepared.ToBytes(), input, shape, "Y");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-5f, $"element {i}");
    }

    [TestMethod]
    public void AnOpWhoseSemanticsChangedBeforeOpset13IsRefusedByName()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel(opset: 8).Input("X", 1, 4).Output("Y", 4)
            .Node("Squeeze", new[] { "X" }, new[] { "Y" }, TinyModel.Ints("axes", 0)).Save(directory.Path);

        var error = Assert.ThrowsExactly<NotSupportedException>(() => GraphPreparation.Prepare(OnnxGraph.Load(path)));
        StringAssert.Contains(error.Message, "Squeeze_0");
        StringAssert.Contains(error.Message, "opset 8");
    }

    [TestMethod]
    public void PreparationLeavesTheSourceModelUntouched()
    {
        using var directory = new TempDirectory();
        var source = OnnxGraph.Load(new TinyModel(opset: 8).Input("X", 1, 4).Output("Y", 1, 4)
            .Node("Relu", new[] { "X" }, new[] { "Y" }).Save(directory.Path));
        var bytes = source.ToBytes();

        GraphPreparation.Prepare(source);

        CollectionAssert.AreEqual(bytes, source.ToBytes());
    }
}
