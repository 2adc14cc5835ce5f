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
}
