using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// Preparation, before the passes of <c>Fit</c>: brings a float model into the form that QDQ needs. BatchNormalization is folded into the
/// Conv before it, the opset is raised to <see cref="TargetOpset"/> (per-channel DequantizeLinear needs 13) and the IR
/// version to one that allows initializers outside the graph inputs.
/// </summary>
internal static class GraphPreparation
{
    /// <summary>The opset that preparation raises older models to.</summary>
    public const long TargetOpset = 13;

    private const long TargetIrVersion = 7;

    // For each op, the oldest opset from which moving to opset 13 keeps its meaning for the attributes it carries (later
    // opsets only add types, or optional attributes whose defaults keep the old behaviour). Ops absent here block the move.
    private static readonly Dictionary<string, long> UpgradeSafeFrom = new(StringComparer.Ordinal)
    {
        ["Conv"] = 1, ["ConvTranspose"] = 1, ["Relu"] = 1, ["LeakyRelu"] = 1, ["PRelu"] = 7, ["Sigmoid"] = 1, ["Tanh"] = 1,
        ["Elu"] = 1, ["Selu"] = 1, ["HardSigmoid"] = 1, ["Add"] = 7, ["Sub"] = 7, ["Mul"] = 7, ["Div"] = 7, ["Sum"] = 6,
        ["Max"] = 6, ["Min"] = 6, ["Mean"] = 6, ["Abs"] = 1, ["Neg"] = 1, ["Exp"] = 1, ["Log"] = 1, ["Sqrt"] = 1, ["Pow"] = 7,
        ["Reciprocal"] = 1, ["Floor"] = 1, ["Ceil"] = 1, ["Erf"] = 9, ["Not"] = 1, ["And"] = 7, ["Or"] = 7, ["Equal"] = 7,
        ["Less"] = 7, ["Greater"] = 7, ["Where"] = 9, ["MaxPool"] = 1, ["AveragePool"] = 7, ["GlobalAveragePool"] = 1,
        ["GlobalMaxPool"] = 1, ["LRN"] = 1, ["Concat"] = 4, ["Gemm"] = 7, ["MatMul"] = 1, ["Flatten"] = 1, ["Reshape"] = 5,
        ["Transpose"] = 1, ["Identity"] = 1, ["Shape"] = 1, ["Gather"] = 1, ["Cast"] = 6, ["Constant"] = 1,
        ["ConstantOfShape"] = 9, ["BatchNormalization"] = 7, ["InstanceNormalization"] = 6, ["Expand"] = 8, ["Tile"] = 6,
        ["Range"] = 11, ["ReduceMean"] = 1, ["ReduceMax"] = 1, ["ReduceMin"] = 1,
        ["Clip"] = 11,   // min and max became inputs in 11
        ["Slice"] = 10,  // starts and ends became inputs in 10
        ["Resize"] = 11, // Resize 10 had other coordinate semantics
        ["Pad"] = 11,    // pads became an input in 11
        ["TopK"] = 10,   // k became an input in 10
        ["Softmax"] = 13, ["LogSoftmax"] = 13, ["Squeeze"] = 13, ["Unsqueeze"] = 13, ["Split"] = 13, ["ReduceSum"] = 13,
        // From ONNX's Changelog.md: ops whose later versions up to 13 only add types, allow negative axes or indices, add
        // broadcasting to inputs that had to agree, or add attributes whose defaults keep the old behaviour.
        ["Sin"] = 7, ["Cos"] = 7, ["Tan"] = 7, ["Asin"] = 7, ["Acos"] = 7, ["Atan"] = 7, ["Sinh"] = 9, ["Cosh"] = 9,
        ["Asinh"] = 9, ["Acosh"] = 9, ["Atanh"] = 9, ["Softplus"] = 1, ["Softsign"] = 1, ["Shrink"] = 9,
        ["ThresholdedRelu"] = 10, ["Celu"] = 12, ["Sign"] = 9, ["IsNaN"] = 9, ["IsInf"] = 10, ["Round"] = 11, ["Mod"] = 10,
        ["BitShift"] = 11, ["Xor"] = 7, ["LessOrEqual"] = 12, ["GreaterOrEqual"] = 12, ["Det"] = 11, ["Einsum"] = 12,
        ["DepthToSpace"] = 1, ["SpaceToDepth"] = 1, ["ArgMax"] = 1, ["ArgMin"] = 1, ["Size"] = 1, ["Compress"] = 9,
        ["NonZero"] = 9, ["OneHot"] = 9, ["EyeLike"] = 9, ["CumSum"] = 11, ["GatherElements"] = 11, ["GatherND"] = 11,
        ["ScatterElements"] = 11, ["ScatterND"] = 11, ["Unique"] = 11, ["ReduceL1"] = 1, ["ReduceL2"] = 1,
        ["ReduceLogSum"] = 1, ["ReduceLogSumExp"] = 1, ["ReduceProd"] = 1, ["ReduceSumSquare"] = 1,
        ["MeanVarianceNormalization"] = 9, ["LpNormalization"] = 1, ["LpPool"] = 2, ["GlobalLpPool"] = 2,
        ["MaxRoiPool"] = 1, ["RoiAlign"] = 10, ["NonMaxSuppression"] = 10, ["MaxUnpool"] = 11, ["If"] = 11, ["Loop"] = 11,
        ["SequenceConstruct"] = 11, ["SequenceAt"] = 11, ["SequenceEmpty"] = 11, ["SequenceInsert"] = 11,
        ["SequenceErase"] = 11, ["SequenceLength"] = 11, ["SplitToSequence"] = 11, ["ConcatFromSequence"] = 11,
        ["Dropout"] = 1, // inference: the identity; its old attributes are dropped (opset 12 made ratio an input)
    };

