using MLNet.Quantization.Ops;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// Which op types are quantized and by which handler. Adding an op means one file under <c>Ops/</c> and one line here.
/// Ops not listed stay float; the DequantizeLinear in front of them gives them float inputs.
/// </summary>
internal static class OpRegistry
{
    private static readonly Dictionary<string, IOpAnnotator> Handlers = new(StringComparer.Ordinal)
    {
        ["Conv"] = new ConvOp(),
        ["Add"] = new AddOp(),
        ["MaxPool"] = new PoolingOp(sharesInputScale: true),
        ["AveragePool"] = new PoolingOp(sharesInputScale: false),
        ["GlobalAveragePool"] = new PoolingOp(sharesInputScale: false),
    };

    public static IOpAnnotator? Find(string opType) => Handlers.GetValueOrDefault(opType);
}
