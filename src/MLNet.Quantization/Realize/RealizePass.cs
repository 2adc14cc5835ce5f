using MLNet.Quantization.Annotate;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>Realize: writes the plan and its parameters as QDQ pairs (int8) or as float fake-quantization (simulated).</summary>
internal sealed class RealizePass : IQuantizationPass
{
    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var dequantized = new Dictionary<string, string>();
        context.Realized = QdqWriter.Realize(context.Model, context.Plan, context.Parameters, context.Settings.Realization.Mode, dequantized);
        context.Dequantized = dequantized;
    }

    /// <summary>
    /// Realizes the context again with <paramref name="floatNodes"/> kept in float besides the user's exclusions:
    /// annotation is data-free and the calibrated parameters of what remains are kept, so nothing is calibrated twice.
    /// The fallback and the deployment check send layers back to float this way. The parameters are restricted from
    /// <paramref name="parameters"/> where given (a search that brings layers back), else from the context's.
    /// </summary>
    public static void Without(QuantizationContext context, IEnumerable<string> floatNodes,
        IReadOnlyDictionary<string, Calibration.TensorStatistics> calibrated, Calibration.QuantizationParameters? parameters = null)
    {
        var plan = Annotator.Annotate(context.Model, context.Exclusions.With(floatNodes));
        plan.KeepCalibrated(calibrated);
        parameters = (parameters ?? context.Parameters).Restrict(plan);
        var dequantized = new Dictionary<string, string>();
        var realized = QdqWriter.Realize(context.Model, plan, parameters, context.Settings.Realization.Mode, dequantized);
        (context.Plan, context.Parameters, context.Realized, context.Dequantized) = (plan, parameters, realized, dequantized);
    }
}
