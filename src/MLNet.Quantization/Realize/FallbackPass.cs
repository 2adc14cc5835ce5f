using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>
/// With <c>MinimumOutputCosine</c>: where the realized model's mean output cosine to the float model (run as ML.NET runs
/// it, QDQ pairs fused), on the held-back rows, is below the target for any of its outputs, the fewest of the layers
/// (each the quantized nodes around a tensor) that add the most noise of their own are kept in float for every output to
/// reach it (<see cref="FloatLayerSearch"/>). Label-free: it needs only the calibration rows.
/// </summary>
/// <remarks>
/// It works on the plan, not on the model: the layers are ranked once, from the full model's per-tensor noise, and the
/// float model's outputs on the held-back rows are computed once (within <see cref="FloatOutputs"/>' budget). Each count
/// that the search measures drops the first layers of the ranking from the plan (annotation is data-free), keeps the
/// calibrated parameters of what remains, realizes again and runs only the realized model. Nothing is calibrated twice.
/// </remarks>
internal sealed class FallbackPass : IQuantizationPass
{
    /// <summary>The float and realized models once on the held-back rows, then one realized run per count of layers that the search measures: about two streams.</summary>
    public double EstimatedStreams(QuantizationContext context) => 2;

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var settings = context.Settings;
        double target = settings.Rows.MinimumOutputCosine ?? throw new InvalidOperationException("The fallback needs MinimumOutputCosine.");
        var model = context.Model;
        var reference = new FloatOutputs();
        var measured = ErrorMeasurement.Measure(model, context.Realized, context.Dequantized, context.Realized, context.Data, settings, context.Plan, reference);
        if (measured.Rows == 0)
            throw new InvalidOperationException(
                "MinimumOutputCosine measures on held-back rows (every fifth row), and the data holds none: give at least 5 rows.");
        var floatNodes = measured.OutputCosine >= target ? new List<string>()
            : FloatLayerSearch.SendBack(context, Array.Empty<string>(), measured.NoisiestFirst(model), context.Statistics.ByTensor(),
                () => ErrorMeasurement.DeployedCosine(model, context.Realized, reference, context.Data, settings) >= target).Nodes;
        context.FloatNodes = floatNodes;
    }
}
