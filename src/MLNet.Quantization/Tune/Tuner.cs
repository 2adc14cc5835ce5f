using System.Diagnostics;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Tune;

/// <summary>
/// The search of <c>Fit</c> over the recipe, as NNCF's hyperparameter tuner searches: one knob at a time, in the order
/// of <see cref="TuningKnob.All"/>, each knob set to the value that scores best with every other knob at its best so
/// far. It drives the pipeline's <see cref="QuantizationPipeline.Recipe"/>, and is not a second <c>Fit</c>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// - **Trials**: each candidate recipe is realized and run, fused as ML.NET runs it, on the held-back rows (never the
///   calibration rows), against the float model's outputs computed once (`TrialMeasurement`).
/// - **Statistics once per step**: a trial runs only the steps of the recipe whose settings differ from a recipe
///   already run (`PipelineStep.Key`), starting from that recipe's result. The candidates of one knob share everything
///   before the knob's step: the calibration methods refit from one set of statistics, the bias corrections share
///   the calibrated parameters, and only SmoothQuant and cross-layer equalization, which change the float model,
///   collect statistics again: after SmoothQuant, only of the smoothed tensors (the others keep their values), and the
///   maxima SmoothQuant itself reads are reduced in the first trial's stream (`TuningKnob.Foresee`). Results are kept
///   for the best recipe's steps and the knob's leading candidate only.
/// - **Ranked on the hardest rows, accepted on all**: the hardest rows are the quarter of the held-back rows (at least
///   8, or all) where the first trial's cosine was lowest. A candidate leads its knob when it beats the leader on them,
///   and only if it is not worse, on every row together, than any recipe that was the best so far (the recipe as set
///   included). Where the objective counts rows (top-1 or nearest-neighbour agreement), scores within the noise of
///   their paired difference (about two standard errors, and at least one row) tie and the mean, then the worst,
///   cosine decide (`TrialScore`): two rows gained on 40 held-back rows, or one on 8 hard rows, is noise, a cosine over
///   every row is not. Ties are not transitive, so comparing with the last best alone would let the objective
///   drift down one row per knob; every earlier best bounds it.
/// - **Always the best found**: the budget (trials, time) ends the search between trials, and the best recipe so far is
///   returned; a trial that the time left cannot hold by estimate is skipped, and the table says so.
/// - **Tolerance**: once the best score is within the tolerance of the float model's own, the search ends. With a
///   tolerance set, the last knob keeps the most damaging layers in float (`MinimumOutputCosine`), its values in order
///   of ever more float, and takes the first value within the tolerance (else the best): NNCF's accuracy control.
/// ]]></format>
/// </remarks>
internal static class Tuner
{
    /// <summary>The fraction of the held-back rows that rank the candidates.</summary>
    public const double HardRowsFraction = 0.25;

    /// <summary>Below this many held-back rows every row is a hard row.</summary>
    public const int MinimumHardRows = 8;

    private sealed record Trial(QuantizationSettings Settings, QuantizationContext Context, TrialScore All, TrialScore Hard, int Index);

