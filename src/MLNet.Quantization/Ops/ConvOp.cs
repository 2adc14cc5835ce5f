using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>Conv: input activation, weight per output channel (axis 0), int32 bias, output activation → QLinearConv.</summary>
internal sealed class ConvOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.Always;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (!context.MarkWeight(node, 1, axis: 0))
            return;
        context.MarkInput(node, 0);
        context.MarkBias(node, 2, activationIndex: 0, weightIndex: 1);
        context.MarkOutput(node);
    }
}
