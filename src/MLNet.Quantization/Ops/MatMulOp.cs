using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// MatMul. With a constant B (a weight): A is an activation and B is int8 per output column (its last axis); the output
/// stays float, which ONNX Runtime fuses into MatMulIntegerToFloat. A batched B ([..., K, N]) gets one scale:
/// MatMulIntegerToFloat takes per-column parameters only for a 2-D B, and fails at run time on a per-axis
/// DequantizeLinear of a 3-D one (ONNX's test_matmul_3d with B constant). With two activations (attention scores):
/// both inputs are quantized.
/// </summary>
internal sealed class MatMulOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.Always;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (node.Input.Count != 2 || context.IsConstant(node.Input[0]))
            return;
        var b = context.Graph.FindConstant(node.Input[1]);
        if (b is not null)
        {
            if (b.Dims.Count < 2 || !context.MarkWeight(node, 1, axis: b.Dims.Count == 2 ? 1 : null))
                return;
            context.MarkInput(node, 0);
            return;
        }
        context.MarkInput(node, 0);
        context.MarkInput(node, 1);
    }
}
