namespace MLNet.Quantization.Annotate;

/// <summary>The marks one handler made for one node, before the annotator decides whether to keep them.</summary>
internal sealed class NodeMarks
{
    public NodeMarks(global::Onnx.NodeProto node, QuantizeWhen when)
    {
        Node = node;
        When = when;
    }

    public global::Onnx.NodeProto Node { get; }

    public QuantizeWhen When { get; }

    /// <summary>Input activations, then output activations, in the order marked.</summary>
    public List<ActivationMark> Activations { get; } = new();

    public HashSet<string> Inputs { get; } = new(StringComparer.Ordinal);

    public HashSet<string> Outputs { get; } = new(StringComparer.Ordinal);

    public List<WeightMark> Weights { get; } = new();

    public List<BiasMark> Biases { get; } = new();

    public bool IsEmpty => Activations.Count == 0 && Weights.Count == 0;
}
