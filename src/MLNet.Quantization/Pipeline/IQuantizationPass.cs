namespace MLNet.Quantization.Pipeline;

/// <summary>
/// One algorithm of <c>Fit</c>, in the shape of NNCF's <c>Algorithm</c>: it declares the statistics it needs of the
/// model as the earlier steps left it, then applies itself to the context. The pipeline collects the statistics of
/// every pass of a step in one stream over the calibration rows (see <see cref="QuantizationPipeline"/>).
/// </summary>
internal interface IQuantizationPass
{
    /// <summary>The statistics this pass reads in <see cref="Apply"/>; by default none (a data-free pass).</summary>
    IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context) => Array.Empty<StatisticPoint>();

    /// <summary>Applies the pass; <paramref name="statistics"/> holds the values of its points.</summary>
    void Apply(QuantizationContext context, StatisticValues statistics);
}
