namespace MLNet.Quantization.Calibration;

/// <summary>
/// The number format of int8 weights, as data: the largest magnitude <see cref="QMax"/> (symmetric, zero point 0) and,
/// when set, <see cref="PairLimit"/>, the most that the magnitudes of any two same-sign weights of one output channel
/// may sum to.
/// </summary>
/// <remarks>
/// With uint8 activations 0 ≤ a ≤ 255, a pair of products a₁q₁ + a₂q₂ stays within int16 when q₁ and q₂ have opposite
/// signs (|sum| ≤ 255 × 127), and when |q₁| + |q₂| ≤ 128 otherwise (255 × 128 = 32,640 ≤ 32,767): the bound that makes
/// the u8s8 kernels of CPUs without VNNI exact, whichever two weights they pair.
/// </remarks>
internal sealed record WeightFormat(int QMax, int? PairLimit)
{
    /// <summary>The largest pair sum that uint8 × int8 products can take without leaving int16: 32,767 / 255 → 128.</summary>
    public const int Int16SafePairSum = 128;

    /// <summary>The element type the values are stored as (an ONNX TensorProto data type), and its name in the table.</summary>
    public int ElementType => Onnx.Tensors.Int8;

    public string Name => "int8";

    /// <summary>This format without the pair bound, for weights whose kernels never sum two products in int16.</summary>
    public WeightFormat Unpaired => this with { PairLimit = null };

    public static WeightFormat For(WeightRange range) => range switch
    {
        WeightRange.SevenBit => new WeightFormat(63, null),
        WeightRange.Full => new WeightFormat(127, null),
        _ => new WeightFormat(127, Int16SafePairSum),
    };
}
