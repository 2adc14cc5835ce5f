using MLNet.Quantization.Calibration;

namespace MLNet.Quantization;

/// <summary>
/// The immutable snapshot of <see cref="QuantizingEstimator.Options"/> taken and validated once at <c>Fit</c>:
/// later changes to the options object do not reach a running fit or a fitted transformer. The model and its columns
/// are here; each stage reads its own settings: <see cref="Rows"/>, <see cref="Activations"/>, <see cref="Weights"/>
/// and <see cref="Realization"/>.
/// </summary>
internal sealed record QuantizationSettings
{
    public required string ModelFile { get; init; }

    public IReadOnlyList<string>? InputColumnNames { get; init; }

    public IReadOnlyList<string>? OutputColumnNames { get; init; }

    public IReadOnlyDictionary<string, int[]>? ShapeDictionary { get; init; }

    public IReadOnlyList<string>? ExcludeNodes { get; init; }

    public IReadOnlyList<string>? ExcludeOpTypes { get; init; }

    /// <summary>Which rows are read and what is done with them.</summary>
    public required RowSettings Rows { get; init; }

    /// <summary>How activation ranges are chosen.</summary>
    public required ActivationSettings Activations { get; init; }

    /// <summary>How weights are quantized.</summary>
    public required WeightSettings Weights { get; init; }

    /// <summary>How the quantized model is written and run.</summary>
    public required RealizationSettings Realization { get; init; }

    /// <summary>The rescalings of the float model that prepare it for quantization.</summary>
    public required EqualizationSettings Equalization { get; init; }

    /// <summary>The search over the recipe's knobs; null: the recipe as set.</summary>
    public TuningSettings? Tuning { get; init; }
}

/// <summary>The tuner's frozen options (see <see cref="TuningOptions"/>).</summary>
internal sealed record TuningSettings
{
    public TuningObjective Objective { get; init; }

    public Func<TuningOutputs, double>? Metric { get; init; }

    public double? AbsoluteTolerance { get; init; }

    public double? RelativeTolerance { get; init; }

    public int MaximumTrials { get; init; }

    /// <summary>The time the search may take; null: the default of <see cref="TuningOptions.TimeBudget"/>.</summary>
    public TimeSpan? TimeBudget { get; init; }

    /// <summary>The knobs (option names) that the user set explicitly, which the tuner leaves as set.</summary>
    public IReadOnlySet<string> Pinned { get; init; } = new HashSet<string>();
}

/// <summary>Function-preserving rescalings of the float model, applied before annotation.</summary>
internal sealed record EqualizationSettings
{
    /// <summary>Cross-layer equalization of Conv → (Relu) → Conv chains.</summary>
    public bool CrossLayer { get; init; }

    /// <summary>SmoothQuant's migration strength for MatMuls with constant weights; null: off.</summary>
    public double? SmoothQuantAlpha { get; init; }
}

/// <summary>The rows of <c>Fit</c>: how many, which are held back, and what replaces or guides them.</summary>
internal sealed record RowSettings
{
    public int? MaximumCalibrationRows { get; init; }

    public CalibrationStatistics? Statistics { get; init; }

    public CalibrationStatistics? RangesFrom { get; init; }

    public double? MinimumOutputCosine { get; init; }

    public IProgress<CalibrationProgress>? Progress { get; init; }

    /// <summary>
    /// Whether every fifth row is held back from calibration: when the fallback or the tuner needs rows that
    /// calibration has not seen to measure on.
    /// </summary>
    public bool HoldBack { get; init; }

    /// <summary>Every fifth row is held back from calibration when <see cref="HoldBack"/> is set.</summary>
    public bool IsCalibrationRow(long row) => !HoldBack || row % 5 != 4;

    /// <summary>
    /// The rows the tuner, the fallback, the deployment check and the report measure on: the held-back rows, or the
    /// first 64 rows.
    /// </summary>
    public bool IsMeasurementRow(long row) => HoldBack ? row % 5 == 4 : row < 64;
}

/// <summary>How activation ranges are chosen from their statistics.</summary>
internal sealed record ActivationSettings
{
    public CalibrationMethod Method { get; init; }

    public bool Asymmetric { get; init; }

    public int Bins { get; init; }

    public int QuantizedBins { get; init; }

    public double Percentile { get; init; }

    /// <summary>The user's per-tensor override (activations and weights).</summary>
    public Func<TensorStatistics, TensorRange?>? Custom { get; init; }

    /// <summary>The user's search, which replaces the method's.</summary>
    public IThresholdSearch? Search { get; init; }

    /// <summary>Whether the activation search needs histograms (max and mean of per-row min/max need ranges only).</summary>
    public bool NeedsHistograms => Method is not (CalibrationMethod.Max or CalibrationMethod.MeanMinMax) || Custom is not null || Search is not null;

    /// <summary>The user's choice of <c>CollectHistograms</c>; null: when <see cref="NeedsHistograms"/>.</summary>
    public bool? CollectHistogramsOption { get; init; }

    /// <summary>Whether calibration from rows fills histograms (a second pass over the rows).</summary>
    public bool CollectHistograms => CollectHistogramsOption ?? NeedsHistograms;

    /// <summary>The search that turns a histogram into a range: the user's, or the method's.</summary>
    public IThresholdSearch ThresholdSearch => Search ?? Method switch
    {
        CalibrationMethod.KlDivergence => new KlDivergenceSearch(QuantizedBins),
        CalibrationMethod.KlDivergencePowerOfTwo => new KlDivergenceSearch(QuantizedBins, powerOfTwo: true),
        CalibrationMethod.Percentile => new PercentileSearch(Percentile),
        CalibrationMethod.MeanSquaredError => new MeanSquaredErrorSearch(Asymmetric, ActivationFormat.UInt8.Levels),
        _ => new MaxSearch(),
    };
}

/// <summary>How weights are quantized: scale method, number format and granularity.</summary>
internal sealed record WeightSettings
{
    public WeightScaleMethod Scale { get; init; }

    public WeightRange Range { get; init; }

    public bool PerChannel { get; init; }

    /// <summary>How values are rounded to the int8 steps.</summary>
    public WeightRounding Rounding { get; init; }

    /// <summary>Whether layer output means are corrected after calibration.</summary>
    public BiasCorrection BiasCorrection { get; init; }

    /// <summary>The int8 number format of <see cref="Range"/>.</summary>
    public WeightFormat Format => WeightFormat.For(Range);
}

/// <summary>How the quantized model is written and run.</summary>
internal sealed record RealizationSettings
{
    public QuantizationMode Mode { get; init; }

    public int? IntraOpNumThreads { get; init; }

    /// <summary>Whether the last pass measures the deployed model and keeps in float what int8 gets wrong or slower.</summary>
    public bool CheckDeployment { get; init; }

    /// <summary>The deployment check's bound on each output's relative error; null: no bound.</summary>
    public double? MaximumOutputError { get; init; }

    /// <summary>The deployment check's bound on the int8 model's speed-up over the float model, below which the float model is returned.</summary>
    public double MinimumSpeedup { get; init; }
}
