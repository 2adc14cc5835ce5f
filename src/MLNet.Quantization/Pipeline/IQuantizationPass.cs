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

    /// <summary>
    /// The most calibration rows (the first ones) its statistics are collected on; by default all. A pass that compares
    /// them with a measurement of its own on the first rows declares that many, so that both means are over the same rows.
    /// </summary>
    long StatisticRows => long.MaxValue;

    /// <summary>
    /// About how many streams over the calibration rows the pass costs, in units of one float-model stream (its declared
    /// statistics included): the tuner's estimate of a trial's time, to keep within its budget. By default none.
    /// </summary>
    double EstimatedStreams(QuantizationContext context) => 0;

    /// <summary>Applies the pass; <paramref name="statistics"/> holds the values of its points.</summary>
    void Apply(QuantizationContext context, StatisticValues statistics);
}
