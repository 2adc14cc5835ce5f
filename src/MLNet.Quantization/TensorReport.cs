namespace MLNet.Quantization;

/// <summary>One quantized tensor in a <see cref="CalibrationReport"/>.</summary>
public sealed record TensorReport
{
    /// <summary>The tensor.</summary>
    public string Tensor { get; init; } = "";

    /// <summary>The node that asked for it to be quantized.</summary>
    public string Node { get; init; } = "";

    /// <summary>That node's op type.</summary>
    public string OpType { get; init; } = "";

    /// <summary>Activation, weight or bias.</summary>
    public TensorRole Role { get; init; }

    /// <summary>How its range was chosen.</summary>
    public string Method { get; init; } = "";

    /// <summary>The clipping threshold.</summary>
    public float Threshold { get; init; }

    /// <summary>The scale (the largest channel scale for per-channel tensors).</summary>
    public float Scale { get; init; }

    /// <summary>The zero point.</summary>
    public int ZeroPoint { get; init; }

    /// <summary>
    /// The smallest value the quantized tensor represents: −ZeroPoint × Scale for activations (their uint8 range,
    /// asymmetric ones included), −Threshold for weights and biases.
    /// </summary>
    public double RangeMin { get; init; }

    /// <summary>The largest value it represents: (255 − ZeroPoint) × Scale for activations, Threshold for weights and biases.</summary>
    public double RangeMax { get; init; }

    /// <summary>
    /// Fraction of the calibration values outside [<see cref="RangeMin"/>, <see cref="RangeMax"/>], counted over the
    /// histogram bins that lie wholly outside it (NaN without a histogram). Where the tensor's readers clamp it (a
    /// LeakyRelu then Max, a Clip) and its range stops at the clamp, the values past the clamp are not counted: the
    /// readers compute the same from them.
    /// </summary>
    public double ClippedFraction { get; init; }

    /// <summary>KL divergence of the histogram's candidate at the chosen threshold (NaN without a histogram).</summary>
    public double KlDivergence { get; init; }

    /// <summary>
    /// SQNR in dB: for activations, of the simulated model's tensor against the float model's on the measured calibration
    /// rows (upstream error included); for weights and biases, of the dequantized values against the float ones.
    /// </summary>
    public double SqnrDb { get; init; }

    /// <summary>
    /// For activations, the noise-to-signal ratio this tensor adds itself (its own minus the largest of its producer's
    /// quantized inputs): the report ranks layers by it. NaN for weights and biases.
    /// </summary>
    public double AddedNoise { get; init; } = double.NaN;
}
