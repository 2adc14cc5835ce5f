using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>What an <see cref="IOpAnnotator"/> sees of the graph and the marks it can add to the node it annotates.</summary>
internal sealed class AnnotationContext
{
    private NodeMarks? _current;

    public AnnotationContext(OnnxGraph graph) => Graph = graph;

    public OnnxGraph Graph { get; }

    internal NodeMarks Begin(NodeProto node, QuantizeWhen when) => _current = new NodeMarks(node, when);

    private NodeMarks Current => _current ?? throw new InvalidOperationException("No node is being annotated.");

    public bool IsConstant(string tensor) => Graph.FindConstant(tensor) is not null;

    /// <summary>Marks input <paramref name="index"/> of <paramref name="node"/> as an activation; constants and absent inputs are skipped.</summary>
    public void MarkInput(NodeProto node, int index, string? shareScaleWith = null)
    {
        if (index >= node.Input.Count || node.Input[index].Length == 0 || IsConstant(node.Input[index]))
            return;
        var tensor = node.Input[index];
        if (Current.Inputs.Add(tensor))
            Current.Activations.Add(new ActivationMark(tensor, OnnxGraph.Label(node), node.OpType, shareScaleWith));
    }

    /// <summary>Marks output <paramref name="index"/> of <paramref name="node"/> as an activation.</summary>
    public void MarkOutput(NodeProto node, int index = 0, string? shareScaleWith = null)
    {
        var tensor = node.Output[index];
        if (Current.Outputs.Add(tensor))
            Current.Activations.Add(new ActivationMark(tensor, OnnxGraph.Label(node), node.OpType, shareScaleWith));
    }

    /// <summary>
    /// Marks a constant weight; returns false (and marks nothing) when the input is not a float constant.
    /// <paramref name="axis"/>: the channel axis of per-channel scales, null for one scale (see <see cref="WeightMark.Axis"/>);
    /// <paramref name="unpairedProducts"/>: see <see cref="WeightMark.UnpairedProducts"/>.
    /// </summary>
    public bool MarkWeight(NodeProto node, int index, int? axis, bool unpairedProducts = false)
    {
        if (index >= node.Input.Count || Graph.FindConstant(node.Input[index]) is not { DataType: Tensors.Float })
            return false;
        Current.Weights.Add(new WeightMark(node.Input[index], OnnxGraph.Label(node), node.OpType, index, axis, unpairedProducts));
        return true;
    }

    /// <summary>Marks a constant 1-D bias whose scale is input scale × weight scale.</summary>
    public void MarkBias(NodeProto node, int index, int activationIndex, int weightIndex)
    {
        if (index >= node.Input.Count || node.Input[index].Length == 0
            || Graph.FindConstant(node.Input[index]) is not { DataType: Tensors.Float } bias || bias.Dims.Count != 1)
            return;
        Current.Biases.Add(new BiasMark(node.Input[index], OnnxGraph.Label(node), node.OpType, index,
            node.Input[activationIndex], node.Input[weightIndex]));
    }

    /// <summary>An integer attribute of <paramref name="node"/>, or <paramref name="fallback"/>.</summary>
    public static long Attribute(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? fallback;
}
