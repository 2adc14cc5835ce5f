using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>The realized int8 model run as ML.NET runs it, against the simulated model: see <see cref="AgreementCheck"/>.</summary>
internal sealed class AgreementPass : IQuantizationPass
{
    public void Apply(QuantizationContext context, StatisticValues statistics) =>
        context.Agreement = AgreementCheck.Measure(context.Model, context.Plan, context.Parameters, context.Realized,
            context.Dequantized, context.Data, context.Settings);
}
