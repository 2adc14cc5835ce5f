namespace MLNet.Quantization;

/// <summary>
/// One output of the model: the deployed quantized model against the float model (see <see cref="DeploymentCheck"/>).
/// Float and double outputs are compared by cosine and relative error; integer and boolean outputs (labels, indices,
/// masks) by equality (<see cref="ComparedByEquality"/>), where the cosines read as the fraction of values equal and
/// the relative error as the fraction that differ.
/// </summary>
public sealed record OutputComparison
{
    /// <summary>The output's name.</summary>
    public string Name { get; init; } = "";

    /// <summary>
    /// Mean over the rows of the cosine between the float and the quantized output; for an output of one value per row
    /// (whose per-row cosine is only a sign test), the cosine of the column of values over the rows.
    /// </summary>
    public double MeanCosine { get; init; }

    /// <summary>
    /// The smallest per-row cosine; for an output of one value per row, the smaller of <see cref="MeanCosine"/> and
    /// 1 − d²/(2·mean f²) for the row farthest off (d its error, f the float values).
    /// </summary>
    public double WorstCosine { get; init; }

    /// <summary>‖float − quantized‖ / ‖float‖ over every measured row (finite values only); 0 when both are zero.</summary>
    public double RelativeError { get; init; }

    /// <summary>Values that are finite in the float output and NaN or infinite in the quantized one.</summary>
    public long NonFiniteIntroduced { get; init; }

    /// <summary>
    /// Whether the output holds integers or booleans and was compared by equality: <see cref="MeanCosine"/> is then the
    /// mean over the rows of the fraction of values equal to the float model's, <see cref="WorstCosine"/> the worst
    /// row's, and <see cref="RelativeError"/> the fraction of all values that differ (so that `MaximumOutputError`
    /// bounds the share of labels that int8 changed).
    /// </summary>
    public bool ComparedByEquality { get; init; }

    /// <summary>The largest <see cref="RelativeError"/> of <paramref name="outputs"/> (0 when none is compared).</summary>
    internal static double WorstRelativeError(IEnumerable<OutputComparison> outputs) =>
        outputs.Select(o => o.RelativeError).DefaultIfEmpty(0).Max();
}
