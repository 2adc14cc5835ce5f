using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>What an <see cref="IOpAnnotator"/> sees of the graph and the marks it can add.</summary>
internal sealed class AnnotationContext
{
    private readonly QuantizationPlan _plan;

    public AnnotationContext(OnnxGraph graph, QuantizationPlan plan)
    {
        Graph = graph;
        _plan = plan;
    }

    public OnnxGraph Graph { get; }

    public bool IsConstant(string tensor) => Graph.FindConstant(tensor) is not null;

    /// <summary>Marks input <paramref name="index"/> of <paramref name="node"/> as an activation; constants are skipped.</summary>
    public void MarkInput(NodeProto node, int index)
    {
        if (index < node.Input.Count && node.Input[index].Length > 0 && !IsConstant(node.Input[index]))
            MarkActivation(node.Input[index], node);
    }

    /// <summary>Marks output <paramref name="index"/> of <paramref name="node"/> as an activation.</summary>
    public void MarkOutput(NodeProto node, int index = 0, string? shareScaleWith = null) =>
        MarkActivation(node.Output[index], node, shareScaleWith);

    /// <summary>Marks a constant weight; returns false (and marks nothing) when the input is not a constant.</summary>
    public bool MarkWeight(NodeProto node, int index, int axis)
    {
        if (index >= node.Input.Count || !IsConstant(node.Input[index]))
            return false;
        _plan.Weights.Add(new WeightMark(node.Input[index], OnnxGraph.Label(node), node.OpType, index, axis));
        return true;
    }

    /// <summary>Marks a constant bias whose scale is input scale × weight scale.</summary>
    public void MarkBias(NodeProto node, int index, int activationIndex, int weightIndex)
    {
        if (index >= node.Input.Count || node.Input[index].Length == 0 || !IsConstant(node.Input[index]))
            return;
        _plan.Biases.Add(new BiasMark(node.Input[index], OnnxGraph.Label(node), node.OpType, index,
            node.Input[activationIndex], node.Input[weightIndex]));
    }

    private void MarkActivation(string tensor, NodeProto node, string? shareScaleWith = null)
    {
        if (_plan.FindActivation(tensor) is null)
            _plan.Activations.Add(new ActivationMark(tensor, OnnxGraph.Label(node), node.OpType, shareScaleWith));
    }
}
