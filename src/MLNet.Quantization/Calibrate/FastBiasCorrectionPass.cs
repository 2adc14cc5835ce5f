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
/// <para>
/// A MatMul is linear in its input, so its means need no second layer: with x's per-channel mean <c>E_k[x]</c> and
/// that of its quantized form <c>E_k[Q(x)]</c>, <c>E_n[y] − E_n[ŷ] = Σ_k E_k[x]·W_kn − E_k[Q(x)]·Q(W)_kn</c> exactly
/// (expectation is linear). The stream then reduces x and Q(x) once for all the MatMuls that read x (a transformer's
/// query, key and value projections), and the copy of the model it runs holds no second set of weights. Convolutions
/// are recomputed: at the borders of a padded input, a channel's output mean is not its input mean's.
/// </para>
/// </remarks>
internal sealed class FastBiasCorrectionPass : IQuantizationPass
{
    private readonly List<(BiasCorrectionLayers.Layer Layer, StatisticPoint Float, StatisticPoint Quantized)> _layers = new();

    /// <summary>Whether MatMuls are corrected from their input means (the default) or recomputed as convolutions are.</summary>
    internal bool LinearMeans { get; init; } = true;

    public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context)
    {
        _layers.Clear();
        var inputs = new Dictionary<(string Tensor, bool Quantized), (StatisticPoint Float, StatisticPoint Quantized)>();
        foreach (var layer in BiasCorrectionLayers.Find(context))
        {
            if (IsLinear(layer))
            {
                var input = layer.Node.Input[0];
                var parameters = QuantizedInput(context, layer);
                if (!inputs.TryGetValue((input, parameters is not null), out var means))
                {
                    var mean = new StatisticPoint(input, -1);
                    means = (mean, parameters is null ? mean : new StatisticPoint(input + " (quantized)", -1)
                    {
                        Probe = g => FakeQuantize(g, input, parameters),
                    });
                    inputs[(input, parameters is not null)] = means;
                }
                _layers.Add((layer, means.Float, means.Quantized));
                continue;
            }
            _layers.Add((layer, layer.FloatOutput, new StatisticPoint(layer.Node.Output[0] + " (quantized layer)", layer.Axis)
            {
                Probe = g => Recompute(g, layer, context),
            }));
        }
        return _layers.SelectMany(l => new[] { l.Float, l.Quantized }).Distinct().ToList();
    }

    // One stream that runs every recomputed layer twice, once from fake-quantized inputs; MatMuls only once.
    public double EstimatedStreams(QuantizationContext context) => BiasCorrectionLayers.Find(context).All(IsLinear) ? 1 : 2;

    private bool IsLinear(BiasCorrectionLayers.Layer layer) => LinearMeans && layer.Node.OpType == "MatMul" && layer.Weight.InputIndex == 1;

    public void Apply(QuantizationContext context, StatisticValues statistics) =>
        context.Parameters = BiasCorrectionLayers.Correct(context.Model, context.Parameters, _layers.ToDictionary(
            l => l.Layer, l => IsLinear(l.Layer)
                ? LinearShift(context.Model, l.Layer, statistics[l.Float].Mean, statistics[l.Quantized].Mean)
                : BiasCorrectionLayers.Shift(statistics[l.Float].Mean, statistics[l.Quantized].Mean)));

    /// <summary>
    /// Per output channel n of a MatMul <c>x·W</c>: <c>Σ_k E_k[x]·W_kn − E_k[Q(x)]·Q(W)_kn</c> (empty when the means do
    /// not fit the weight, which leaves the bias as it was).
    /// </summary>
    internal static double[] LinearShift(OnnxGraph model, BiasCorrectionLayers.Layer layer, double[] inputMean, double[] quantizedInputMean)
    {
        var weight = Tensors.ReadFloats(model.FindConstant(layer.Weight.Tensor)!);
        var quantized = layer.Quantized.Dequantize();
        if (layer.Quantized.Dims is not [var k, var n] || inputMean.Length != k || quantizedInputMean.Length != k || weight.Length != k * n)
            return Array.Empty<double>();
        var shift = new double[n];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n; j++)
                shift[j] += inputMean[i] * weight[i * n + j] - quantizedInputMean[i] * quantized[i * n + j];
        return shift;
    }

    // The quantization parameters of the layer's input where the plan quantizes it for this node; null where it reads float.
    private static ActivationParameters? QuantizedInput(QuantizationContext context, BiasCorrectionLayers.Layer layer) =>
        context.Plan.ReadsQuantized(layer.Node.Input[0], layer.Node.Name) && context.Parameters.Activations.TryGetValue(layer.Node.Input[0], out var p)
            ? p : null;

    private static string FakeQuantize(OnnxGraph graph, string input, ActivationParameters parameters)
    {
        var target = graph.UniqueName(input + "_bias_correction_fq");
        new SimulatedEmitter().Activation(graph, input, target, parameters);
        return target;
    }

    // The layer again, in the statistics copy of the float model, from the quantized form of its input (when the plan
    // quantizes it) and its int8 weights, dequantized: returns its output.
    private static string Recompute(OnnxGraph graph, BiasCorrectionLayers.Layer layer, QuantizationContext context)
    {
        var node = layer.Node;
        var copy = node.Clone();
        copy.Name = graph.UniqueName(node.Name + "_bias_correction");
        if (QuantizedInput(context, layer) is { } p)
            copy.Input[0] = FakeQuantize(graph, node.Input[0], p);
        var weights = graph.UniqueName(layer.Weight.Tensor + "_bias_correction_dequantized");
        graph.AddInitializer(Tensors.FromFloats(weights, layer.Quantized.Dims, layer.Quantized.Dequantize()));
        copy.Input[layer.Weight.InputIndex] = weights;
        copy.Output.Clear();
        copy.Output.Add(graph.UniqueName(node.Output[0] + "_quantized_layer"));
        graph.AddNode(copy);
        return copy.Output[0];
    }
}
