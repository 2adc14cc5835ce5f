using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>QuantizeLinear/DequantizeLinear with uint8 activations, int8 weights and int32 biases.</summary>
internal sealed class Int8Emitter : IQdqEmitter
{
    public void Activation(OnnxGraph graph, string source, string target, ActivationParameters p)
    {
        var scale = graph.UniqueName(source + "_scale");
        graph.Graph.Initializer.Add(Tensors.FromFloats(scale, Array.Empty<long>(), new[] { p.Scale }));
        var zeroPoint = graph.UniqueName(source + "_zero_point");
        graph.Graph.Initializer.Add(Tensors.FromBytes(zeroPoint, Array.Empty<long>(), new[] { p.ZeroPoint }));
        var quantized = graph.UniqueName(source + "_quantized");
        graph.Graph.Node.Add(OnnxGraph.MakeNode("QuantizeLinear", graph.UniqueName(source + "_QuantizeLinear"),
            new[] { source, scale, zeroPoint }, new[] { quantized }));
        graph.Graph.Node.Add(OnnxGraph.MakeNode("DequantizeLinear", graph.UniqueName(source + "_DequantizeLinear"),
            new[] { quantized, scale, zeroPoint }, new[] { target }));
    }

    public void Weight(OnnxGraph graph, string target, QuantizedWeight w)
    {
        var values = graph.UniqueName(w.Tensor + "_quantized");
        graph.Graph.Initializer.Add(Tensors.FromSBytes(values, w.Dims, w.Values));
        var scaleDims = w.Axis is null ? Array.Empty<long>() : new long[] { w.Scales.Length };
        var scale = graph.UniqueName(w.Tensor + "_scale");
        graph.Graph.Initializer.Add(Tensors.FromFloats(scale, scaleDims, w.Scales));
        var zeroPoint = graph.UniqueName(w.Tensor + "_zero_point");
        graph.Graph.Initializer.Add(Tensors.FromSBytes(zeroPoint, scaleDims, new sbyte[w.Scales.Length]));
        var node = OnnxGraph.MakeNode("DequantizeLinear", graph.UniqueName(w.Tensor + "_DequantizeLinear"),
            new[] { values, scale, zeroPoint }, new[] { target });
        if (w.Axis is not null) node.Attribute.Add(OnnxGraph.IntAttribute("axis", w.Axis.Value));
        graph.Graph.Node.Add(node);
    }

    public void Bias(OnnxGraph graph, string target, QuantizedBias b)
    {
        var values = graph.UniqueName(b.Tensor + "_quantized");
        graph.Graph.Initializer.Add(Tensors.FromInts(values, b.Dims, b.Values));
        var scaleDims = b.Scales.Length == 1 ? Array.Empty<long>() : new long[] { b.Scales.Length };
        var scale = graph.UniqueName(b.Tensor + "_scale");
        graph.Graph.Initializer.Add(Tensors.FromFloats(scale, scaleDims, b.Scales));
        var zeroPoint = graph.UniqueName(b.Tensor + "_zero_point");
        graph.Graph.Initializer.Add(Tensors.FromInts(zeroPoint, scaleDims, new int[b.Scales.Length]));
        var node = OnnxGraph.MakeNode("DequantizeLinear", graph.UniqueName(b.Tensor + "_DequantizeLinear"),
            new[] { values, scale, zeroPoint }, new[] { target });
        if (b.Scales.Length != 1) node.Attribute.Add(OnnxGraph.IntAttribute("axis", 0));
        graph.Graph.Node.Add(node);
    }
}
