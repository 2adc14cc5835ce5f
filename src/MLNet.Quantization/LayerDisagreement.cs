namespace MLNet.Quantization;

/// <summary>One quantized activation where the realized int8 model and the simulated model part (see <see cref="RealizationAgreement"/>).</summary>
public sealed record LayerDisagreement
{
    /// <summary>The tensor.</summary>
    public string Tensor { get; init; } = "";

    /// <summary>The node that produces or reads it quantized.</summary>
    public string Node { get; init; } = "";

    /// <summary>That node's op type.</summary>
    public string OpType { get; init; } = "";

    /// <summary>Fraction of its uint8 values that differ by more than one step (one step is rounding).</summary>
    public double MismatchFraction { get; init; }

    /// <summary>Mean |Δq| over its values, in quantization steps.</summary>
    public double MeanStepDifference { get; init; }
}
