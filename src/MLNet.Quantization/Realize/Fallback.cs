using Microsoft.ML;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Step 6 of <c>Fit</c>, with <c>MinimumOutputCosine</c>: while the realized model's mean output cosine to the float
/// model (run as ML.NET runs it, QDQ pairs fused), on the held-back rows, stays below the target, the layer (the quantized nodes around a tensor) that adds the
/// most noise of its own is kept in float, one at a time. Label-free: it needs only the calibration rows.
/// </summary>
internal static class Fallback
{
    /// <summary>The plan kept, its parameters and realization (with each quantized tensor's dequantized name), and what it measured.</summary>
    public sealed record Result(QuantizationPlan Plan, QuantizationParameters Parameters, OnnxGraph Realized,
        IReadOnlyDictionary<string, string> Dequantized, IReadOnlyList<string> FloatNodes, double OutputCosine);

    // The quantized nodes around a tensor (its producer and its readers, seen through a Relu): keeping the tensor's
    // layer in float means keeping all of them, or one of them would quantize the tensor again.
    private static List<string> Layer(OnnxGraph model, string tensor)
    {
        var nodes = new List<global::Onnx.NodeProto>();
        if (model.ProducerThroughClamp(tensor, out _) is { } producer) nodes.Add(producer);
        nodes.AddRange(model.ConsumersThroughClamp(tensor));
        return nodes.Where(n => OpRegistry.Find(n.OpType) is not null).Select(n => n.Name).Distinct().ToList();
    }

    public static Result Apply(OnnxGraph model, Exclusions exclusions, CalibrationStatistics statistics, IDataView data,
        QuantizationSettings settings, double target)
    {
        var floatNodes = new List<string>();
        var known = statistics.ByTensor();
        while (true)
        {
            var plan = Annotator.Annotate(model, exclusions.With(floatNodes));
            plan.KeepCalibrated(known);
            var parameters = Calibrator.Calibrate(model, plan, known, settings.Activations, settings.Weights);
            var dequantized = new Dictionary<string, string>();
            var realized = QdqWriter.Realize(model, plan, parameters, settings.Realization.Mode, dequantized);
            var measured = ErrorMeasurement.Measure(model, realized, dequantized, realized, data, settings);
            if (measured.Rows == 0)
                throw new InvalidOperationException(
                    "MinimumOutputCosine measures on held-back rows (every fifth row), and the data holds none: give at least 5 rows.");
            var worst = measured.AddedNoise(model).OrderByDescending(kv => kv.Value).Select(kv => Layer(model, kv.Key))
                .FirstOrDefault(nodes => nodes.Any(n => !floatNodes.Contains(n)));
            if (measured.OutputCosine >= target || worst is null)
                return new Result(plan, parameters, realized, dequantized, floatNodes, measured.OutputCosine);
            floatNodes.AddRange(worst.Where(n => !floatNodes.Contains(n)));
        }
    }
}
