namespace MLNet.Quantization;

/// <summary>
/// The immutable snapshot of <see cref="QuantizingEstimator.Options"/> taken and validated once at <c>Fit</c>:
/// later changes to the options object do not reach a running fit or a fitted transformer.
/// </summary>
internal sealed record QuantizationSettings(
    string ModelFile,
    IReadOnlyList<string>? InputColumnNames,
    IReadOnlyList<string>? OutputColumnNames,
    QuantizationMode Mode,
    CalibrationMethod ActivationCalibration,
    WeightScaleMethod WeightScale,
    WeightRange WeightRange,
    bool PerChannelWeights,
    int? MaximumCalibrationRows,
    IReadOnlyDictionary<string, int[]>? ShapeDictionary,
    int? IntraOpNumThreads,
    int Bins,
    int QuantizedBins,
    double Percentile,
    Func<Calibration.TensorStatistics, Calibration.TensorRange?>? CustomCalibration,
    Calibration.IThresholdSearch? CustomSearch,
    IReadOnlyList<string>? ExcludeNodes,
    IReadOnlyList<string>? ExcludeOpTypes,
    bool AsymmetricActivations,
    CalibrationStatistics? Statistics,
    CalibrationStatistics? RangesFrom,
    double? MinimumOutputCosine,
    IProgress<CalibrationProgress>? Progress)
{
    /// <summary>Every fifth row is held back from calibration when the fallback needs rows to measure on.</summary>
    public bool IsCalibrationRow(long row) => MinimumOutputCosine is null || row % 5 != 4;

    /// <summary>The rows the fallback and the report measure on: the held-back rows, or the first 64 rows.</summary>
    public bool IsMeasurementRow(long row) => MinimumOutputCosine is null ? row < 64 : row % 5 == 4;

    /// <summary>
    /// Whether the activation search needs histograms. (Calibration from rows fills them whatever the method: the report
    /// and refitting from saved statistics with another method need them too.)
    /// </summary>
    public bool NeedsHistograms => ActivationCalibration is not (CalibrationMethod.Max or CalibrationMethod.MeanMinMax)
        || CustomCalibration is not null || CustomSearch is not null;

    /// <summary>The search of the configured activation method.</summary>
    public Calibration.IThresholdSearch ActivationSearch => CustomSearch ?? ActivationCalibration switch
    {
        CalibrationMethod.KlDivergence => new Calibration.KlDivergenceSearch(QuantizedBins),
        CalibrationMethod.KlDivergencePowerOfTwo => new Calibration.KlDivergenceSearch(QuantizedBins, powerOfTwo: true),
        CalibrationMethod.Percentile => new Calibration.PercentileSearch(Percentile),
        _ => new Calibration.MaxSearch(),
    };
}
