using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The deployed model (exactly as ML.NET runs it, every fusion intact, with the transformer's thread count) against the
/// float model on the measurement rows: each float output compared, and both timed. Given the simulated model as
/// well, the same stream compares the deployed model with it (the agreement check's first pass), so that the
/// measurement rows are read and the deployed model run once for both checks.
/// </summary>
/// <remarks>
/// Timing: every comparison run is timed, the two models alternating which runs first from row to row, and the first
/// row left out (warm-up). Where that gives fewer than <see cref="MinimumSamples"/> runs of each, the first rows run
/// both models again, alternately, until it does or the float model's timed runs reach
/// <see cref="BudgetMilliseconds"/>. The time per row is each model's median run: alternating spreads the machine's
/// noise over both, and the median drops the runs that a busy machine stretches.
/// </remarks>
internal static class DeploymentMeasurement
{
    public const int MinimumSamples = 16;

    public const double BudgetMilliseconds = 400;

    public sealed record Result(IReadOnlyList<OutputComparison> Outputs, double FloatMs, double DeployedMs, long Rows)
    {
        /// <summary>
        /// With a simulated model: the mean and the worst per-row cosine of the deployed model's float outputs to its
        /// (see <see cref="Sessions.Cosine"/>); null without one.
        /// </summary>
        public (double Mean, double Worst)? Simulated { get; init; }

        /// <summary>The largest relative error over the outputs.</summary>
        public double WorstRelativeError => Outputs.Select(o => o.RelativeError).DefaultIfEmpty(0).Max();
    }

    /// <summary>
    /// Compares every output, and times both models unless <paramref name="time"/> is false; compares the deployed
    /// model with <paramref name="simulated"/> too when one is given (untimed).
    /// </summary>
    public static Result Measure(OnnxGraph prepared, OnnxGraph deployed, IDataView data, QuantizationSettings settings, bool time = true,
        OnnxGraph? simulated = null)
    {
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        int? threads = settings.Realization.IntraOpNumThreads;
        using var floatSession = Sessions.Create(prepared, Array.Empty<string>(), "the float model", threads);
        using var deployedSession = Sessions.Create(deployed, Array.Empty<string>(), "the quantized model", threads);
        using var simulatedSession = simulated is null ? null : Sessions.Create(simulated, Array.Empty<string>(), "the simulated model", threads);
        double simulatedCosines = 0, simulatedWorst = 1;
        using var runOptions = new RunOptions();
        var comparisons = new OutputComparisons(outputs.Length);
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
        long rows = RowReader.ForEach(floatSession, data, settings, 3, settings.Rows.IsMeasurementRow, (_, names, values, _) =>
        {
            bool keep = time && index > 0, floatFirst = index++ % 2 == 0;
            using var first = floatFirst ? Timed(floatSession, names, values, floatTimes, keep) : Timed(deployedSession, names, values, deployedTimes, keep);
            using var second = floatFirst ? Timed(deployedSession, names, values, deployedTimes, keep) : Timed(floatSession, names, values, floatTimes, keep);
            var (reference, quantized) = floatFirst ? (first, second) : (second, first);
            comparisons.Add(reference, quantized);
            if (simulatedSession is not null)
            {
                using var fake = simulatedSession.Run(runOptions, names, values, outputs);
                double cosine = Sessions.Cosine(quantized, fake, outputs.Length);
                simulatedCosines += cosine;
                simulatedWorst = Math.Min(simulatedWorst, cosine);
            }
        });
        // Few rows: the first ones run both models again, alternately, until there are enough timings.
        while (time && rows > 0 && floatTimes.Count < MinimumSamples && floatTimes.Sum() < BudgetMilliseconds)
        {
            int before = floatTimes.Count;
            RowReader.ForEach(floatSession, data, settings, 3, settings.Rows.IsMeasurementRow, (_, names, values, _) =>
            {
                for (int round = 0; round < 2 && floatTimes.Count < MinimumSamples; round++)
                {
                    bool floatFirst = round == 0;
                    Timed(floatFirst ? floatSession : deployedSession, names, values, floatFirst ? floatTimes : deployedTimes, true).Dispose();
                    Timed(floatFirst ? deployedSession : floatSession, names, values, floatFirst ? deployedTimes : floatTimes, true).Dispose();
                }
            }, maximumVisited: Math.Max(1, (MinimumSamples - before + 1) / 2));
            if (floatTimes.Count == before) break;
        }
        return new Result(comparisons.ToList(outputs), Median(floatTimes), Median(deployedTimes), rows)
        {
            Simulated = simulatedSession is null || rows == 0 ? null : (simulatedCosines / rows, simulatedWorst),
        };
    }

    private static double Median(List<double> values) => values.Count == 0 ? double.NaN : values.OrderBy(v => v).ElementAt(values.Count / 2);
}
