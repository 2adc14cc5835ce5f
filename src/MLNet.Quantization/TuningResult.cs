using System.Globalization;
using System.Text;

namespace MLNet.Quantization;

/// <summary>
/// What the tuner of <c>Fit</c> tried and chose (see <see cref="TuningOptions"/>): every trial, the recipe returned and
/// why the search stopped. The model returned is the best trial's, unless the deployment check found it no faster than
/// the float model and the recipe as set was (see <see cref="Fallback"/>).
/// </summary>
public sealed class TuningResult
{
    internal TuningResult(IReadOnlyList<TuningTrial> trials, string objective, double reference, long rows, string stoppedBecause, double seconds,
        long heldBack = 0, int sampledEvery = 1)
    {
        Trials = trials;
        Objective = objective;
        ReferenceScore = reference;
        Rows = rows;
        HeldBackRows = Math.Max(rows, heldBack);
        SampledEvery = Math.Max(1, sampledEvery);
        StoppedBecause = stoppedBecause;
        Seconds = seconds;
    }

    /// <summary>Every trial in the order run, skipped ones included.</summary>
    public IReadOnlyList<TuningTrial> Trials { get; }

    /// <summary>The trial whose recipe was returned (null when no trial ran).</summary>
    public TuningTrial? Best => Trials.FirstOrDefault(t => t.Chosen);

    /// <summary>What was maximized, per output.</summary>
    public string Objective { get; }

    /// <summary>The float model's score against itself: what the tolerances are measured from.</summary>
    public double ReferenceScore { get; }

    /// <summary>Held-back rows each trial was scored on.</summary>
    public long Rows { get; }

    /// <summary>
    /// The rows held back from calibration: more than <see cref="Rows"/> when the float model's outputs on the later ones
    /// did not fit the 64 MB that the tuner keeps, even sampled (see <see cref="SampledEvery"/>), so that the trials were
    /// scored on the first ones only. The deployment check still compares every held-back row.
    /// </summary>
    public long HeldBackRows { get; }

    /// <summary>
    /// 1 when the trials compared every value of every output. Else the held-back rows' outputs did not fit the 64 MB
    /// that the tuner keeps (a segmenter's full-resolution maps, say), and the large outputs scored by their cosine were
    /// compared on every n-th value (n = this, the largest over the outputs), the same values on every row and trial, so
    /// that every held-back row could score the trials. Outputs under 8,192 values, a classifier's, an embedding's and
    /// integer ones are always compared whole. The deployment check compares every value.
    /// </summary>
    public int SampledEvery { get; }

    /// <summary>Why the search ended: every knob searched, the tolerance met, or the trial or time budget spent.</summary>
    public string StoppedBecause { get; }

    /// <summary>Seconds the whole search took.</summary>
    public double Seconds { get; }

    /// <summary>
    /// Why the recipe as set (the first trial, now <see cref="Best"/>) was returned instead of the best trial's: the
    /// deployment check found the best trial's int8 model under <c>MinimumSpeedup</c> on this CPU, and the recipe as set
    /// over it. Null when the best trial's recipe was returned.
    /// </summary>
    public string? Fallback { get; private init; }

    /// <summary>This result with the first trial chosen instead, for <paramref name="because"/>.</summary>
    internal TuningResult WithRecipeAsSet(string because) =>
        new(Trials.Select((t, i) => t with { Chosen = i == 0 }).ToList(), Objective, ReferenceScore, Rows, StoppedBecause, Seconds, HeldBackRows, SampledEvery)
        {
            Fallback = because,
        };

    /// <summary>One line: the recipe chosen, its score against the first trial's, and the number of trials.</summary>
    public string Summary => Best is not { } best ? $"No trial ran: {StoppedBecause}." :
        string.Create(CultureInfo.InvariantCulture,
            $"{best.Recipe}: {Objective} {best.Score:F4} (recipe as set {Trials[0].Score:F4}{Closer(best)}), {TrialsRun} trials in {Seconds:F1} s on {RowsText}; stopped: {StoppedBecause}.{FewRows}{(Fallback is null ? "" : " " + Fallback)}");

    private int TrialsRun => Trials.Count(t => t.Skipped is null);

    // Fewer held-back rows than the tuner ranks on (Tuner.MinimumHardRows): a trial's score then turns on one row (on
    // all-MiniLM-L6-v2 a change of 10⁻⁷ in the histograms' edges moved one row of 40; on M-LSD with 7 images one row's
    // sparse output decided every trial: docs/benchmarks.md, sixteenth session).
    private string FewRows => Rows >= Tune.Tuner.MinimumHardRows || TrialsRun < 2 ? ""
        : string.Create(CultureInfo.InvariantCulture,
            $" Only {Plural.Of(Rows, "held-back row")} scored the trials, so one row can decide them: give at least {Tune.Tuner.MinimumHardRows * 5} rows (every fifth is held back).");

    // A chosen recipe that scores below the recipe as set: the difference was within the rows' noise (TrialScore), and
    // the closer outputs decided.
    private string Closer(TuningTrial best) => best.Number != 1 && best.Score < Trials[0].Score
        ? string.Create(CultureInfo.InvariantCulture,
            $"; within the noise of {Rows} rows, so the closer outputs decided: mean cosine {best.MeanCosine:F4} against {Trials[0].MeanCosine:F4}")
        : "";

    private string RowsText
    {
        get
        {
            long budget = Tune.TrialMeasurement.Budget >> 20;
            string rows = HeldBackRows > Rows ? $"{Rows} of {HeldBackRows} held-back rows" : Plural.Of(Rows, "held-back row");
            string sampled = $"large outputs compared on every {Ordinal(SampledEvery)} value";
            return (HeldBackRows > Rows, SampledEvery > 1) switch
            {
                (true, true) => $"{rows} ({sampled}; the float outputs of the others did not fit the {budget} MB kept for scoring even so)",
                (true, false) => $"{rows} (the float outputs of the others did not fit the {budget} MB kept for scoring)",
                (false, true) => $"{rows} ({sampled}, to fit the {budget} MB kept for scoring)",
                _ => rows,
            };
        }
    }

    private static string Ordinal(int n) => n.ToString(CultureInfo.InvariantCulture) + ((n % 100) is 11 or 12 or 13 ? "th" : (n % 10) switch { 1 => "st", 2 => "nd", 3 => "rd", _ => "th" });

    /// <summary>The trials table as CSV, one row per trial.</summary>
    public string ToCsv()
    {
        var csv = new StringBuilder("number,knob,value,recipe,score,hard_rows_score,mean_cosine,worst_cosine,seconds,chosen,skipped\n");
        foreach (var t in Trials)
            csv.AppendLine(string.Join(",", t.Number.ToString(CultureInfo.InvariantCulture), Csv.Quote(t.Knob), Csv.Quote(t.Value), Csv.Quote(t.Recipe),
                Number(t.Score), Number(t.HardRowsScore), Number(t.MeanCosine), Number(t.WorstCosine), Number(t.Seconds),
                t.Chosen ? "true" : "false", Csv.Quote(t.Skipped ?? "")));
        return csv.ToString();

        static string Number(double v) => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>Writes <see cref="ToCsv"/> to <paramref name="path"/>, atomically.</summary>
    public void WriteCsv(string path)
    {
        var text = Encoding.UTF8.GetBytes(ToCsv());
        AtomicFile.Write(path, stream => stream.Write(text));
    }
}
