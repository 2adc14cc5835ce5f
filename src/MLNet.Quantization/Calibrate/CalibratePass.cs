using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Calibration;

/// <summary>Calibrate: thresholds, scales and zero points of activations; int8 weights; int32 biases.</summary>
internal sealed class CalibratePass : IQuantizationPass
{
    public void Apply(QuantizationContext context, StatisticValues statistics) =>
        context.Parameters = Calibrator.Calibrate(context.Model, context.Plan, context.Statistics.ByTensor(),
            context.Settings.Activations, context.Settings.Weights, context.WeightCache);
}
