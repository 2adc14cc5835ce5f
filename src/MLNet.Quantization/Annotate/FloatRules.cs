using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// What int8 cannot represent, kept in float by rule before any op is annotated: the inputs of ops whose domain is
/// limited, and everything that computes them.
/// </summary>
/// <remarks>
/// <para>
/// A uniform quantizer with step <c>s</c> moves a value by up to <c>s/2</c> and rounds every |x| &lt; s/2 to zero. Ops
/// that are finite only on part of the line, or whose slope is unbounded at the edge of their domain, turn that into
/// an unbounded error: <c>Log(x)</c> and <c>1/x</c> near zero, <c>Sqrt</c> and a fractional <c>Pow</c> below zero,
/// <c>Acos</c>, <c>Asin</c> and <c>Atanh</c> past ±1, <c>Acosh</c> below 1, a divisor near zero. Their inputs are often
/// spread over decades (a power spectrum before its log-mel, a variance before its reciprocal square root), which a
/// linear 8-bit grid over [min, max] cannot hold: the quiet bins of a spectrum round to zero and leave the log at its
/// clamp.
/// </para>
/// <para>
/// The rule: from each such input, walk up the graph through every op that computes it (convolutions and matrix
/// products included, since a linear map carries its input's relative error to its output) and keep each node met in
/// float. The walk stops at graph inputs, constants, and ops that renormalize their input (Softmax, Sigmoid, Tanh, Exp,
/// the reductions to a mean or an extreme, the normalization layers): what lies above them is rescaled before it
/// reaches the limited op. A LayerNorm's <c>Sqrt(ReduceMean(...) + ε)</c> therefore keeps nothing extra in float,
/// while a log-mel front-end (STFT as Conv, squared, mel MatMul, Clip, Log) stays float whole.
/// </para>
/// <para>
/// A second rule keeps ties out of equality tests. Quantization maps nearby values to the same step, so
/// <c>Equal(x, MaxPool(x))</c>, the peak test of heatmap detectors (CenterNet-style heads, M-LSD's line centres), finds
/// a plateau of "peaks" where float finds one: M-LSD's score output went from relative error 6.0 to 0.97 once its head
/// stayed float. From each float input of an Equal, the walk goes up through the ops that carry ties unchanged
/// (monotonic activations, max pooling, layout and indexing ops, Resize) and keeps each in float, and with them the
/// first node above them that computes new values (a Conv, say), whose output is then continuous again.
/// </para>
/// </remarks>
internal static class FloatRules
{
    // Ops that renormalize or bound their input: the walk does not go above them.
    private static readonly HashSet<string> Stops = new(StringComparer.Ordinal)
    {
        "Softmax", "LogSoftmax", "Sigmoid", "HardSigmoid", "Tanh", "Exp", "Softplus", "ReduceMean", "ReduceMax", "ReduceMin",
        "ReduceL2", "ReduceLogSumExp", "LayerNormalization", "InstanceNormalization", "BatchNormalization",
        "LpNormalization", "MeanVarianceNormalization", "Shape", "Size", "If", "Loop", "Scan", "ArgMax", "ArgMin",
    };

    // Ops that carry their input's ties to their output unchanged: the equality rule walks up through them.
    private static readonly HashSet<string> CarryTies = new(StringComparer.Ordinal)
    {
        "Sigmoid", "HardSigmoid", "Tanh", "Relu", "LeakyRelu", "Clip", "Exp", "MaxPool", "GlobalMaxPool", "Reshape", "Transpose",
        "Slice", "Resize", "Upsample", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Concat", "Split", "Gather", "Pad",
        "DepthToSpace", "SpaceToDepth", "Cast",
    };

    /// <summary>The nodes kept in float by rule (by <see cref="OnnxGraph.Label"/>), each with its reason.</summary>
    public static Dictionary<string, string> Find(OnnxGraph graph)
    {
        var kept = new Dictionary<string, string>(StringComparer.Ordinal);
        // From each input of an Equal, up through the ops that carry ties, to the first node that computes new values.
        // Integer comparisons (of shapes, say) meet a Shape or a constant and keep nothing.
        foreach (var equal in graph.Graph.Node.Where(n => n.OpType == "Equal"))
            KeepUpstream(graph, equal.Input, $"computes an input of Equal '{OnnxGraph.Label(equal)}': int8 rounds nearby " +
                "values to one step, and the comparison would find ties that float does not",
                stop: p => p.OpType is "Shape" or "Size", climb: p => CarryTies.Contains(p.OpType), kept);
        // From each domain-limited input, up through everything that computes it, to the ops that renormalize.
        foreach (var node in graph.Graph.Node)
            if (DomainInput(graph, node) is { } input)
                KeepUpstream(graph, new[] { input }, $"computes the input of {node.OpType} '{OnnxGraph.Label(node)}', whose " +
                    "domain is limited: a quantization step there is an unbounded error",
                    stop: p => Stops.Contains(p.OpType), climb: _ => true, kept);
        return kept;
    }

    // Walks up the graph from the non-constant tensors of `starts`: a producer that `stop` names is neither kept nor
    // passed; every other is kept in float with `reason`, and its non-constant inputs are walked where `climb` says so.
    private static void KeepUpstream(OnnxGraph graph, IEnumerable<string> starts, string reason, Func<NodeProto, bool> stop,
        Func<NodeProto, bool> climb, Dictionary<string, string> kept)
    {
        bool Variable(string tensor) => tensor.Length > 0 && graph.FindConstant(tensor) is null;
        var pending = new Stack<string>(starts.Where(Variable));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            var tensor = pending.Pop();
            if (!seen.Add(tensor) || graph.Producer(tensor) is not { } producer || stop(producer)) continue;
            kept.TryAdd(OnnxGraph.Label(producer), reason);
            if (!climb(producer)) continue;
            foreach (var upstream in producer.Input.Where(Variable)) pending.Push(upstream);
        }
    }

    /// <summary>
    /// The input of <paramref name="node"/> that must stay within the op's domain, or null: the first input of Log,
    /// Sqrt, Reciprocal, Acos, Asin, Acosh and Atanh, the base of a Pow whose exponent is not a constant whole number,
    /// and a Div's divisor.
    /// </summary>
    public static string? DomainInput(OnnxGraph graph, NodeProto node) => node.OpType switch
    {
        "Log" or "Sqrt" or "Reciprocal" or "Acosh" or "Asin" or "Acos" or "Atanh" when node.Input.Count > 0 => node.Input[0],
        "Pow" when node.Input.Count > 1 && !IsWholeExponent(graph, node.Input[1]) => node.Input[0],
        "Div" when node.Input.Count > 1 => node.Input[1],
        _ => null,
    };

    private static bool IsWholeExponent(OnnxGraph graph, string exponent)
    {
        if (graph.FindConstant(exponent) is not { } constant) return false;
        if (constant.DataType is (int)TensorProto.Types.DataType.Int64 or (int)TensorProto.Types.DataType.Int32) return true;
        if (constant.DataType != Tensors.Float) return false;
        var values = Tensors.ReadFloats(constant);
        return values.Length == 1 && values[0] >= 1 && values[0] == Math.Floor(values[0]);
    }
}
