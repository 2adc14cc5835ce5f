using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// What both bias corrections share: the layers whose bias may move (a Conv or Gemm with a quantized bias, a MatMul
/// followed by an Add of a constant vector that nothing else reads), and writing the corrected biases into the
/// parameters (quantized again at the scale they had, or as a corrected float constant).
/// </summary>
internal static class BiasCorrectionLayers
{
    /// <summary>A layer: its node, output and channel axis, and the bias that moves.</summary>
    public sealed record Layer(NodeProto Node, WeightMark Weight, QuantizedWeight Quantized, int Axis, BiasMark? QuantizedBias, string? FloatBias)
    {
        public string Bias => QuantizedBias?.Tensor ?? FloatBias!;

        /// <summary>The layer's output in the float model, per channel.</summary>
        public StatisticPoint FloatOutput { get; } = new(Node.Output[0], Axis);
    }

    public static List<Layer> Find(QuantizationContext context)
    {
        var (model, plan, parameters) = (context.Model, context.Plan, context.Parameters);
        var layers = new List<Layer>();
        foreach (var weight in plan.Weights.DistinctBy(w => w.Node))
        {
            if (model.FindNode(weight.Node) is not { } node || !parameters.Weights.TryGetValue(weight.Tensor, out var quantized)) continue;
            var bias = plan.Biases.FirstOrDefault(b => b.Node == weight.Node && parameters.Biases.ContainsKey((b.Node, b.Tensor)));
            switch (node.OpType)
            {
                case "Conv" or "Gemm" when bias is not null:
                    layers.Add(new Layer(node, weight, quantized, 1, bias, null));
                    break;
                case "MatMul" when quantized.Dims.Length == 2 && FloatBias(model, node) is { } tensor:
                    layers.Add(new Layer(node, weight, quantized, -1, null, tensor));
                    break;
            }
        }
        return layers;
    }

    /// <summary>
    /// The parameters with each layer's bias moved by its shift (per channel); a shift that does not fit the bias, or
    /// whose corrected bias int32 cannot hold, leaves that bias as it was.
    /// </summary>
    public static QuantizationParameters Correct(OnnxGraph model, QuantizationParameters parameters, IReadOnlyDictionary<Layer, double[]> shifts)
    {
        var biases = parameters.Biases.ToDictionary(kv => kv.Key, kv => kv.Value);
        var floatBiases = parameters.FloatBiases.ToDictionary(kv => kv.Key, kv => kv.Value);
        var notes = new Dictionary<(string Node, string Tensor), (float[] Values, double Shift)>();
        foreach (var (layer, shift) in shifts)
        {
            var values = Tensors.ReadFloats(model.FindConstant(layer.Bias)!);
            if (values.Length != shift.Length) continue;
            var corrected = values.Select((v, c) => (float)(v + shift[c])).ToArray();
            if (!corrected.All(float.IsFinite)) continue;
            double largest = shift.Select(Math.Abs).DefaultIfEmpty(0).Max();
            if (layer.QuantizedBias is { } mark)
            {
                var input = parameters.Activations[mark.Activation];
                var weightScales = parameters.Weights[mark.Weight].Scales;
                if (WeightQuantizer.BiasProblem(corrected, input.Scale, weightScales) is not null) continue;
                biases[(mark.Node, mark.Tensor)] = WeightQuantizer.QuantizeBias(mark.Tensor, biases[(mark.Node, mark.Tensor)].Dims, corrected, input.Scale, weightScales);
                notes[(mark.Node, mark.Tensor)] = (corrected, largest);
            }
            else
            {
                floatBiases[layer.Bias] = new CorrectedBias(layer.Node.Name, layer.Bias, corrected);
            }
        }
        var table = parameters.Table.Select(e => e.Role == TensorRole.Bias && notes.TryGetValue((e.Node, e.Tensor), out var n)
            ? e with { Threshold = n.Values.Max(Math.Abs), Note = $"bias corrected: largest shift {n.Shift:G3}" }
            : e);
        return parameters with { Biases = biases, Table = new CalibrationTable(table), FloatBiases = floatBiases };
    }

    /// <summary>Per channel: reference − measured.</summary>
    public static double[] Shift(double[] reference, double[] measured) =>
        reference.Length == measured.Length ? reference.Select((r, c) => r - measured[c]).ToArray() : Array.Empty<double>();

    // The constant vector that an Add alone after the MatMul adds, when nothing else reads it.
    private static string? FloatBias(OnnxGraph model, NodeProto matMul)
    {
        if (model.Consumers(matMul.Output[0]) is not [{ OpType: "Add" } add] || model.IsGraphOutput(matMul.Output[0])) return null;
        var other = add.Input[0] == matMul.Output[0] ? add.Input[1] : add.Input[0];
        return model.FindConstant(other) is { DataType: Tensors.Float, Dims.Count: 1 } && model.Consumers(other).Count == 1 ? other : null;
    }
}
