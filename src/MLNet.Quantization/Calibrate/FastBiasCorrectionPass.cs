using MLNet.Quantization.Annotate;
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
/// For a Conv or Gemm with a quantized bias, and for a MatMul followed by an Add of a constant vector, the layer is
/// computed twice on every calibration row: as in the float model, <c>y = L(x, W) + b</c>, and from its quantized
/// input and int8 weights, <c>ŷ = L(Q(x), Q(W)) + b</c>, x being the float model's own input to the layer. With
/// <c>E_c</c> the mean over rows and positions of channel c, the bias becomes <c>b_c + E_c[y] − E_c[ŷ]</c>, so that
/// the quantized layer's output has the float layer's mean: rounding and clipping that are not zero-mean (a weight
/// grid that is coarse against a small channel, a clipped tail) no longer shift what the next layer reads. Both
/// forms come from one stream over the rows; the corrected bias is quantized with the scale it had.
/// </remarks>
internal sealed class FastBiasCorrectionPass : IQuantizationPass
{
    private sealed record Layer(string Node, BiasMark? QuantizedBias, string? FloatBias, StatisticPoint Float, StatisticPoint Quantized);

    private readonly List<Layer> _layers = new();

    public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context)
    {
        _layers.Clear();
        var (model, plan, parameters) = (context.Model, context.Plan, context.Parameters);
        foreach (var weight in plan.Weights.DistinctBy(w => w.Node))
        {
            if (model.FindNode(weight.Node) is not { } node || !parameters.Weights.TryGetValue(weight.Tensor, out var quantized)) continue;
            var bias = plan.Biases.FirstOrDefault(b => b.Node == weight.Node && parameters.Biases.ContainsKey((b.Node, b.Tensor)));
            (int axis, string? floatBias) = node.OpType switch
            {
                "Conv" or "Gemm" when bias is not null => (1, null),
                "MatMul" when quantized.Dims.Length == 2 && FloatBias(model, node) is { } tensor => (-1, tensor),
                _ => (0, (string?)null),
            };
            if (bias is null && floatBias is null) continue;
            var layer = new Layer(node.Name, floatBias is null ? bias : null, floatBias, new StatisticPoint(node.Output[0], axis),
                new StatisticPoint(node.Output[0] + " (quantized layer)", axis) { Probe = g => Recompute(g, node, plan, parameters, weight, quantized) });
            _layers.Add(layer);
        }
        return _layers.SelectMany(l => new[] { l.Float, l.Quantized }).ToList();
    }

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var (model, parameters) = (context.Model, context.Parameters);
        var biases = parameters.Biases.ToDictionary(kv => kv.Key, kv => kv.Value);
        var floatBiases = parameters.FloatBiases.ToDictionary(kv => kv.Key, kv => kv.Value);
        var notes = new Dictionary<(string Node, string Tensor), (float[] Values, double Shift)>();
        foreach (var layer in _layers)
        {
            var reference = statistics[layer.Float].Mean;
            var quantized = statistics[layer.Quantized].Mean;
            var tensor = layer.QuantizedBias?.Tensor ?? layer.FloatBias!;
            var values = Tensors.ReadFloats(model.FindConstant(tensor)!);
            if (values.Length != reference.Length || reference.Length != quantized.Length) continue;
            var corrected = values.Select((v, c) => (float)(v + reference[c] - quantized[c])).ToArray();
            if (!corrected.All(float.IsFinite)) continue;
            double shift = corrected.Zip(values, (a, b) => Math.Abs(a - b)).Max();
            if (layer.QuantizedBias is { } mark)
            {
                var input = parameters.Activations[mark.Activation];
                var weightScales = parameters.Weights[mark.Weight].Scales;
                if (WeightQuantizer.BiasProblem(corrected, input.Scale, weightScales) is not null) continue;
                biases[(mark.Node, mark.Tensor)] = WeightQuantizer.QuantizeBias(mark.Tensor, biases[(mark.Node, mark.Tensor)].Dims, corrected, input.Scale, weightScales);
                notes[(mark.Node, mark.Tensor)] = (corrected, shift);
            }
            else
            {
                floatBiases[tensor] = new CorrectedBias(layer.Node, tensor, corrected);
            }
        }
        var table = parameters.Table.Select(e => e.Role == TensorRole.Bias && notes.TryGetValue((e.Node, e.Tensor), out var n)
            ? e with { Threshold = n.Values.Max(Math.Abs), Note = $"bias corrected (fast): largest shift {n.Shift:G3}" }
            : e);
        context.Parameters = parameters with { Biases = biases, Table = new CalibrationTable(table), FloatBiases = floatBiases };
    }

    // The constant vector that an Add alone after the MatMul adds, when nothing else reads it.
    private static string? FloatBias(OnnxGraph model, NodeProto matMul)
    {
        if (model.Consumers(matMul.Output[0]) is not [{ OpType: "Add" } add] || model.IsGraphOutput(matMul.Output[0])) return null;
        var other = add.Input[0] == matMul.Output[0] ? add.Input[1] : add.Input[0];
        return model.FindInitializer(other) is { DataType: Tensors.Float, Dims.Count: 1 } && model.Consumers(other).Count == 1 ? other : null;
    }

    // The layer again, in the statistics copy of the float model, from the quantized form of its input (when the plan
    // quantizes it) and its int8 weights, dequantized: returns its output.
    private static string Recompute(OnnxGraph graph, NodeProto node, QuantizationPlan plan, QuantizationParameters parameters,
        WeightMark weight, QuantizedWeight quantized)
    {
        var copy = node.Clone();
        copy.Name = graph.UniqueName(node.Name + "_bias_correction");
        var input = node.Input[0];
        if (plan.ReadsQuantized(input, node.Name) && parameters.Activations.TryGetValue(input, out var p))
        {
            var target = graph.UniqueName(input + "_bias_correction_fq");
            new SimulatedEmitter().Activation(graph, input, target, p);
            copy.Input[0] = target;
        }
        var weights = graph.UniqueName(weight.Tensor + "_bias_correction_dequantized");
        graph.AddInitializer(Tensors.FromFloats(weights, quantized.Dims, quantized.Dequantize()));
        copy.Input[weight.InputIndex] = weights;
        copy.Output.Clear();
        copy.Output.Add(graph.UniqueName(node.Output[0] + "_quantized_layer"));
        graph.AddNode(copy);
        return copy.Output[0];
    }
}
