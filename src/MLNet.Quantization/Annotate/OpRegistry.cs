using MLNet.Quantization.Ops;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// Which op types are quantized and by which handler. Adding an op means one file under <c>Ops/</c> and one line here.
/// Ops not listed (Softmax, LayerNormalization, Gelu, Erf, Div, Pow, Sqrt, If, Loop, anything unknown) stay float; the
/// DequantizeLinear in front of them gives them float inputs.
/// </summary>
internal static class OpRegistry
{
    private static readonly PassThroughOp PassThrough = new();

    private static readonly Dictionary<string, IOpAnnotator> Handlers = new(StringComparer.Ordinal)
    {
        ["Conv"] = new ConvOp(),
        ["MatMul"] = new MatMulOp(),
        ["Gemm"] = new GemmOp(),
        ["Add"] = new ElementwiseOp(),
        ["Mul"] = new ElementwiseOp(),
        ["Concat"] = new ConcatOp(),
        ["MaxPool"] = new PoolingOp(sharesInputScale: true),
        ["AveragePool"] = new PoolingOp(sharesInputScale: false),
        ["GlobalAveragePool"] = new PoolingOp(sharesInputScale: false),
        ["Reshape"] = PassThrough,
        ["Flatten"] = PassThrough,
        ["Transpose"] = PassThrough,
        ["Squeeze"] = PassThrough,
        ["Unsqueeze"] = PassThrough,
        ["Slice"] = PassThrough,
        ["Gather"] = PassThrough,
    };

    public static IOpAnnotator? Find(string opType) => Handlers.GetValueOrDefault(opType);
}
