namespace MLNet.Quantization;

/// <summary>
/// The search that <c>Fit</c> runs over the recipe (see <see cref="QuantizingEstimator.Options.Tuning"/>), label-free:
/// each trial is a realized model, run as ML.NET runs it, scored on held-back rows (every fifth row, which calibration
/// then skips) against the float model.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// The knobs, searched one at a time in this order (each only where the model has the ops it applies to, and only where
/// the option was not set explicitly): `SmoothQuantAlpha` (off, 0.8, 0.5, 0.95; MatMuls with constant weights),
/// `CrossLayerEqualization` (Conv chains), `ActivationCalibration` (max, mean of per-row min/max, percentile, KL: all
/// refit from one set of statistics), `WeightRounding` (balanced, nearest; convolutions) and `BiasCorrection`
/// (none, fast, full; Conv, Gemm, MatMul layers). Each knob keeps
/// the value that scores best, so that the model returned is the best one found, whatever the budget cut.
/// ]]></format>
/// </remarks>
public sealed class TuningOptions
{
    /// <summary>
    /// The default budget: the trials after the first may take this many times as long as <c>Fit</c> took until the first
    /// trial was scored (reading the model, the float model on the held-back rows, the recipe as set realized and run).
    /// That is about the cost of an untuned <c>Fit</c> on the same machine at the same moment, so a tuned <c>Fit</c> costs
    /// about 1 + this factor times an untuned one, however fast the machine is running.
    /// </summary>
    public const double DefaultBudgetFactor = 2;

    /// <summary>
    /// The least default budget, in seconds: on small models the first trial is mostly fixed costs (sessions), and twice
    /// it would not leave room for one trial per knob. 6 s holds the PaddleOCR direction classifier's knobs up to fast
    /// bias correction; on all-MiniLM-L6-v2 and ResNet18 (200 rows) <see cref="DefaultBudgetFactor"/> sets the budget
    /// (docs/benchmarks.md, fifteenth session).
    /// </summary>
    public const double MinimumDefaultBudgetSeconds = 6;

    /// <summary>What is maximized. Default <see cref="TuningObjective.Auto"/>.</summary>
    public TuningObjective Objective { get; set; } = TuningObjective.Auto;

    /// <summary>
    /// A metric of your own, higher is better, on the float and the quantized outputs of the held-back rows; it replaces
    /// <see cref="Objective"/>. Its value on the float outputs against themselves is the reference that the tolerances
    /// are measured from.
    /// </summary>
    public Func<TuningOutputs, double>? Metric { get; set; }

    /// <summary>
    /// Stop searching once the best score is within this much of the float model's own score (1 for the built-in
    /// objectives: a cosine, or a fraction of rows or positions; the metric's own unit for <see cref="Metric"/>).
    /// Null (the default): search every knob within the budget. Non-negative.
    /// </summary>
    public double? AbsoluteTolerance { get; set; }

    /// <summary>
    /// As <see cref="AbsoluteTolerance"/>, as a fraction of the float model's own score (0.01: within 1% of it). Null by
    /// default; in [0, 1].
    /// </summary>
    public double? RelativeTolerance { get; set; }

    /// <summary>The most trials, the first (the recipe as set) included. Default 12; at least 1.</summary>
    public int MaximumTrials { get; set; } = 12;

    /// <summary>
    /// The time the search may take, the first trial included. A trial that the time left cannot hold (by an estimate
    /// from the streams it needs and the first trial's cost per stream) is skipped and listed as such. Null (the
    /// default): the first trial, then <see cref="DefaultBudgetFactor"/> times what <c>Fit</c> took until that trial was
    /// scored, and at least <see cref="MinimumDefaultBudgetSeconds"/> in all. Positive.
    /// </summary>
    public TimeSpan? TimeBudget { get; set; }
}
