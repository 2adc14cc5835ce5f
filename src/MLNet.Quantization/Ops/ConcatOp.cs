using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// Concat: the output and every input no other op has claimed share one scale, the output's, so the int8 values
/// concatenate without requantization (QLinearConcat).
/// </summary>
internal sealed class ConcatOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.NextToQuantizedOp;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (node.Input.Any(context.IsConstant))
            return;
        context.MarkOutput(node);
        for (int i = 0; i < node.Input.Count; i++)
            context.MarkInput(node, i, shareScaleWith: node.Output[0]);
    }
}
