using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// Conv: input activation, weight per output channel (axis 0), int32 bias, output activation → QLinearConv. A depthwise
/// Conv (one input and one output channel per group) runs on ONNX Runtime's depthwise kernels, which widen each
/// uint8 × int8 product to int32 (<c>MlasConvDepthwise</c>, and <c>MlasConvSymDepthwise</c>'s <c>vpmaddwd</c> on
/// zero-extended lanes): its weights are marked as free of the int16 pair bound.
/// </summary>
internal sealed class ConvOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.Always;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        bool depthwise = node.Input.Count > 1 && context.Graph.FindConstant(node.Input[1]) is { } weight && IsDepthwise(node, weight.Dims);
        if (!context.MarkWeight(node, 1, axis: 0, unpairedProducts: depthwise))
            return;
        context.MarkInput(node, 0);
        context.MarkBias(node, 2, activationIndex: 0, weightIndex: 1);
        context.MarkOutput(node);
    }

    /// <summary>
    /// Whether a Conv with weights of these dimensions is depthwise: [C, 1, …] in C groups, each group reading one input
    /// channel and writing one output channel.
    /// </summary>
    public static bool IsDepthwise(NodeProto node, IReadOnlyList<long> weightDims) =>
        weightDims is [var channels, 1, ..] && AnnotationContext.Attribute(node, "group", 1) == channels;
}
