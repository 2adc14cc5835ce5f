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
/// Timing: on the first <see cref="TimedRows"/> measurement rows (fewer once the float model's first round has taken
/// <see cref="BudgetMilliseconds"/>), after the untimed runs that compare the outputs, the two sessions run
/// alternately <see cref="Rounds"/> times per row; the time per row is the median over the rounds of each round's
/// total. Alternating spreads the machine's noise over both models.
/// </remarks>
internal static class DeploymentMeasurement
{
    public const int TimedRows = 8;

    public const int Rounds = 5;

    public const double BudgetMilliseconds = 400;

    public sealed record Result(IReadOnlyList<OutputComparison> Outputs, double FloatMs, double DeployedMs, long Rows)
    {
        /// <summary>The largest relative error over the outputs.</summary>
        public double WorstRelativeError => Outputs.Select(o => o.RelativeError).DefaultIfEmpty(0).Max();
    }

    /// <summary>Compares every output, and times both models unless <paramref name="time"/> is false.</summary>
    public static Result Measure(OnnxGraph prepared, OnnxGraph deployed, IDataView data, QuantizationSettings settings, bool time = true)
    {
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        int? threads = settings.Realization.IntraOpNumThreads;
        using var floatSession = Sessions.Create(prepared, Array.Empty<string>(), "the float model", threads);
        using var deployedSession = Sessions.Create(deployed, Array.Empty<string>(), "the quantized model", threads);
        using var runOptions = new RunOptions();
        var sums = outputs.Select(_ => new OutputSums()).ToArray();
        var floatRounds = new double[Rounds];
        var deployedRounds = new double[Rounds];
        int timed = 0;
        long rows = RowReader.ForEach(floatSession, data, settings, 3, settings.Rows.IsMeasurementRow, (_, names, values, _) =>
        {
            using var reference = floatSession.Run(runOptions, names, values, outputs);
            using var quantized = deployedSession.Run(runOptions, names, values, outputs);
            for (int k = 0; k < outputs.Length; k++)
                if (reference[k].GetTensorTypeAndShape().ElementDataType == TensorElementType.Float)
                    sums[k].Add(reference[k].GetTensorDataAsSpan<float>(), quantized[k].GetTensorDataAsSpan<float>());
            if (!time || timed >= TimedRows || floatRounds[0] > BudgetMilliseconds) return;
            timed++;
            var clock = new Stopwatch();
            for (int r = 0; r < Rounds; r++)
            {
                clock.Restart();
                floatSession.Run(runOptions, names, values, outputs).Dispose();
                floatRounds[r] += clock.Elapsed.TotalMilliseconds;
                clock.Restart();
                deployedSession.Run(runOptions, names, values, outputs).Dispose();
                deployedRounds[r] += clock.Elapsed.TotalMilliseconds;
            }
        });
        int perRow = Math.Max(1, timed);
        var comparisons = outputs.Select((name, k) => sums[k].ToComparison(name)).Where((_, k) => sums[k].Rows > 0).ToList();
        return new Result(comparisons, Median(floatRounds) / perRow, Median(deployedRounds) / perRow, rows);
    }

    private static double Median(double[] values) => values.OrderBy(v => v).ElementAt(values.Length / 2);

    private sealed class OutputSums
    {
        private double _cosines, _worst = 1, _error, _signal;
        private long _nonFinite;

        public long Rows { get; private set; }

        public void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
        {
            var cosine = new CosineSum();
            cosine.Add(x, y);
            _cosines += cosine.Value;
            _worst = Math.Min(_worst, cosine.Value);
            for (int i = 0; i < x.Length; i++)
            {
                if (!float.IsFinite(x[i])) continue;
                if (!float.IsFinite(y[i])) { _nonFinite++; continue; }
                double d = x[i] - y[i];
                _error += d * d;
                _signal += (double)x[i] * x[i];
            }
            Rows++;
        }

        public OutputComparison ToComparison(string name) => new()
        {
            Name = name, MeanCosine = _cosines / Rows, WorstCosine = _worst, NonFiniteIntroduced = _nonFinite,
            RelativeError = _signal == 0 ? (_error == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(_error / _signal),
        };
    }
}
