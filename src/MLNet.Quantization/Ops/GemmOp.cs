using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// Gemm <c>Y = αA·B + βC</c> with a constant B: A is an activation, B is int8 per output column (axis 0 when transB,
/// else 1), and a 1-D C is an int32 bias (when α = β = 1). transA Gemms stay float. The output stays float (QGemm).
/// </summary>
internal sealed class GemmOp : IOpAnnotator
{
    public QuantizeWhen When => QuantizeWhen.Always;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (AnnotationContext.Attribute(node, "transA", 0) != 0 || node.Input.Count < 2 || context.IsConstant(node.Input[0]))
            return;
        int axis = AnnotationContext.Attribute(node, "transB", 0) != 0 ? 0 : 1;
        if (!context.MarkWeight(node, 1, axis))
            return;
        context.MarkInput(node, 0);
        float alpha = node.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 1f;
        float beta = node.Attribute.FirstOrDefault(a => a.Name == "beta")?.F ?? 1f;
        if (alpha == 1f && beta == 1f)
            context.MarkBias(node, 2, activationIndex: 0, weightIndex: 1);
    }
}
