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
        // Kept alive for the native run: a RunOptions that only the call holds can be finalized during it (a segfault).
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, new[] { "X" }, new[] { value }, new[] { output });
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
    public void AnOpWithoutAnOpset13FormIsRefusedByName()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel(opset: 8).Input("X", 1, 1, 2, 2).Output("Y", 1, 1, 4, 4)
            .Constant("scales", new long[] { 4 }, new[] { 1f, 1f, 2f, 2f })
            .Node("Upsample", new[] { "X", "scales" }, new[] { "Y" }).Save(directory.Path);

        var error = Assert.ThrowsExactly<NotSupportedException>(() => GraphPreparation.Prepare(OnnxGraph.Load(path)));
        StringAssert.Contains(error.Message, "Upsample_0");
        StringAssert.Contains(error.Message, "opset 8");
    }

    [TestMethod]
    public void AttributesThatBecameInputsAndTheOldSoftmaxKeepTheirMeaning()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel(opset: 9).Input("X", 1, 2, 3, 4).Output("Y", 2, 8)
            .Node("Clip", new[] { "X" }, new[] { "C" }, TinyModel.Float("min", -0.5f), TinyModel.Float("max", 0.7f))
            .Node("Slice", new[] { "C" }, new[] { "S" }, TinyModel.Ints("starts", 0, 1), TinyModel.Ints("ends", 1, 3), TinyModel.Ints("axes", 0, 2))
            .Node("Squeeze", new[] { "S" }, new[] { "Q" }, TinyModel.Ints("axes", 0))
            .Node("Softmax", new[] { "Q" }, new[] { "M" }, TinyModel.Int("axis", 1))
            .Node("Unsqueeze", new[] { "M" }, new[] { "U" }, TinyModel.Ints("axes", 0))
            .Node("Reshape", new[] { "U", "shape" }, new[] { "Y" })
            .Save(directory.Path);
        var source = OnnxGraph.Load(path);
        source.Graph.Initializer.Add(Tensors.FromLongs("shape", new long[] { 2 }, new long[] { 2, 8 }));

        var prepared = GraphPreparation.Prepare(source);

        Assert.AreEqual(13L, prepared.Opset);
        var input = TinyData.Normal(1, 24, std: 2)[0];
        var expected = Run(source.ToBytes(), input, new long[] { 1, 2, 3, 4 }, "Y");
        var actual = Run(prepared.ToBytes(), input, new long[] { 1, 2, 3, 4 }, "Y");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], 1e-6f, $"element {i}");
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
    [TestMethod]
    public void OpsUnchangedUpToOpset13MoveFromOpset9AndComputeTheSame()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel(opset: 9)
            .Input("X", 1, 8, 2, 2).Output("Y", 1, 2, 4, 4)
            .Weight("W", new long[] { 8, 8, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" })
            .Node("Sin", new[] { "C" }, new[] { "S" })
            .Node("Softplus", new[] { "S" }, new[] { "P" })
            .Node("Dropout", new[] { "P" }, new[] { "D" }, TinyModel.Float("ratio", 0.3f))
            .Node("Sum", new[] { "D", "C" }, new[] { "M" })
            .Node("Asinh", new[] { "M" }, new[] { "A" })
            .Node("DepthToSpace", new[] { "A" }, new[] { "Y" }, TinyModel.Int("blocksize", 2))
            .Save(directory.Path);
        var source = OnnxGraph.Load(path);
        var prepared = GraphPreparation.Prepare(source);
        Assert.AreEqual(GraphPreparation.TargetOpset, prepared.Opset);
        Assert.IsFalse(prepared.Graph.Node.Single(n => n.OpType == "Dropout").Attribute.Any(), "opset 12 made ratio an input; inference ignores it");

        var input = Enumerable.Range(0, 32).Select(i => MathF.Sin(i * 0.7f)).ToArray();
        var before = Run(source.ToBytes(), input, new long[] { 1, 8, 2, 2 }, "Y");
        var after = Run(prepared.ToBytes(), input, new long[] { 1, 8, 2, 2 }, "Y");
        CollectionAssert.AreEqual(before, after, "the same computation at opset 13");
    }

    [TestMethod]
    public void KeepingOneOutputDropsTheNodesAndWeightsOfTheOthers()
    {
        using var directory = new TempDirectory();
        // X → MatMul(W1) → Relu → Y, and a second branch X → MatMul(W2) → Z that only the output Z reads; a shared
        // Relu output H also read by Z's Add keeps the node that computes it.
        var path = new TinyModel().Input("X", 1, 8).Output("Y", 1, 4).Output("Z", 1, 4)
            .Weight("W1", new long[] { 8, 4 }).Weight("W2", new long[] { 8, 4 })
            .Node("MatMul", new[] { "X", "W1" }, new[] { "A" })
            .Node("Relu", new[] { "A" }, new[] { "Y" })
            .Node("MatMul", new[] { "X", "W2" }, new[] { "B" })
            .Node("Add", new[] { "B", "Y" }, new[] { "Z" })
            .Save(directory.Path);
        var input = Enumerable.Range(0, 8).Select(i => i / 4f - 1).ToArray();
        var whole = GraphPreparation.Prepare(OnnxGraph.Load(path));

        var y = GraphPreparation.Prepare(OnnxGraph.Load(path));
        Assert.AreEqual(2, GraphPreparation.KeepOutputs(y, new[] { "Y" }));
        CollectionAssert.AreEqual(new[] { "Y" }, y.Graph.Output.Select(o => o.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "MatMul", "Relu" }, y.Graph.Node.Select(n => n.OpType).ToArray());
        CollectionAssert.AreEqual(new[] { "W1" }, y.Graph.Initializer.Select(i => i.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "X" }, y.Graph.Input.Select(i => i.Name).ToArray(), "the inputs stay as declared");
        CollectionAssert.AreEqual(Run(whole.ToBytes(), input, new long[] { 1, 8 }, "Y"), Run(y.ToBytes(), input, new long[] { 1, 8 }, "Y"));

        // The same with the nodes listed out of order (as ISNet's fp16 export lists its Resizes after the Sigmoids
        // that read them; ONNX Runtime sorts them itself): the producers are found all the same.
        var shuffled = GraphPreparation.Prepare(OnnxGraph.Load(path));
        var reversed = shuffled.Graph.Node.Reverse().ToList();
        shuffled.Graph.Node.Clear();
        shuffled.Graph.Node.AddRange(reversed);
        shuffled.Invalidate();
        Assert.AreEqual(2, GraphPreparation.KeepOutputs(shuffled, new[] { "Y" }));
        CollectionAssert.AreEquivalent(new[] { "MatMul", "Relu" }, shuffled.Graph.Node.Select(n => n.OpType).ToArray());

        // Z reads Y, so keeping Z keeps every node.
        var z = GraphPreparation.Prepare(OnnxGraph.Load(path));
        Assert.AreEqual(0, GraphPreparation.KeepOutputs(z, new[] { "Z" }));
        CollectionAssert.AreEqual(new[] { "Z" }, z.Graph.Output.Select(o => o.Name).ToArray());
        Assert.AreEqual(4, z.Graph.Node.Count);
        CollectionAssert.AreEqual(Run(whole.ToBytes(), input, new long[] { 1, 8 }, "Z"), Run(z.ToBytes(), input, new long[] { 1, 8 }, "Z"));
    }

    // An opset-11 If on input C whose branches hold ops that change on the way to opset 13 (as ONNX's test_loop11 holds
    // an Unsqueeze with axes in its body): then Unsqueeze(X, axes 0); else Unsqueeze(Softmax(X · W), axes 0), the
    // Softmax over the coerced 2-D view, with W read from the outer scope.
    private static string IfModel(TempDirectory directory, string elseOp = "Clip")
    {
        static global::Onnx.GraphProto Branch(string name, params global::Onnx.NodeProto[] nodes)
        {
            var branch = new global::Onnx.GraphProto { Name = name };
            branch.Node.AddRange(nodes);
            branch.Output.Add(TinyModel.FloatValue(nodes[^1].Output[0], 1, 2, 3));
            return branch;
        }
        static global::Onnx.NodeProto Node(string op, string[] inputs, string output, params global::Onnx.AttributeProto[] attributes)
        {
            var node = OnnxGraph.MakeNode(op, "", inputs, new[] { output }); // unnamed, as exporters leave subgraph nodes
            node.Attribute.AddRange(attributes);
            return node;
        }
        var then = Branch("then", Node("Unsqueeze", new[] { "X" }, "T", TinyModel.Ints("axes", 0)));
        var otherwise = elseOp == "Clip"
            ? Branch("else",
                Node("Mul", new[] { "X", "W" }, "E2"),
                Node("Softmax", new[] { "E2" }, "E3", TinyModel.Int("axis", 0)),
                Node("Unsqueeze", new[] { "E3" }, "E", TinyModel.Ints("axes", 0)))
            : Branch("else", Node(elseOp, new[] { "X" }, "E"));
        var node = OnnxGraph.MakeNode("If", "branch", new[] { "C" }, new[] { "Y" });
        node.Attribute.Add(new global::Onnx.AttributeProto { Name = "then_branch", Type = global::Onnx.AttributeProto.Types.AttributeType.Graph, G = then });
        node.Attribute.Add(new global::Onnx.AttributeProto { Name = "else_branch", Type = global::Onnx.AttributeProto.Types.AttributeType.Graph, G = otherwise });
        return new TinyModel(opset: 11).Input("X", 2, 3).TypedInput("C", (int)global::Onnx.TensorProto.Types.DataType.Bool).Output("Y", 1, 2, 3)
            .Weight("W", new long[] { 2, 3 }, 2f, 1f)
            .Node(node).Save(directory.Path);
    }

    private static float[] RunIf(byte[] model, float[] x, bool c)
    {
        using var session = new InferenceSession(model);
        using var xValue = OrtValue.CreateTensorValueFromMemory(x, new long[] { 2, 3 });
        using var cValue = OrtValue.CreateTensorValueFromMemory(new[] { c }, Array.Empty<long>());
        // Kept alive for the native run: a RunOptions that only the call holds can be finalized during it (a segfault).
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, new[] { "X", "C" }, new[] { xValue, cValue }, new[] { "Y" });
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [TestMethod]
    public void OpsInsideSubgraphsMoveToOpset13TooAndComputeTheSame()
    {
        using var directory = new TempDirectory();
        var source = OnnxGraph.Load(IfModel(directory));
        source.Graph.Input.Add(TinyModel.FloatValue("W", 2, 3)); // IR 3 lists initializers as inputs

        var prepared = GraphPreparation.Prepare(source);

        var branches = prepared.Graph.Node.Single(n => n.OpType == "If").Attribute.Select(a => a.G).ToList();
        Assert.IsTrue(branches.SelectMany(b => b.Node).Where(n => n.OpType == "Unsqueeze").All(n => n.Attribute.Count == 0 && n.Input.Count == 2),
            "axes are an input at opset 13");
        Assert.AreEqual(1, branches[1].Node.Count(n => n.OpType == "Flatten"), "the old Softmax is written out inside the branch");
        var names = new HashSet<string>(prepared.Graph.Initializer.Select(i => i.Name).Concat(prepared.Graph.Node.SelectMany(n => n.Output)));
        Assert.IsFalse(branches.SelectMany(b => b.Initializer.Select(i => i.Name).Concat(b.Node.SelectMany(n => n.Output))).Any(names.Contains),
            "no name inside a branch shadows one outside it");
        var x = new[] { -1f, -0.25f, 0f, 0.25f, 0.75f, 2f };
        foreach (var c in new[] { true, false })
            CollectionAssert.AreEqual(RunIf(source.ToBytes(), x, c), RunIf(prepared.ToBytes(), x, c), $"branch {(c ? "then" : "else")}");
    }

    [TestMethod]
    public void AnOpInsideASubgraphWithoutAnOpset13FormIsRefusedByNameAndBranch()
    {
        using var directory = new TempDirectory();
        var source = OnnxGraph.Load(IfModel(directory, elseOp: "Upsample"));

        var error = Assert.ThrowsExactly<NotSupportedException>(() => GraphPreparation.Prepare(source));
        StringAssert.Contains(error.Message, "Upsample");
        StringAssert.Contains(error.Message, "'else_branch'");
        StringAssert.Contains(error.Message, "'branch'");
    }
}
