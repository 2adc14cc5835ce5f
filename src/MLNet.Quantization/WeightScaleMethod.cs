namespace MLNet.Quantization;

/// <summary>How the int8 scale of a weight tensor (or of each of its output channels) is chosen.</summary>
public enum WeightScaleMethod
{
    /// <summary>Scale = max|w| / 127: the largest weight maps to ±127. The default.</summary>
    Max = 0,

    /// <summary>
    /// Threshold = 2^ceil(log2(max|w|)) and scale = threshold / 128, a power of two (TVM's <c>power2</c>).
    /// Quantized values are clipped to ±127.
    /// </summary>
    PowerOfTwo = 1,
}
