namespace MLNet.Quantization;

/// <summary>One float output of the model: the deployed quantized model against the float model (see <see cref="DeploymentCheck"/>).</summary>
public sealed record OutputComparison
{
    /// <summary>The output's name.</summary>
    public string Name { get; init; } = "";

    /// <summary>Mean over the rows of the cosine between the float and the quantized output.</summary>
    public double MeanCosine { get; init; }

    /// <summary>The smallest per-row cosine.</summary>
    public double WorstCosine { get; init; }

    /// <summary>‖float − quantized‖ / ‖float‖ over every measured row (finite values only); 0 when both are zero.</summary>
    public double RelativeError { get; init; }

    /// <summary>Values that are finite in the float output and NaN or infinite in the quantized one.</summary>
    public long NonFiniteIntroduced { get; init; }
}
