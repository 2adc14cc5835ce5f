using System.Diagnostics;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// One step of the pipeline: passes whose statistics are collected in one stream. <see cref="Key"/> is what the step
/// reads of the settings, so that the tuner can tell two recipes that run the step alike (and reuse its result) from two
/// that do not; <see cref="ChangesModel"/> says whether it rewrites the float model (which a reused result must not share).
/// </summary>
internal sealed record PipelineStep(string Name, object? Key, bool ChangesModel, IReadOnlyList<IQuantizationPass> Passes)
{
    /// <summary>
    /// Whether the rewrite keeps the value of every tensor the model had (up to float rounding) and only adds tensors:
    /// the activation statistics of the model before it then hold for the rewritten model, and only the new tensors are
    /// collected (<see cref="QuantizationContext.ValuesKeptFrom"/>).
    /// </summary>
    public bool KeepsTensorValues { get; init; }
}

/// <summary>
/// The passes of <c>Fit</c>, grouped into steps as NNCF's post-training pipeline groups its algorithms: the statistics
/// that the passes of a step declare are collected together, in one stream over the calibration rows of the model as
/// the previous steps left it, and then the passes apply in order. A step whose passes need no statistics reads no
/// rows. Adding an algorithm is one pass file and one entry below.
/// </summary>
/// <remarks>
/// Two passes read rows themselves, because what they measure is not the float model: collecting activation
/// statistics (a range pass, then a histogram pass over the ranges, as in TVM; none when statistics are given), and
/// the fallback and the checks, which run the realized model. The steps split in two: the <see cref="Recipe"/>,
/// which makes a realized model from the settings (the fallback to <c>MinimumOutputCosine</c> included) and which the
/// tuner runs once per trial, and the <see cref="Checks"/>, which measure the realized model that is kept.
/// </remarks>
internal static class QuantizationPipeline
{
    /// <summary>Every step for <paramref name="settings"/>: the recipe, then the checks.</summary>
    public static IReadOnlyList<PipelineStep> Steps(QuantizationSettings settings) => Recipe(settings).Concat(Checks(settings)).ToList();

    /// <summary>The steps that make a realized model from <paramref name="settings"/> (disabled passes left out).</summary>
    public static IReadOnlyList<PipelineStep> Recipe(QuantizationSettings settings) => new[]
    {
        Step("cross-layer equalization", settings.Equalization.CrossLayer, changesModel: true,
            settings.Equalization.CrossLayer ? new CrossLayerEqualizationPass() : null),
        // (X·diag(1/s))·(diag(s)·W) = X·W: every tensor keeps its value, and each smoothed input is a new one.
        Step("SmoothQuant", settings.Equalization.SmoothQuantAlpha, changesModel: true,
            settings.Equalization.SmoothQuantAlpha is { } alpha ? new SmoothQuantPass(alpha) : null) with { KeepsTensorValues = true },
        Step("statistics", settings.Activations.CollectHistograms, changesModel: false, new AnnotatePass(), new ActivationStatisticsPass()),
        Step("calibration", (settings.Activations, settings.Weights with { BiasCorrection = BiasCorrection.None }), changesModel: false,
            new CalibratePass()),
        Step("bias correction", settings.Weights.BiasCorrection, changesModel: false, settings.Weights.BiasCorrection switch
        {
            BiasCorrection.Fast => new FastBiasCorrectionPass(),
            BiasCorrection.Full => new FullBiasCorrectionPass(),
            _ => null,
        }),
        Step("realization", settings.Realization.Mode, changesModel: false, new RealizePass()),
        // After realization: it keeps layers in float by measuring realized models (a knob of the tuner, see TuningKnob).
        Step("fallback", settings.Rows.MinimumOutputCosine, changesModel: false,
            settings.Rows.MinimumOutputCosine is not null ? new FallbackPass() : null),
    }.Where(s => s.Passes.Count > 0).ToList();

