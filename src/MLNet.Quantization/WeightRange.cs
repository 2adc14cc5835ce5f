namespace MLNet.Quantization;

/// <summary>
/// The int8 values that weights may take. On x86-64 CPUs without VNNI (AVX2 only: AMD Zen 2/3, Intel before Ice Lake),
/// ONNX Runtime's uint8 × int8 kernels add each pair of products along the reduction into a saturating int16
/// (<c>vpmaddubsw</c>): with activations near 255, two weights whose magnitudes sum past 128 overflow it, and the model
/// silently computes something else. The default keeps every model safe on every CPU.
/// </summary>
public enum WeightRange
{
    /// <summary>
    /// The default. Per output channel and sign, the two largest |q| sum to at most 128 (and each is at most 127), so
    /// that any pair of uint8 × int8 products stays within int16 on every x86-64 CPU, whichever weights the kernel pairs
    /// (products of opposite signs cannot overflow: activations are never negative). A channel whose largest weight of
    /// each sign stands well above the next keeps (nearly) the full 8 bits; a channel with two equally large weights of
    /// one sign gets 7 bits' resolution. Depthwise convolutions take the full ±127: ONNX Runtime's depthwise kernels
    /// widen each product to int32 on its own and never pair two.
    /// </summary>
    PairBounded = 0,

    /// <summary>7-bit weights, q in [−63, 63] (ONNX Runtime's <c>reduce_range</c>): safe everywhere, at half the resolution.</summary>
    SevenBit = 1,

    /// <summary>
    /// Full 8-bit weights, q in [−127, 127]. Only for deployments whose CPUs have VNNI (AVX512-VNNI or AVX-VNNI) or are
    /// ARM: on an x86-64 CPU without VNNI the realized model can saturate and give wrong outputs, with no error.
    /// The agreement check at <c>Fit</c> (<see cref="QuantizingTransformer.Agreement"/>) shows it when the fitting
    /// machine lacks VNNI, but a model fitted on a VNNI machine and run on another one is not checked there.
    /// </summary>
    Full = 2,
}
