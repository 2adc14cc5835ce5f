using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Calibrate;

/// <summary>Step 4 of <c>Fit</c>: turns statistics into thresholds, scales and zero points, and weights into int8.</summary>
internal static class Calibrator
{
    public static QuantizationParameters Calibrate(
        OnnxGraph graph, QuantizationPlan plan, IReadOnlyDictionary<string, TensorStatistics> statistics, QuantizationSettings settings)
    {
        var table = new List<TensorCalibration>();
        var activations = new Dictionary<string, ActivationParameters>();
        foreach (var mark in plan.Activations.Where(a => a.ShareScaleWith is null))
        {
            var stats = statistics[mark.Tensor];
            float threshold = (float)ActivationThreshold(stats, settings);
            var p = ActivationParameters(threshold, stats.NonNegative);
            activations[mark.Tensor] = p;
            table.Add(Entry(mark, threshold, p, settings.ActivationCalibration.ToString()));
        }
        foreach (var mark in plan.Activations.Where(a => a.ShareScaleWith is not null))
        {
            var p = activations[mark.ShareScaleWith!];
            activations[mark.Tensor] = p;
            var source = table.First(e => e.Tensor == mark.ShareScaleWith);
            table.Add(Entry(mark, source.Threshold, p, $"SharedWith({mark.ShareScaleWith})"));
        }

        var weights = new Dictionary<string, QuantizedWeight>();
        foreach (var mark in plan.Weights)
        {
            if (weights.ContainsKey(mark.Tensor)) continue;
            var tensor = graph.FindConstant(mark.Tensor)!;
            var dims = Tensors.Dims(tensor);
            int? axis = settings.PerChannelWeights && mark.Axis < dims.Length ? mark.Axis : null;
            var w = WeightQuantizer.Quantize(mark.Tensor, dims, Tensors.ReadFloats(tensor), axis, settings.WeightScale);
            weights[mark.Tensor] = w;
            float maxScale = w.Scales.Max();
            table.Add(new TensorCalibration
            {
                Tensor = mark.Tensor, Role = TensorRole.Weight, Node = mark.Node, OpType = mark.OpType,
                Threshold = settings.WeightScale == WeightScaleMethod.PowerOfTwo ? maxScale * 128 : maxScale * 127,
                Scale = maxScale, ZeroPoint = 0, ElementType = "int8", Method = settings.WeightScale.ToString(),
                ChannelScales = axis is null ? Array.Empty<float>() : w.Scales,
            });
        }

        var biases = new Dictionary<(string, string), QuantizedBias>();
        foreach (var mark in plan.Biases)
        {
            if (!activations.TryGetValue(mark.Activation, out var input) || !weights.TryGetValue(mark.Weight, out var weight))
                continue;
            var tensor = graph.FindConstant(mark.Tensor)!;
            var values = Tensors.ReadFloats(tensor);
            if (weight.Scales.Length != 1 && weight.Scales.Length != values.Length)
                continue; // A bias that does not match the weight's channels stays float.
            var b = WeightQuantizer.QuantizeBias(mark.Tensor, Tensors.Dims(tensor), values, input.Scale, weight.Scales);
            biases[(mark.Node, mark.Tensor)] = b;
            table.Add(new TensorCalibration
            {
                Tensor = mark.Tensor, Role = TensorRole.Bias, Node = mark.Node, OpType = mark.OpType,
                Threshold = values.Length == 0 ? 0 : values.Max(Math.Abs), Scale = b.Scales.Max(), ZeroPoint = 0,
                ElementType = "int32", Method = "InputScaleTimesWeightScale",
                ChannelScales = b.Scales.Length == 1 ? Array.Empty<float>() : b.Scales,
            });
        }
        return new QuantizationParameters(activations, weights, biases, new CalibrationTable(table));
    }

    /// <summary>
    /// The activation threshold T of the configured method. Never-negative tensors are clipped to [0, T] and use
    /// 2 × quantizedBins + 1 quantized bins in the KL search (MXNet's uint8 widening); others to [−T, T].
    /// </summary>
    internal static double ActivationThreshold(TensorStatistics stats, QuantizationSettings settings) =>
        settings.ActivationCalibration switch
        {
            CalibrationMethod.Max => stats.NonNegative ? stats.Max : stats.AbsMax,
            CalibrationMethod.KlDivergence => ThresholdSearch.KlDivergence(stats.Histogram!,
                stats.NonNegative ? 2 * settings.QuantizedBins + 1 : settings.QuantizedBins),
            CalibrationMethod.Percentile => ThresholdSearch.Percentile(stats.Histogram!, settings.Percentile),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.ActivationCalibration, null),
        };

    /// <summary>uint8 with zero point 0 and scale T/255 when never negative, else zero point 128 and scale T/127. T = 0 gets scale 1.</summary>
    internal static ActivationParameters ActivationParameters(float threshold, bool nonNegative) =>
        threshold <= 0 ? new ActivationParameters(1f, nonNegative ? (byte)0 : (byte)128)
        : nonNegative ? new ActivationParameters(threshold / 255f, 0)
        : new ActivationParameters(threshold / 127f, 128);

    private static TensorCalibration Entry(ActivationMark mark, float threshold, ActivationParameters p, string method) => new()
    {
        Tensor = mark.Tensor, Role = TensorRole.Activation, Node = mark.Node, OpType = mark.OpType,
        Threshold = threshold, Scale = p.Scale, ZeroPoint = p.ZeroPoint, ElementType = "uint8", Method = method,
    };
}
