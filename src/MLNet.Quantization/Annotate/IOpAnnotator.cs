using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>When the marks of an op are kept.</summary>
internal enum QuantizeWhen
{
    /// <summary>Always: compute-heavy ops (Conv, MatMul, Gemm) that int8 kernels speed up on their own.</summary>
    Always,

    /// <summary>
    /// Only next to a quantized op (Add, Mul, Concat, pooling): a producer of one of its inputs or a reader of its
    /// output is quantized. Elsewhere (a residual Add between two LayerNorms, say) quantizing would only add error.
    /// </summary>
    NextToQuantizedOp,

    /// <summary>Only when one of its inputs comes from a quantized op: pass-through ops (Reshape, Transpose, ...).</summary>
    AfterQuantizedOp,
}

/// <summary>Marks the tensors of one op type that are to be quantized. Implementations never edit the graph.</summary>
internal interface IOpAnnotator
{
    QuantizeWhen When { get; }

    void Annotate(NodeProto node, AnnotationContext context);
}
