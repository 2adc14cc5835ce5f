using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The deployed model (exactly as ML.NET runs it, every fusion intact, with the transformer's thread count) against the
/// float model on the measurement rows: each float output compared, and both timed.
/// </summary>
/// <remarks>
/// Timing: every comparison run is timed, the two models alternating which runs first from row to row, and the first
/// row left out (warm-up). Where the float model's outputs on the rows were kept (the tuner computed them once), the
/// deployed model is compared with those, and the float model runs only on the first <see cref="MinimumSamples"/> + 1
/// rows, for the timing. Where that gives fewer than <see cref="MinimumSamples"/> runs of each, the first rows run
/// both models again, alternately, until it does or the float model's timed runs reach
/// <see cref="BudgetMilliseconds"/>, and in any case until each model has <see cref="MinimumTimedPairs"/> timed runs. The time per row is each model's median run: alternating spreads the machine's
/// noise over both, and the median drops the runs that a busy machine stretches.
/// </remarks>
internal static class DeploymentMeasurement
{
    public const int MinimumSamples = 16;

    public const double BudgetMilliseconds = 400;

    /// <summary>
    /// The fewest timed runs of each model, whatever <see cref="BudgetMilliseconds"/> says: a model of seconds a row (ISNet,
    /// 2–4 s here) was otherwise judged on one run of each: on the same int8 model, <c>Fit</c> read 1.50x the float
    /// model's speed and the zoo harness's single round 0.82x (docs/benchmarks.md, fifteenth session).
    /// </summary>
    public const int MinimumTimedPairs = 3;

    public sealed record Result(IReadOnlyList<OutputComparison> Outputs, double FloatMs, double DeployedMs, long Rows)
    {
        /// <summary>The timed runs of each model whose median is <see cref="FloatMs"/> (0 when nothing was timed).</summary>
        public int TimedRuns { get; init; }

        /// <summary>The largest relative error over the outputs.</summary>
        public double WorstRelativeError => OutputComparison.WorstRelativeError(Outputs);
    }

    /// <summary>
    /// Compares every output, and times both models unless <paramref name="time"/> is false. <paramref name="floatOutputs"/>: the
    /// float model's outputs on the first measurement rows, in order (null for an output that is not float), if kept.
    /// <paramref name="budgetMilliseconds"/>: <see cref="BudgetMilliseconds"/> (smaller in tests).
    /// </summary>
    public static Result Measure(OnnxGraph prepared, OnnxGraph deployed, IDataView data, QuantizationSettings settings, bool time = true,
        IReadOnlyList<float[]?[]>? floatOutputs = null, double budgetMilliseconds = BudgetMilliseconds)
    {
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        int? threads = settings.Realization.IntraOpNumThreads;
        // The float model is loaded only if a row needs it: not where its outputs were kept and nothing is timed.
        using var floatSession = new LazySession(() => Sessions.Create(prepared, Array.Empty<string>(), "the float model", threads));
        using var deployedSession = Sessions.Create(deployed, Array.Empty<string>(), "the quantized model", threads);
        using var runOptions = new RunOptions();
        var comparisons = new OutputComparisons(outputs);
        var floatTimes = new List<double>();
        var deployedTimes = new List<double>();
        var clock = new Stopwatch();
        long index = 0;
        IDisposableReadOnlyCollection<OrtValue> Timed(InferenceSession session, IReadOnlyCollection<string> names,
            IReadOnlyCollection<OrtValue> values, List<double> times, bool keep)
        {
            clock.Restart();
            var result = session.Run(runOptions, names, values, outputs);
            if (keep) times.Add(clock.Elapsed.TotalMilliseconds);
            return result;
        }
        long rows = RowReader.ForEach(deployedSession, data, settings, 3, settings.Rows.IsMeasurementRow, (_, names, values) =>
        {
            long row = index++;
            var kept = floatOutputs is not null && row < floatOutputs.Count ? floatOutputs[(int)row] : null;
            IDisposableReadOnlyCollection<OrtValue>? reference = null;
            IDisposableReadOnlyCollection<OrtValue> quantized;
            if (kept is not null && (row > MinimumSamples || !time))
            {
                quantized = deployedSession.Run(runOptions, names, values, outputs); // off the timing rows the kept outputs stand for the float run
            }
            else if (row % 2 == 0)
            {
                reference = Timed(floatSession.Value, names, values, floatTimes, time && row > 0);
                quantized = Timed(deployedSession, names, values, deployedTimes, time && row > 0);
            }
            else
            {
                quantized = Timed(deployedSession, names, values, deployedTimes, time);
                reference = Timed(floatSession.Value, names, values, floatTimes, time);
            }
            using (reference)
            using (quantized)
            {
                if (kept is not null) comparisons.Add(kept, quantized);
                else comparisons.Add(reference!, quantized);
            }
        });
        // Few rows: the first ones run both models again, alternately, until there are enough timings: MinimumSamples, or
        // MinimumTimedPairs once the float model's timed runs reach BudgetMilliseconds (a model of seconds a row).
        int Wanted() => floatTimes.Sum() < budgetMilliseconds ? MinimumSamples : MinimumTimedPairs;
        while (time && rows > 0 && floatTimes.Count < Wanted())
        {
            int before = floatTimes.Count;
            RowReader.ForEach(deployedSession, data, settings, 3, settings.Rows.IsMeasurementRow, (_, names, values) =>
            {
                for (int round = 0; round < 2 && floatTimes.Count < Wanted(); round++)
                {
                    bool floatFirst = round == 0;
                    Timed(floatFirst ? floatSession.Value : deployedSession, names, values, floatFirst ? floatTimes : deployedTimes, true).Dispose();
                    Timed(floatFirst ? deployedSession : floatSession.Value, names, values, floatFirst ? deployedTimes : floatTimes, true).Dispose();
                }
            }, maximumVisited: Math.Max(1, (Wanted() - before + 1) / 2));
            if (floatTimes.Count == before) break;
        }
        return new Result(comparisons.ToList(), Median(floatTimes), Median(deployedTimes), rows) { TimedRuns = floatTimes.Count };
    }

    private static double Median(List<double> values) => values.Count == 0 ? double.NaN : values.OrderBy(v => v).ElementAt(values.Count / 2);
}
