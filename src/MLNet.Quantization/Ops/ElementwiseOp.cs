using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>Add and Mul of two activations (residual connections): both inputs and the output → QLinearAdd, QLinearMul.</summary>
internal sealed class ElementwiseOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.NextToQuantizedOp;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (node.Input.Count != 2 || context.IsConstant(node.Input[0]) || context.IsConstant(node.Input[1]))
            return;
        context.MarkInput(node, 0);
        context.MarkInput(node, 1);
        context.MarkOutput(node);
    }
}
