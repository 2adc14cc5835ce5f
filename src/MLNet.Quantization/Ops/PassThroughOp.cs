using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// Ops that only move values (Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Gather on activations): when
/// their input is already quantized, the output shares its scale, so int8 flows through them.
/// </summary>
internal sealed class PassThroughOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.AfterQuantizedOp;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (node.Input.Count == 0 || context.IsConstant(node.Input[0]))
            return;
        context.MarkInput(node, 0);
        context.MarkOutput(node, 0, shareScaleWith: node.Input[0]);
    }
}
