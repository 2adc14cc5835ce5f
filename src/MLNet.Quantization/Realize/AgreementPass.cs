using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The realized int8 model run as ML.NET runs it, against the simulated model: see <see cref="AgreementCheck"/>. When
/// the deployment check follows, one stream over the measurement rows serves both: the float, the realized and the
/// simulated model run side by side, and the deployment check reads its comparison and timings from
/// <see cref="QuantizationContext.Measured"/> (it measures again only once it has changed the realized model).
/// </summary>
internal sealed class AgreementPass : IQuantizationPass
{
    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        if (!context.Settings.Realization.CheckDeployment)
        {
            context.Agreement = AgreementCheck.Measure(context.Model, context.Plan, context.Parameters, context.Realized,
                context.Dequantized, context.Data, context.Settings);
            return;
        }
        var (simulated, simulatedNames) = AgreementCheck.Simulated(context.Model, context.Plan, context.Parameters);
        var measured = DeploymentMeasurement.Measure(context.Model, context.Realized, context.Data, context.Settings, simulated: simulated,
            floatOutputs: context.FloatOutputs);
        context.Measured = (context.Realized, measured);
        context.Agreement = measured.Simulated is { } cosine
            ? AgreementCheck.FromCosines(cosine.Mean, cosine.Worst, cosine.Rows, context.Plan, context.Parameters, context.Realized,
                context.Dequantized, simulated, simulatedNames, context.Data, context.Settings)
            : null; // no measurement rows (a fit from saved statistics)
    }
}