    /// <summary>Returns a prepared copy of <paramref name="source"/>; the source is not modified.</summary>
    public static OnnxGraph Prepare(OnnxGraph source)
    {
        var graph = source.Clone();
        NameNodes(graph);
        RaiseOpset(graph);
        RemoveInitializersFromInputs(graph);
        FoldBatchNormalization(graph);
        return graph;
    }

    // Every node gets a unique name, so that marks and error messages can refer to it across graph edits.
    private static void NameNodes(OnnxGraph graph)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Graph.Node)
        {
            if (node.Name.Length == 0 || !used.Add(node.Name))
            {
                var stem = $"{node.OpType}_{node.Output.FirstOrDefault()}";
                var name = stem;
                for (int i = 1; !used.Add(name); i++) name = $"{stem}_{i}";
                node.Name = name;
            }
        }
        graph.Invalidate();
    }

    private static void RaiseOpset(OnnxGraph graph)
    {
        long opset = graph.Opset;
        if (opset < TargetOpset)
        {
            RaiseNodes(graph, graph, opset, "");
            graph.Opset = TargetOpset;
            graph.SortTopologically();
        }
        if (graph.Model.IrVersion < TargetIrVersion)
            graph.Model.IrVersion = TargetIrVersion;
    }

    // The nodes of one scope, then those of their subgraphs (If branches, Loop and Scan bodies), which the model's opset
    // import covers too: a body left at its old form (an Unsqueeze with axes, ONNX's test_loop11) makes the model
    // invalid at opset 13. <paramref name="where"/> names the scope in errors ("" for the main graph).
    private static void RaiseNodes(OnnxGraph model, OnnxGraph scope, long opset, string where)
    {
        foreach (var node in scope.Graph.Node.ToList())
        {
            foreach (var attribute in node.Attribute)
                foreach (var subgraph in Subgraphs(attribute))
                {
                    var inner = OnnxGraph.Subgraph(subgraph, model);
                    RaiseNodes(model, inner, opset, $" in the '{attribute.Name}' subgraph of '{OnnxGraph.Label(node)}' ({node.OpType}){where}");
                    inner.SortTopologically();
                }
            if (node.Domain is not ("" or "ai.onnx") || OpsetConverter.TryConvert(scope, node, opset))
                continue;
            if (!CanUpgrade(node, opset))
                throw new NotSupportedException(
                    $"Node '{OnnxGraph.Label(node)}' ({node.OpType}){where} cannot be moved from opset {opset} to " +
                    $"opset {TargetOpset}, which quantization needs. Convert the model to opset {TargetOpset} first.");
            if (node.OpType == "BatchNormalization")
                DropSpatialAttribute(node);
            if (node.OpType == "Dropout")
                DropAttributes(node, "ratio", "is_test", "seed");
            DropAttributes(node, "consumed_inputs"); // a legacy attribute of opset 1 that opset 6 removed
        }
    }

    private static bool CanUpgrade(NodeProto node, long opset)
    {
        // A softmax over the last axis means the same before and after opset 13.
        if (node.OpType is "Softmax" or "LogSoftmax" && node.Attribute.FirstOrDefault(a => a.Name == "axis") is { I: -1 })
            return true;
        return UpgradeSafeFrom.TryGetValue(node.OpType, out var from) && opset >= from;
    }

    private static void DropAttributes(NodeProto node, params string[] names)
    {
        foreach (var attribute in node.Attribute.Where(a => names.Contains(a.Name)).ToList())
            node.Attribute.Remove(attribute);
    }

    // Opset 9 removed 'spatial'; spatial=1 is the only behaviour that survives.
    private static void DropSpatialAttribute(NodeProto node)
    {
        var spatial = node.Attribute.FirstOrDefault(a => a.Name == "spatial");
        if (spatial is null) return;
        if (spatial.I != 1)
            throw new NotSupportedException(
                $"BatchNormalization node '{OnnxGraph.Label(node)}' has spatial={spatial.I}, which opset 9+ cannot express.");
        node.Attribute.Remove(spatial);
    }

    /// <summary>
    /// Folds <c>Y = BN(Conv(X, W, b))</c> into <c>Conv(X, W', b')</c> with
    /// <c>f = gamma / sqrt(var + eps)</c>, <c>W'[m] = W[m]·f[m]</c>, <c>b'[m] = (b[m] − mean[m])·f[m] + beta[m]</c>,
    /// computed in double. Only a Conv whose sole reader is the BatchNormalization is folded.
    /// </summary>
    private static void FoldBatchNormalization(OnnxGraph graph)
    {
        foreach (var bn in graph.Graph.Node.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            var conv = graph.Producer(bn.Input[0]);
            if (conv is null || conv.OpType != "Conv" || graph.Consumers(bn.Input[0]).Count != 1 || graph.IsGraphOutput(bn.Input[0]))
                continue;
            var w = graph.FindConstant(conv.Input[1]);
            var gamma = graph.FindConstant(bn.Input[1]);
            var beta = graph.FindConstant(bn.Input[2]);
            var mean = graph.FindConstant(bn.Input[3]);
            var variance = graph.FindConstant(bn.Input[4]);
            if (w is null || gamma is null || beta is null || mean is null || variance is null)
                continue;
            double eps = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5;
            var (g, bt, mu, v) = (Tensors.ReadFloats(gamma), Tensors.ReadFloats(beta), Tensors.ReadFloats(mean), Tensors.ReadFloats(variance));
            var weights = Tensors.ReadFloats(w);
            int channels = (int)w.Dims[0];
            int perChannel = weights.Length / channels;
            var bias = conv.Input.Count > 2 && conv.Input[2].Length > 0
                ? Tensors.ReadFloats(graph.FindConstant(conv.Input[2]) ?? throw new NotSupportedException(
                    $"Conv '{OnnxGraph.Label(conv)}' has a bias that is not a constant."))
                : new float[channels];
            var newWeights = new float[weights.Length];
            var newBias = new float[channels];
            for (int m = 0; m < channels; m++)
            {
                double f = g[m] / Math.Sqrt(v[m] + eps);
                for (int k = 0; k < perChannel; k++)
                    newWeights[m * perChannel + k] = (float)(weights[m * perChannel + k] * f);
                newBias[m] = (float)((bias[m] - mu[m]) * f + bt[m]);
            }
            var wName = graph.UniqueName(conv.Input[1] + "_bnfolded");
            graph.AddInitializer(Tensors.FromFloats(wName, Tensors.Dims(w), newWeights));
            var bName = graph.UniqueName((conv.Input.Count > 2 && conv.Input[2].Length > 0 ? conv.Input[2] : wName) + "_bias_bnfolded");
            graph.AddInitializer(Tensors.FromFloats(bName, new long[] { channels }, newBias));
            graph.SetInput(conv, 1, wName);
            if (conv.Input.Count > 2) graph.SetInput(conv, 2, bName); else graph.AddInput(conv, bName);
            graph.RemoveNode(bn);
            graph.SetOutput(conv, 0, bn.Output[0]);
        }
        RemoveUnusedInitializers(graph);
        RemoveDeadConstants(graph);
    }

    /// <summary>
    /// Keeps only the graph outputs named in <paramref name="outputs"/> (in the graph's order), and drops every node
    /// that none of them needs, with the initializers that only those nodes read. The graph inputs stay as declared, so
    /// the model takes the same columns. Returns how many nodes were dropped.
    /// </summary>
    /// <remarks>
    /// ONNX Runtime runs every node of a session whatever outputs a run asks for, so a model whose unused outputs are
    /// left in place computes them on every row; and a quantizer that compared them would judge the model on values
    /// that nobody reads (a segmenter's decoder features beside the mask that is wanted).
    /// </remarks>
    public static int KeepOutputs(OnnxGraph graph, IReadOnlyCollection<string> outputs)
    {
        var wanted = new HashSet<string>(outputs, StringComparer.Ordinal);
        foreach (var output in graph.Graph.Output.Where(o => !wanted.Contains(o.Name)).ToList()) graph.Graph.Output.Remove(output);
        graph.Invalidate();
        // From the kept outputs back through the producers (the graph's index, whatever the node order): a node is kept
        // when it writes a tensor that a kept node or a kept output reads.
        var needed = new HashSet<string>(wanted, StringComparer.Ordinal);
        var kept = new HashSet<NodeProto>();
        var pending = new Stack<string>(wanted);
        while (pending.Count > 0)
        {
            if (graph.Producer(pending.Pop()) is not { } node || !kept.Add(node)) continue;
            foreach (var input in node.Input.Where(t => t.Length > 0).Concat(OnnxGraph.ImplicitInputs(node)))
                if (needed.Add(input)) pending.Push(input);
        }
        var dropped = graph.Graph.Node.Where(n => !kept.Contains(n)).ToList();
        foreach (var node in dropped) graph.RemoveNode(node);
        RemoveUnusedInitializers(graph);
        foreach (var info in graph.Graph.ValueInfo.Where(v => !needed.Contains(v.Name)).ToList()) graph.Graph.ValueInfo.Remove(info);
        graph.Invalidate();
        return dropped.Count;
    }

    /// <summary>Removes <c>Constant</c> nodes whose output nothing reads.</summary>
    public static void RemoveDeadConstants(OnnxGraph graph)
    {
        var read = new HashSet<string>(graph.Graph.Node.SelectMany(n => n.Input.Concat(OnnxGraph.ImplicitInputs(n))));
        read.UnionWith(graph.Graph.Output.Select(o => o.Name));
        foreach (var node in graph.Graph.Node.Where(n => n.OpType == "Constant" && !read.Contains(n.Output[0])).ToList())
            graph.RemoveNode(node);
    }

    public static void RemoveUnusedInitializers(OnnxGraph graph)
    {
        var used = new HashSet<string>(graph.Graph.Node.SelectMany(n => n.Input));
        used.UnionWith(graph.Graph.Output.Select(o => o.Name));
        foreach (var node in graph.Graph.Node)
            foreach (var attr in node.Attribute)
                foreach (var subgraph in Subgraphs(attr)) CollectSubgraphInputs(subgraph, used);
        foreach (var init in graph.Graph.Initializer.Where(i => !used.Contains(i.Name)).ToList())
            graph.RemoveInitializer(init);
    }

    private static void CollectSubgraphInputs(GraphProto g, HashSet<string> used)
    {
        foreach (var node in g.Node)
        {
            used.UnionWith(node.Input);
            foreach (var attr in node.Attribute)
                foreach (var subgraph in Subgraphs(attr)) CollectSubgraphInputs(subgraph, used);
        }
    }

    // A graph attribute (If's branches, Loop's body) or a list of them (AttributeProto.Graphs).
    private static IEnumerable<GraphProto> Subgraphs(AttributeProto attribute) =>
        (attribute.G is null ? Enumerable.Empty<GraphProto>() : new[] { attribute.G }).Concat(attribute.Graphs);

    private static void RemoveInitializersFromInputs(OnnxGraph graph)
    {
        var inits = new HashSet<string>(graph.Graph.Initializer.Select(i => i.Name));
        foreach (var input in graph.Graph.Input.Where(i => inits.Contains(i.Name)).ToList())
            graph.Graph.Input.Remove(input);
    }
}