    /// <summary>The steps that measure the realized model that is kept, and send layers back to float where the int8 kernels disagree.</summary>
    public static IReadOnlyList<PipelineStep> Checks(QuantizationSettings settings) => new[]
    {
        Step("checks", null, changesModel: false,
            settings.Realization.Mode == QuantizationMode.Int8 ? new AgreementPass() : null,
            settings.Realization.CheckDeployment ? new DeploymentCheckPass() : null),
    }.Where(s => s.Passes.Count > 0).ToList();

    /// <summary>The progress pass number of the algorithms' statistics (1–3: activation statistics and measurements).</summary>
    private const int AlgorithmStatisticsPass = 4;

    /// <summary>Runs every step on <paramref name="context"/>.</summary>
    public static void Run(QuantizationContext context, IReadOnlyList<IReadOnlyList<IQuantizationPass>> steps)
    {
        foreach (var step in steps) Run(context, step);
    }

    /// <summary>Runs every step on <paramref name="context"/>.</summary>
    public static void Run(QuantizationContext context, IReadOnlyList<PipelineStep> steps)
    {
        foreach (var step in steps) Run(context, step);
    }

    /// <summary>
    /// Runs one step; after a step that rewrites the float model, statistics collected on it before are not reused, but
    /// for the tensors whose values a step that keeps them left alone.
    /// </summary>
    public static void Run(QuantizationContext context, PipelineStep step)
    {
        Run(context, step.Passes);
        if (step.ChangesModel) context.ModelChanged(step.KeepsTensorValues);
    }

    /// <summary>
    /// Runs one step: its statistics in one stream (none where the same points were collected on the same float model
    /// and rows before), then its passes in order.
    /// </summary>
    public static void Run(QuantizationContext context, IReadOnlyList<IQuantizationPass> step)
    {
        var clock = Stopwatch.StartNew();
        var points = step.SelectMany(p => p.StatisticPoints(context)).ToList();
        long rows = step.Select(p => p.StatisticRows).DefaultIfEmpty(long.MaxValue).Min();
        var key = CollectionKey(context, points, rows);
        if (key is not { } k || !context.Collected.TryGetValue(k, out var statistics))
        {
            statistics = StatisticPointCollector.Collect(context, points, AlgorithmStatisticsPass, maximumRows: rows);
            if (key is { } fresh) context.Collected[fresh] = statistics;
            if (points.Count > 0) context.Timings.Add(($"statistics for {string.Join(", ", step.Select(Name))}", clock.Elapsed.TotalSeconds));
        }
        foreach (var pass in step)
        {
            clock.Restart();
            pass.Apply(context, statistics);
            context.Timings.Add((Name(pass), clock.Elapsed.TotalSeconds));
        }
    }

    /// <summary>
    /// What identifies a collection of <paramref name="points"/> on the first <paramref name="rows"/> calibration rows of
    /// the context's float model (see <see cref="QuantizationContext.Collected"/>); null for points that add nodes (a
    /// probe), which are not compared: two probes are two functions.
    /// </summary>
    public static (object Version, RowSettings Rows, string Points)? CollectionKey(QuantizationContext context, IReadOnlyList<StatisticPoint> points, long rows) =>
        points.Count > 0 && points.All(p => p.Probe is null)
            ? (context.ModelVersion, context.Settings.Rows, $"{rows}\n" + string.Join("\n", points.Select(p => $"{p.Tensor}\t{p.Axis}{(p.RowExtremes ? "\trows" : "")}").Distinct().Order(StringComparer.Ordinal)))
            : null;

    private static string Name(IQuantizationPass pass) => pass.GetType().Name.Replace("Pass", "");

    private static PipelineStep Step(string name, object? key, bool changesModel, params IQuantizationPass?[] passes) =>
        new(name, key, changesModel, passes.OfType<IQuantizationPass>().ToList());
}