    /// <summary>Runs the search on <paramref name="root"/> (the loaded float model) and returns the best recipe's realized context.</summary>
    /// <param name="root">The loaded float model, its data and settings.</param>
    /// <param name="before">What <c>Fit</c> spent before the search (reading and preparing the model): part of the cost
    /// that the default budget is a multiple of.</param>
    public static QuantizationContext Run(QuantizationContext root, TimeSpan before = default)
    {
        var tuning = root.Settings.Tuning ?? throw new InvalidOperationException("Tuning is off.");
        var clock = Stopwatch.StartNew();
        var cache = new StepCache(root);
        var measurement = new TrialMeasurement(root);
        var progress = root.Settings.Rows.Progress;
        var table = new List<TuningTrial>();

        // What the knobs' steps will read of the float model as loaded, whatever their values: reduced in the first stream.
        if (QuantizationPipeline.Recipe(root.Settings).All(s => !s.ChangesModel))
            foreach (var knob in TuningKnob.All.Where(k => k.Foresee is not null && !tuning.Pinned.Contains(k.Option) && k.Applies(root)))
            {
                if (!root.Foreseen.TryGetValue(root.ModelVersion, out var sets)) root.Foreseen[root.ModelVersion] = sets = new();
                sets.Add(knob.Foresee!(root));
            }
        var first = cache.Build(root.Settings);
        if (measurement.Float.Count == 0)
        {
            // Fewer than 5 rows: none was held back, so every row calibrated. The checks then measure on those rows, as
            // without tuning, rather than on none (which would leave the model unchecked in silence).
            var unheld = first.Fork(first.Settings with { Rows = first.Settings.Rows with { HoldBack = false } }, cloneModel: false);
            unheld.Tuning = new TuningResult(table, "none", 1, 0,
                "no held-back rows (every fifth row is held back: give at least 5 rows); the checks measure on the calibration rows",
                clock.Elapsed.TotalSeconds);
            return unheld;
        }

        var rows = Enumerable.Range(0, measurement.Float.Count).ToList();
        var scorings = TuningScores.Scorings(root.Model, tuning.Objective, measurement.Shapes, measurement.Exact, measurement.Float.Count, measurement.InputAxes);
        string objective = tuning.Metric is not null ? "user metric"
            : string.Join(", ", measurement.Outputs.Zip(scorings, (o, s) => $"{o}: {Describe(s)}").Distinct());
        double Value(IReadOnlyList<float[][]> quantized, IReadOnlyList<int> subset) => tuning.Metric is { } metric
            ? metric(new TuningOutputs(measurement.Outputs, subset.Select(r => measurement.Float[r]).ToList(), subset.Select(r => quantized[r]).ToList()))
            : TuningScores.Objective(scorings, measurement.Shapes, measurement.Float, quantized, subset);
        double reference = Value(measurement.Float, rows);
        bool counted = tuning.Metric is null && scorings.All(s => s is OutputScoring.TopOne or OutputScoring.Neighbour);
        IReadOnlyList<int> hard = rows;
        TrialScore Score(IReadOnlyList<float[][]> quantized, IReadOnlyList<int> subset)
        {
            var cosines = TuningScores.RowCosines(subset.Select(r => measurement.Float[r]).ToList(), subset.Select(r => quantized[r]).ToList(), measurement.Exact);
            // The rows' parts of a counted objective, for the paired tie rule (TrialScore): not for a user metric.
            var (value, output, parts) = tuning.Metric is null
                ? TuningScores.Deciding(scorings, measurement.Shapes, measurement.Float, quantized, subset)
                : (Value(quantized, subset), -1, null);
            return new TrialScore(value, cosines.DefaultIfEmpty(1).Average(), cosines.DefaultIfEmpty(1).Min(),
                counted && subset.Count > 0 ? 1.0 / subset.Count : 0) { Rows = counted ? parts : null, Output = output };
        }

        // 1. The recipe as set.
        var quantized = measurement.Run(first.Realized);
        double firstSeconds = clock.Elapsed.TotalSeconds;
        var rowCosines = TuningScores.RowCosines(measurement.Float, quantized, measurement.Exact);
        if (rows.Count > MinimumHardRows)
            hard = rows.OrderBy(r => rowCosines[r]).ThenBy(r => r)
                .Take(Math.Max(MinimumHardRows, (int)Math.Ceiling(rows.Count * HardRowsFraction))).OrderBy(r => r).ToList();
        var knobs = TuningKnob.All.Where(k => !tuning.Pinned.Contains(k.Option) && k.Applies(first)).ToList();
        string Recipe(QuantizationSettings s) => knobs.Count == 0 ? "the recipe as set"
            : string.Join(", ", knobs.Select(k => $"{k.Option}={TuningKnob.Label(k.Get(s))}"));
        var best = new Trial(root.Settings, first, Score(quantized, rows), Score(quantized, hard), 0);
        var bests = new List<Trial> { best };
        table.Add(Row(1, "recipe as set", "", Recipe(root.Settings), best, firstSeconds));
        Report(progress, table, clock);

        var budget = tuning.TimeBudget ?? TimeSpan.FromSeconds(DefaultBudgetSeconds(before.TotalSeconds, firstSeconds));
        double perStream = firstSeconds / Math.Max(1, cache.Streams(root.Settings, fromScratch: true) + 1);
        bool toleranceMet = false, trialsSpent = false, timeSpent = false;
        foreach (var knob in knobs)
        {
            toleranceMet = Within(best.All.Value, reference, tuning);
            if (toleranceMet) break;
            Trial? leader = null;
            foreach (var value in knob.Values.Where(v => !Equals(v, knob.Get(best.Settings))))
            {
                var settings = knob.Set(best.Settings, value);
                string label = TuningKnob.Label(value);
                int number = table.Count + 1;
                trialsSpent = table.Count(t => t.Skipped is null) >= tuning.MaximumTrials;
                if (trialsSpent) break;
                double estimate = (cache.Streams(settings, fromScratch: false) + 1) * perStream;
                bool late = clock.Elapsed.TotalSeconds + estimate > budget.TotalSeconds;
                string? skip = knob.Skip(settings) ?? (late
                    ? $"the time budget: about {estimate:F1} s estimated, {Math.Max(0, budget.TotalSeconds - clock.Elapsed.TotalSeconds):F1} s left"
                    : null);
                if (skip is not null)
                {
                    table.Add(new TuningTrial { Number = number, Knob = knob.Option, Value = label, Recipe = Recipe(settings), Skipped = skip,
                        Score = double.NaN, HardRowsScore = double.NaN, MeanCosine = double.NaN, WorstCosine = double.NaN });
                    Report(progress, table, clock);
                    timeSpent |= late;
                    continue;
                }
                var started = clock.Elapsed;
                var context = cache.Build(settings);
                var output = measurement.Run(context.Realized);
                var trial = new Trial(settings, context, Score(output, rows), Score(output, hard), table.Count);
                table.Add(Row(number, knob.Option, label, Recipe(settings), trial, (clock.Elapsed - started).TotalSeconds));
                Report(progress, table, clock);
                bool within = knob.UntilWithin && Within(trial.All.Value, reference, tuning);
                if (knob.UntilWithin ? trial.All > (leader ?? best).All || within : Leads(trial.Hard, trial.All, (leader ?? best).Hard, bests.Select(b => b.All)))
                    leader = trial;
                cache.Keep(best.Settings, leader?.Settings);
                if (within) break;
            }
            if (leader is not null) bests.Add(best = leader);
            cache.Keep(best.Settings, null);
            if (trialsSpent) break;
        }
        toleranceMet |= Within(best.All.Value, reference, tuning);
        string stopped = toleranceMet ? "the tolerance is met"
            : trialsSpent ? $"the trial budget ({tuning.MaximumTrials}) is spent"
            : timeSpent ? "the time budget is spent"
            : knobs.Count == 0 ? "no knob applies to this model, or every knob is pinned" : "every knob searched";
        table[best.Index] = table[best.Index] with { Chosen = true };
        best.Context.Tuning = new TuningResult(table, objective, reference, rows.Count, stopped, clock.Elapsed.TotalSeconds, measurement.HeldBack,
            measurement.SampledEvery);
        best.Context.FloatOutputs = measurement.Reference; // the checks compare with these (none where sampled): the float model need not run on every row again
        best.Context.RecipeAsSet = best.Index == 0 ? null : first;
        return best.Context;
    }

