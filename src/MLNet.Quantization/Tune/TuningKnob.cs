using System.Globalization;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Tune;

/// <summary>
/// One knob of the search: the option it sets (its name, which an explicit option pins), whether the model has the ops
/// it applies to, its values in the order tried, and how a recipe reads and sets it. <see cref="Skip"/> says why a value
/// cannot run on these settings (statistics given without histograms, say).
/// </summary>
internal sealed record TuningKnob(string Option, Func<QuantizationContext, bool> Applies, IReadOnlyList<object?> Values,
    Func<QuantizationSettings, object?> Get, Func<QuantizationSettings, object?, QuantizationSettings> Set)
{
    public Func<QuantizationSettings, string?> Skip { get; init; } = _ => null;

    /// <summary>
    /// The statistic points that the knob's step reads of the float model, whatever its value: the first trial's
    /// activation stream reduces them too (<see cref="QuantizationContext.Foreseen"/>), so that the knob's trials do not
    /// stream the rows for them. Null: the knob's statistics depend on its value, or on steps before it.
    /// </summary>
    public Func<QuantizationContext, IReadOnlyList<StatisticPoint>>? Foresee { get; init; }

    /// <summary>
    /// Whether the values trade speed for accuracy, each keeping more of the model in float than the one before: the
    /// search then takes the first value within the tolerance and ends there, and never goes past what it needs.
    /// </summary>
    public bool UntilWithin { get; init; }

    // Balanced rounding changes only convolutions' weights: elsewhere its trial would be the recipe as set again.
    private static bool BalancedRoundingApplies(QuantizationContext context) =>
        context.Plan.Weights.Any(w => context.Model.FindConstant(w.Tensor) is { } tensor && WeightQuantizer.IsConvolution(Onnx.Tensors.Dims(tensor), w.Axis));

    public static string Label(object? value) => value switch
    {
        null => "off",
        bool b => b ? "on" : "off",
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>
    /// The knobs, in the order searched: by the gain measured in the issue-11 evaluation (docs/benchmarks.md), largest
    /// first. Adding a knob is one entry: a setting that a pass of the pipeline already reads.
    /// </summary>
    public static readonly IReadOnlyList<TuningKnob> All = new[]
    {
        // MiniLM: nearest-neighbour agreement 87.8% → 93.2% at 0.8, tried first: where the budget ends the knob after one
        // value, that value is the one measured best.
        new TuningKnob(nameof(QuantizingEstimator.Options.SmoothQuantAlpha), SmoothQuantPass.Applies,
            new object?[] { null, QuantizationDefaults.RecommendedSmoothQuantAlpha, 0.5, 0.95 },
            s => s.Equalization.SmoothQuantAlpha, (s, v) => s with { Equalization = s.Equalization with { SmoothQuantAlpha = (double?)v } })
        {
            // Every α reads the same per-channel maxima of the MatMuls' inputs, which the first trial streams anyway.
            Foresee = c => new SmoothQuantPass(QuantizationDefaults.RecommendedSmoothQuantAlpha).StatisticPoints(c),
        },
        // PaddleOCR's MobileNet classifier: worst cosine 0.77 → 0.80, and 0.925 with full bias correction after it.
        new TuningKnob(nameof(QuantizingEstimator.Options.CrossLayerEqualization), c => CrossLayerEqualizationPass.Applies(c.Model),
            new object?[] { false, true },
            s => s.Equalization.CrossLayer, (s, v) => s with { Equalization = s.Equalization with { CrossLayer = (bool)v! } }),
        // ResNet18: mean of per-row min/max 96.44% top-1 agreement against 96.17% for max; the squared-error search the
        // lowest output error on the zoo's ResNet18 rows, percentile on its embedding and classifier. Refit from one set
        // of statistics: percentile pays the histogram stream, and the squared error after it only refits.
        new TuningKnob(nameof(QuantizingEstimator.Options.ActivationCalibration), _ => true,
            new object?[]
            {
                CalibrationMethod.Max, CalibrationMethod.MeanMinMax, CalibrationMethod.Percentile, CalibrationMethod.MeanSquaredError,
                CalibrationMethod.KlDivergence,
            },
            s => s.Activations.Method, (s, v) => s with { Activations = s.Activations with { Method = (CalibrationMethod)v! } })
        {
            Skip = s => s.Activations.NeedsHistograms && s.Rows.Statistics is { HasHistograms: false }
                ? "the statistics given hold ranges only" : null,
        },
        // Weights only, no stream: balanced rounding (the default) lowered ResNet18's and the wake-word embedding's output
        // error; before bias correction, which corrects whatever rounding leaves. Only convolutions are balanced.
        new TuningKnob(nameof(QuantizingEstimator.Options.WeightRounding), BalancedRoundingApplies,
            new object?[] { WeightRounding.Balanced, WeightRounding.Nearest },
            s => s.Weights.Rounding, (s, v) => s with { Weights = s.Weights with { Rounding = (WeightRounding)v! } }),
        // Bright images and the recognizer gain from fast correction; the classifier from full correction after CLE.
        new TuningKnob(nameof(QuantizingEstimator.Options.BiasCorrection), c => BiasCorrectionLayers.Find(c).Count > 0,
            new object?[] { BiasCorrection.None, BiasCorrection.Fast, BiasCorrection.Full },
            s => s.Weights.BiasCorrection, (s, v) => s with { Weights = s.Weights with { BiasCorrection = (BiasCorrection)v! } }),
        // Last, and only towards a tolerance that the user set (as NNCF's accuracy control): the most damaging layers
        // back to float, to ever higher output cosines, until the score is within the tolerance. Slower, so never by default.
        new TuningKnob(nameof(QuantizingEstimator.Options.MinimumOutputCosine),
            c => c.Settings.Tuning is { AbsoluteTolerance: not null } or { RelativeTolerance: not null },
            new object?[] { null, 0.99, 0.995, 0.998, 0.999 },
            s => s.Rows.MinimumOutputCosine, (s, v) => s with { Rows = s.Rows with { MinimumOutputCosine = (double?)v } })
        {
            UntilWithin = true,
        },
    };
}
