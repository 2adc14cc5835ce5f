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
    bool PerChannelWeights,
    int? MaximumCalibrationRows,
    IReadOnlyDictionary<string, int[]>? ShapeDictionary,
    int? IntraOpNumThreads,
    int Bins = QuantizationDefaults.Bins,
    int QuantizedBins = QuantizationDefaults.QuantizedBins,
    double Percentile = QuantizationDefaults.Percentile)
{
    /// <summary>Whether the activation thresholds need histograms (a second pass over the data).</summary>
    public bool NeedsHistograms => ActivationCalibration != CalibrationMethod.Max;
}