    /// <summary>
    /// The default time budget of the search, in seconds from its start: the first trial (<paramref name="firstSeconds"/>,
    /// the float outputs of the held-back rows included), then <see cref="TuningOptions.DefaultBudgetFactor"/> times what
    /// <c>Fit</c> took until that trial was scored (<paramref name="beforeSeconds"/> reading and preparing the model, and
    /// the first trial), and at least <see cref="TuningOptions.MinimumDefaultBudgetSeconds"/>.
    /// </summary>
    /// <remarks>
    /// What <c>Fit</c> took until the first trial was scored is about what an untuned <c>Fit</c> costs, measured on the
    /// same machine at the same moment: a budget in proportion to it keeps a tuned <c>Fit</c> at about the same multiple of
    /// an untuned one whether the machine runs fast or slow, where a fixed number of seconds does not (all-MiniLM-L6-v2's
    /// untuned <c>Fit</c> read 2.5–5.4 s within one session on one machine: docs/benchmarks.md, fifteenth session).
    /// </remarks>
    internal static double DefaultBudgetSeconds(double beforeSeconds, double firstSeconds) =>
        Math.Max(TuningOptions.MinimumDefaultBudgetSeconds, firstSeconds + TuningOptions.DefaultBudgetFactor * (beforeSeconds + firstSeconds));

