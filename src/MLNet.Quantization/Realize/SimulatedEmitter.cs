using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Fake quantization in float ops: <c>y = (clip(round(x / s) + z, qmin, qmax) − z) · s</c> with Div, Round (half to even,
/// as QuantizeLinear rounds), Add, Clip, Sub and Mul, none of which ONNX Runtime fuses into int8 kernels. Weights and
/// biases are stored already dequantized: the constant-folded form of the same arithmetic.
/// </summary>
internal sealed class SimulatedEmitter : IQdqEmitter
{
    public void Activation(OnnxGraph graph, string source, string target, ActivationParameters p)
    {
        string Constant(string suffix, float value)
        {
            var name = graph.UniqueName(source + suffix);
            graph.AddInitializer(Tensors.FromFloats(name, Array.Empty<long>(), new[] { value }));
            return name;
        }
        string Step(string op, string input, params string[] operands)
        {
            var output = graph.UniqueName($"{source}_fq_{op}");
            graph.AddNode(OnnxGraph.MakeNode(op, graph.UniqueName($"{source}_fq_{op}_node"), new[] { input }.Concat(operands), new[] { output }));
            return output;
        }
        var scale = Constant("_scale", p.Scale);
        var zeroPoint = Constant("_zero_point", p.ZeroPoint);
        var low = Constant("_qmin", p.Format.QMin);
        var high = Constant("_qmax", p.Format.QMax);
        var q = Step("Clip", Step("Add", Step("Round", Step("Div", source, scale)), zeroPoint), low, high);
        graph.AddNode(OnnxGraph.MakeNode("Mul", graph.UniqueName(source + "_fq_Mul_node"),
            new[] { Step("Sub", q, zeroPoint), scale }, new[] { target }));
    }

    public void Weight(OnnxGraph graph, string target, QuantizedWeight w) =>
        graph.AddInitializer(Tensors.FromFloats(target, w.Dims, w.Dequantize()));

    public void Bias(OnnxGraph graph, string target, QuantizedBias b) =>
        graph.AddInitializer(Tensors.FromFloats(target, b.Dims, b.Dequantize()));
}
