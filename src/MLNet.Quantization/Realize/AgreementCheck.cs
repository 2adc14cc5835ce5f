using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The last step of an int8 <c>Fit</c>: runs the realized model exactly as ML.NET will (no extra outputs, so ONNX
/// Runtime fuses its QDQ pairs into int8 kernels) beside the simulated model on the measurement rows, and compares
/// their outputs on the first <see cref="MeasuredRows"/> of them, output by output (<see cref="OutputComparisons"/>:
/// the agreement is the worst output's, and an output of one value per row is compared across the rows). When they disagree, a second pass reads every
/// quantized activation's uint8 values from both (the QuantizeLinear outputs of the realized model, the rounded values
/// of the simulated one) to find where they part.
/// </summary>
internal static class AgreementCheck
{
    /// <summary>
    /// The measurement rows compared: all of them in a fit that holds none back (the first 64 rows), and as many of the
    /// held-back rows after tuning (200 at 1,000 rows), so that the check costs the same whatever the tuner held back.
    /// </summary>
    public const int MeasuredRows = 64;

    /// <summary>The agreement on the measurement rows, or null when the data holds none (a fit from saved statistics).</summary>
    /// <param name="prepared">The float model the plan was made on.</param>
    /// <param name="plan">The plan realized.</param>
    /// <param name="parameters">Its parameters.</param>
    /// <param name="realized">The int8 realization of <paramref name="plan"/> that <c>Fit</c> wrote.</param>
    /// <param name="realizedNames">Each quantized tensor's dequantized name in <paramref name="realized"/>.</param>
    /// <param name="data">The rows.</param>
    /// <param name="settings">The settings.</param>
    public static RealizationAgreement? Measure(OnnxGraph prepared, QuantizationPlan plan, QuantizationParameters parameters,
        OnnxGraph realized, IReadOnlyDictionary<string, string> realizedNames, IDataView data, QuantizationSettings settings)
    {
        var simulatedNames = new Dictionary<string, string>();
        var simulated = QdqWriter.Realize(prepared, plan, parameters, QuantizationMode.Simulated, simulatedNames);
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        var comparisons = new OutputComparisons(outputs);
        long rows;
        using (var realizedSession = Sessions.Create(realized, Array.Empty<string>(), "the realized model", RowReader.SessionThreads))
        using (var simulatedSession = Sessions.Create(simulated, Array.Empty<string>(), "the simulated model", RowReader.SessionThreads))
        using (var runOptions = new RunOptions())
        {
            rows = RowReader.ForEachInOrder(realizedSession, data, settings, 3, settings.Rows.IsMeasurementRow,
                (names, values) => new RowResults(realizedSession.Run(runOptions, names, values, outputs), simulatedSession.Run(runOptions, names, values, outputs)),
                (_, _, _, results) => comparisons.Add(results[1], results[0]), results => results.Bytes, maximumVisited: MeasuredRows);
        }
        if (rows == 0) return null;
        double mean = comparisons.Worst, worst = comparisons.WorstRow;
        var compared = comparisons.ToList();
        var layers = RealizationAgreement.Accepts(mean, OutputComparison.WorstRelativeError(compared))
            ? Array.Empty<LayerDisagreement>()
            : Layers(plan, realized, simulated, realizedNames, simulatedNames, data, settings);
        int largestPair = parameters.Table.Where(t => t.Role == TensorRole.Weight).Select(t => t.LargestPairSum).DefaultIfEmpty(0).Max();
        return new RealizationAgreement(mean, worst, rows, CpuFeatures.Describe(), CpuFeatures.PairsSaturate,
            settings.Weights.Range, largestPair, layers, compared,
            parameters.Table.Count(t => t.Role == TensorRole.Activation));
    }

    // Per quantized activation, how its uint8 values differ: QuantizeLinear's output in the realized model (read as an
    // extra output of the quantize node, which ONNX Runtime's fusions keep as the fused kernel's output) against
    // Clip(Round(x / s) + z) in the simulated one.
    private static IReadOnlyList<LayerDisagreement> Layers(QuantizationPlan plan, OnnxGraph realized, OnnxGraph simulated,
        IReadOnlyDictionary<string, string> realizedNames, IReadOnlyDictionary<string, string> simulatedNames,
        IDataView data, QuantizationSettings settings)
    {
        var pairs = realizedNames.Keys.Where(simulatedNames.ContainsKey)
            .Select(t => (Tensor: t, Realized: QuantizedInt8(realized, realizedNames[t]), Simulated: QuantizedSimulated(simulated, simulatedNames[t])))
            .Where(p => p.Realized is not null && p.Simulated is not null).ToList();
        if (pairs.Count == 0) return Array.Empty<LayerDisagreement>();
        var mismatched = pairs.ToDictionary(p => p.Tensor, _ => 0L);
        var steps = pairs.ToDictionary(p => p.Tensor, _ => 0.0);
        var counts = pairs.ToDictionary(p => p.Tensor, _ => 0L);
        var realizedOutputs = pairs.Select(p => p.Realized!).Distinct().ToArray();
        var simulatedOutputs = pairs.Select(p => p.Simulated!).Distinct().ToArray();
        using var realizedSession = Sessions.Create(realized, realizedOutputs, "the realized model", RowReader.SessionThreads);
        using var simulatedSession = Sessions.Create(simulated, simulatedOutputs, "the simulated model", RowReader.SessionThreads);
        using var runOptions = new RunOptions();
        RowReader.ForEachInOrder(realizedSession, data, settings, 3, settings.Rows.IsMeasurementRow,
            (names, values) => new RowResults(realizedSession.Run(runOptions, names, values, realizedOutputs), simulatedSession.Run(runOptions, names, values, simulatedOutputs)),
            (_, _, _, results) =>
        {
            var (a, b) = (results[0], results[1]);
            foreach (var (tensor, r, s) in pairs)
            {
                var q = a[Array.IndexOf(realizedOutputs, r)].GetTensorDataAsSpan<byte>();
                var f = b[Array.IndexOf(simulatedOutputs, s)].GetTensorDataAsSpan<float>();
                long bad = 0;
                double total = 0;
                for (int i = 0; i < Math.Min(q.Length, f.Length); i++)
                {
                    double d = Math.Abs(q[i] - f[i]);
                    total += d;
                    if (d > 1) bad++;
                }
                mismatched[tensor] += bad;
                steps[tensor] += total;
                counts[tensor] += Math.Min(q.Length, f.Length);
            }
        }, results => results.Bytes);
        return pairs.Select(p => p.Tensor).Where(t => counts[t] > 0 && mismatched[t] > 0)
            .Select(t =>
            {
                var mark = plan.FindActivation(t)!;
                return new LayerDisagreement
                {
                    Tensor = t, Node = mark.Node, OpType = mark.OpType,
                    MismatchFraction = (double)mismatched[t] / counts[t], MeanStepDifference = steps[t] / counts[t],
                };
            })
            .ToList();
    }

    // The quantized values behind a dequantized tensor: DequantizeLinear's input in the realized model, and the Clip
    // two producers up (Mul ← Sub ← Clip) in the simulated one.
    private static string? QuantizedInt8(OnnxGraph graph, string dequantized) => graph.Producer(dequantized)?.Input.FirstOrDefault();

    private static string? QuantizedSimulated(OnnxGraph graph, string dequantized) =>
        graph.Producer(dequantized) is { } mul && graph.Producer(mul.Input[0]) is { } sub ? sub.Input.FirstOrDefault() : null;
}