    /// <summary>
    /// Returns the memory that the trials left to the system, once <see cref="Run"/> has returned and before the checks:
    /// what the steps collected for later trials is dropped (<see cref="QuantizationContext.ForgetCollected"/>, in the
    /// recipe as set too, which shares it), then one blocking, compacting collection of every generation, the
    /// large-object heap included.
    /// </summary>
    /// <remarks>
    /// The trials allocate far more than they keep: each realizes a model and serializes it for its session, and each
    /// SmoothQuant candidate copies the weights it smooths (1.3 GB allocated in a tuned <c>Fit</c> of all-MiniLM-L6-v2,
    /// against 0.5 GB untuned). The collector keeps that space committed once the trials are garbage, and the checks
    /// that follow open ONNX Runtime sessions, whose native memory cannot reuse it. MiniLM's tuned peak working set was
    /// its untuned one's plus 17–32% in the runs measured; after this collection (about 0.1 s) it is plus 10% on
    /// average, at most 20% (docs/benchmarks.md, fourteenth session).
    /// </remarks>
    public static void ReleaseTrialMemory(QuantizationContext chosen)
    {
        var clock = Stopwatch.StartNew();
        chosen.ForgetCollected();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        chosen.Timings.Add(("ReleaseTrialMemory", clock.Elapsed.TotalSeconds));
    }

    /// <summary>
    /// Whether a candidate leads its knob: it beats the leader (<paramref name="leaderHard"/>) on the hard rows, and on
    /// every row together it is not worse than any recipe that was the best so far (<paramref name="bests"/>).
    /// </summary>
    internal static bool Leads(TrialScore hard, TrialScore all, TrialScore leaderHard, IEnumerable<TrialScore> bests) =>
        hard > leaderHard && bests.All(b => all >= b);

    private static bool Within(double score, double reference, TuningSettings tuning)
    {
        if (tuning.AbsoluteTolerance is null && tuning.RelativeTolerance is null) return false;
        double allowed = Math.Max(tuning.AbsoluteTolerance ?? 0, (tuning.RelativeTolerance ?? 0) * Math.Abs(reference));
        return score >= reference - allowed;
    }

    private static TuningTrial Row(int number, string knob, string value, string recipe, Trial trial, double seconds) => new()
    {
        Number = number, Knob = knob, Value = value, Recipe = recipe, Score = trial.All.Value, HardRowsScore = trial.Hard.Value,
        MeanCosine = trial.All.MeanCosine, WorstCosine = trial.All.WorstCosine, Seconds = seconds,
    };

    private static void Report(IProgress<CalibrationProgress>? progress, List<TuningTrial> table, Stopwatch clock) =>
        progress?.Report(new CalibrationProgress(5, table.Count, table.Count / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)) { Trial = table[^1] });

    private static string Describe(OutputScoring scoring) => scoring switch
    {
        OutputScoring.TopOne => "top-1 agreement",
        OutputScoring.Neighbour => "nearest-neighbour agreement",
        OutputScoring.Equality => "values equal",
        _ => "mean cosine",
    };
}
