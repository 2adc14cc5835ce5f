using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>QuantizeLinear/DequantizeLinear with activations in their format (uint8), int8 weights and int32 biases.</summary>
internal sealed class Int8Emitter : IQdqEmitter
{
    // Each dequantized activation: its integer tensor, scale and zero point.
    private readonly Dictionary<string, (string Quantized, string Scale, int ZeroPoint)> _activations = new(StringComparer.Ordinal);

    public void Activation(OnnxGraph graph, string source, string target, ActivationParameters p)
    {
        var scale = graph.UniqueName(source + "_scale");
        graph.AddInitializer(Tensors.FromFloats(scale, Array.Empty<long>(), new[] { p.Scale }));
        var zeroPoint = graph.UniqueName(source + "_zero_point");
        graph.AddInitializer(p.Format.ElementType == Tensors.Int8
            ? Tensors.FromSBytes(zeroPoint, Array.Empty<long>(), new[] { (sbyte)p.ZeroPoint })
            : Tensors.FromBytes(zeroPoint, Array.Empty<long>(), new[] { (byte)p.ZeroPoint }));
        var quantized = graph.UniqueName(source + "_quantized");
        graph.AddNode(OnnxGraph.MakeNode("QuantizeLinear", graph.UniqueName(source + "_QuantizeLinear"),
            new[] { source, scale, zeroPoint }, new[] { quantized }));
        graph.AddNode(OnnxGraph.MakeNode("DequantizeLinear", graph.UniqueName(source + "_DequantizeLinear"),
            new[] { quantized, scale, zeroPoint }, new[] { target }));
        _activations[target] = (quantized, scale, p.ZeroPoint);
    }

    public void Weight(OnnxGraph graph, string target, QuantizedWeight w) => DequantizeWeight(graph, target, w);

    /// <summary>Writes <c>target = DequantizeLinear(w)</c>: int8 values, per channel along the weight's axis when it has one.</summary>
    public static void DequantizeWeight(OnnxGraph graph, string target, QuantizedWeight w)
    {
        var scaleDims = w.Axis is null ? Array.Empty<long>() : new long[] { w.Scales.Length };
        Dequantize(graph, target, w.Tensor, WeightPayloads.AsInt8("", w), w.Scales,
            Tensors.FromSBytes("", scaleDims, new sbyte[w.Scales.Length]), w.Axis);
    }

    public void Bias(OnnxGraph graph, string target, QuantizedBias b)
    {
        var scaleDims = b.Scales.Length == 1 ? Array.Empty<long>() : new long[] { b.Scales.Length };
        Dequantize(graph, target, b.Tensor, Tensors.FromInts("", b.Dims, b.Values), b.Scales,
            Tensors.FromInts("", scaleDims, new int[b.Scales.Length]), b.Scales.Length == 1 ? null : 0);
    }

    /// <summary>
    /// ONNX Runtime fuses the QDQ pairs itself. What it must not fuse: a Conv, ConvTranspose or Gemm that stays float
    /// (excluded, sent back by a check, or a weight the plan leaves float) but reads a quantized activation.
    /// </summary>
    /// <remarks>
    /// ONNX Runtime's <c>WeightBiasQuantization</c> (a basic-level optimization, so on at every level ML.NET can use)
    /// takes such a node whose first input comes from a per-tensor DequantizeLinear, quantizes its float weights itself,
    /// symmetric per tensor in int8, and its bias in int32, and the QDQ fusion then runs it as an integer kernel: the
    /// node meant to stay float runs in int8, with weights coarser than the per-channel ones the plan would give
    /// (BlazeFace with its depthwise convolutions excluded: realized vs simulated 0.16–0.23, and 4% on one layer).
    /// That node reads the activation dequantized by arithmetic instead, <c>(float(q) − z) · s</c>, the same values,
    /// which that optimization does not match.
    /// </remarks>
    public void Complete(OnnxGraph graph)
    {
        var floatForms = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in graph.Graph.Node.Where(n => n.OpType is "Conv" or "ConvTranspose" or "Gemm" && n.Domain is "" or "ai.onnx").ToList())
        {
            if (node.Input.Count < 2 || !_activations.TryGetValue(node.Input[0], out var a)
                || graph.Producer(node.Input[1])?.OpType == "DequantizeLinear")
                continue;
            if (!floatForms.TryGetValue(node.Input[0], out var floatForm))
                floatForms[node.Input[0]] = floatForm = DequantizeByArithmetic(graph, node.Input[0], a.Quantized, a.Scale, a.ZeroPoint);
            graph.SetInput(node, 0, floatForm);
        }
    }

    private static string DequantizeByArithmetic(OnnxGraph graph, string target, string quantized, string scale, int zeroPoint)
    {
        var cast = OnnxGraph.MakeNode("Cast", graph.UniqueName(target + "_float_Cast"), new[] { quantized }, new[] { graph.UniqueName(target + "_float_cast") });
        cast.Attribute.Add(OnnxGraph.IntAttribute("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
        graph.AddNode(cast);
        var centered = cast.Output[0];
        if (zeroPoint != 0)
        {
            var zero = graph.UniqueName(target + "_float_zero_point");
            graph.AddInitializer(Tensors.FromFloats(zero, Array.Empty<long>(), new float[] { zeroPoint }));
            centered = graph.UniqueName(target + "_float_centered");
            graph.AddNode(OnnxGraph.MakeNode("Sub", graph.UniqueName(target + "_float_Sub"), new[] { cast.Output[0], zero }, new[] { centered }));
        }
        var output = graph.UniqueName(target + "_float");
        graph.AddNode(OnnxGraph.MakeNode("Mul", graph.UniqueName(target + "_float_Mul"), new[] { centered, scale }, new[] { output }));
        return output;
    }

    // target = DequantizeLinear(values, scales, zeroPoints), per channel along axis when it is set.
    private static void Dequantize(OnnxGraph graph, string target, string tensor, global::Onnx.TensorProto values, float[] scales,
        global::Onnx.TensorProto zeroPoints, int? axis)
    {
        values.Name = graph.UniqueName(tensor + "_quantized");
        graph.AddInitializer(values);
        var scale = graph.UniqueName(tensor + "_scale");
        graph.AddInitializer(Tensors.FromFloats(scale, zeroPoints.Dims.ToArray(), scales));
        zeroPoints.Name = graph.UniqueName(tensor + "_zero_point");
        graph.AddInitializer(zeroPoints);
        var node = OnnxGraph.MakeNode("DequantizeLinear", graph.UniqueName(tensor + "_DequantizeLinear"),
            new[] { values.Name, scale, zeroPoints.Name }, new[] { target });
        if (axis is not null) node.Attribute.Add(OnnxGraph.IntAttribute("axis", axis.Value));
        graph.AddNode(node);
    }
}
