using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Realize;
using Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Fast bias correction (NNCF's <c>FastBiasCorrection</c>), after calibration: each quantized layer's per-channel
/// output mean is moved back to the float model's.
/// </summary>
/// <remarks>
/// For each layer of <see cref="BiasCorrectionLayers"/>, the layer is computed twice on every calibration row: as in
/// the float model, <c>y = L(x, W) + b</c>, and from its quantized input and int8 weights, <c>ŷ = L(Q(x), Q(W)) + b</c>,
/// x being the float model's own input to the layer. With <c>E_c</c> the mean over rows and positions of channel c,
/// the bias becomes <c>b_c + E_c[y] − E_c[ŷ]</c>, so that the quantized layer's output has the float layer's mean:
/// rounding and clipping that are not zero-mean (a weight grid coarse against a small channel, a clipped tail) no
/// longer shift what the next layer reads. Both forms come from one stream over the rows. Errors that reach a layer
/// from quantized layers before it are not compensated: <see cref="FullBiasCorrectionPass"/> does that.
/// </remarks>
internal sealed class FastBiasCorrectionPass : IQuantizationPass
{
    private readonly List<(BiasCorrectionLayers.Layer Layer, StatisticPoint Quantized)> _layers = new();

    public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context)
    {
        _layers.Clear();
        foreach (var layer in BiasCorrectionLayers.Find(context))
            _layers.Add((layer, new StatisticPoint(layer.Node.Output[0] + " (quantized layer)", layer.Axis)
            {
                Probe = g => Recompute(g, layer, context),
            }));
        return _layers.SelectMany(l => new[] { l.Layer.FloatOutput, l.Quantized }).ToList();
    }

    // One stream that runs every corrected layer twice, once from fake-quantized inputs.
    public double EstimatedStreams(QuantizationContext context) => 2;

    public void Apply(QuantizationContext context, StatisticValues statistics) =>
        context.Parameters = BiasCorrectionLayers.Correct(context.Model, context.Parameters, _layers.ToDictionary(
            l => l.Layer, l => BiasCorrectionLayers.Shift(statistics[l.Layer.FloatOutput].Mean, statistics[l.Quantized].Mean)));

    // The layer again, in the statistics copy of the float model, from the quantized form of its input (when the plan
    // quantizes it) and its int8 weights, dequantized: returns its output.
    private static string Recompute(OnnxGraph graph, BiasCorrectionLayers.Layer layer, QuantizationContext context)
    {
        var node = layer.Node;
        var copy = node.Clone();
        copy.Name = graph.UniqueName(node.Name + "_bias_correction");
        var input = node.Input[0];
        if (context.Plan.ReadsQuantized(input, node.Name) && context.Parameters.Activations.TryGetValue(input, out var p))
        {
            var target = graph.UniqueName(input + "_bias_correction_fq");
            new SimulatedEmitter().Activation(graph, input, target, p);
            copy.Input[0] = target;
        }
        var weights = graph.UniqueName(layer.Weight.Tensor + "_bias_correction_dequantized");
        graph.AddInitializer(Tensors.FromFloats(weights, layer.Quantized.Dims, layer.Quantized.Dequantize()));
        copy.Input[layer.Weight.InputIndex] = weights;
        copy.Output.Clear();
        copy.Output.Add(graph.UniqueName(node.Output[0] + "_quantized_layer"));
        graph.AddNode(copy);
        return copy.Output[0];
    }
}
