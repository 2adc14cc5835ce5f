using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>QuantizeLinear/DequantizeLinear with activations in their format (uint8), int8 weights and int32 biases.</summary>
internal sealed class Int8Emitter : IQdqEmitter
{
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
    }

    public void Weight(OnnxGraph graph, string target, QuantizedWeight w) => DequantizeWeight(graph, target, w);

    /// <summary>Writes <c>target = DequantizeLinear(w)</c>: int8 values, per channel along the weight's axis when it has one.</summary>
    public static void DequantizeWeight(OnnxGraph graph, string target, QuantizedWeight w)
    {
        var scaleDims = w.Axis is null ? Array.Empty<long>() : new long[] { w.Scales.Length };
        Dequantize(graph, target, w.Tensor, Tensors.FromSBytes("", w.Dims, w.Values), w.Scales,
            Tensors.FromSBytes("", scaleDims, new sbyte[w.Scales.Length]), w.Axis);
    }

    public void Bias(OnnxGraph graph, string target, QuantizedBias b)
    {
        var scaleDims = b.Scales.Length == 1 ? Array.Empty<long>() : new long[] { b.Scales.Length };
        Dequantize(graph, target, b.Tensor, Tensors.FromInts("", b.Dims, b.Values), b.Scales,
            Tensors.FromInts("", scaleDims, new int[b.Scales.Length]), b.Scales.Length == 1 ? null : 0);
    }

    /// <summary>Nothing to add: ONNX Runtime fuses the QDQ pairs itself.</summary>
    public void Complete(OnnxGraph graph)
    {
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
