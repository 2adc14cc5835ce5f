using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Fake quantization in float ops: <c>y = (clip(round(x / s) + z, qmin, qmax) − z) · s</c> with Div, Round (half to even,
/// as QuantizeLinear rounds), Add, Clip, Sub and Mul, none of which ONNX Runtime fuses into int8 kernels. The layers
/// that ONNX Runtime runs as integer kernels read integer weights (see below); the others read their int8 weights
/// through DequantizeLinear, exactly as the realized model does, which ONNX Runtime cannot fuse without a quantized
/// input and does not fold into a constant, so it optimizes both models' float layers alike.
/// </summary>
/// <remarks>
/// <para>
/// Where ONNX Runtime runs a node as an integer kernel, the simulation computes what that kernel computes, not the
/// float product of dequantized values. A fused Conv (its output read by its QuantizeLinear only: QLinearConv), every
/// quantized MatMul (QLinearMatMul or MatMulIntegerToFloat) and a quantized Gemm (QGemm) accumulate
/// <c>acc = Σ (q_x − z_x) · q_w + q_b</c> exactly in int32 and scale it once, <c>y = acc · s_x · s_w</c>. The float
/// form <c>Σ ((q_x − z_x) s_x) · (q_w s_w)</c> rounds every product and partial sum: about 10⁻³ of an output step on a
/// 3×3×256 Conv, which moves a value lying that close to a rounding tie to the next step, and a deep net carries each
/// such step on (ResNet18 1.5%, a U-Net 5.6% relative error between the two before this form).
/// </para>
/// <para>
/// So such a node reads the centred integers <c>q − z</c> (held exactly in float32), the integer weights and the
/// int32 bias as floats, and one Mul by <c>s_x · s_w</c> (per output channel) follows it. Products of a uint8 and an
/// int8 are below 2¹⁵, and sums stay exact in float32 while they stay below 2²⁴; the one rounding left is that of the
/// final scaling, which ONNX Runtime has as well. A Conv whose output is also read in float stays in the float form,
/// as ONNX Runtime then runs it in float.
/// </para>
/// </remarks>
internal sealed class SimulatedEmitter : IQdqEmitter
{
    // Per dequantized activation: the tensor of its centred integers (q − z), its scale, the tensor of its integers q and
    // its parameters.
    private readonly Dictionary<string, (string Centered, float Scale, string Quantized, ActivationParameters P)> _activations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QuantizedWeight> _weights = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QuantizedBias> _biases = new(StringComparer.Ordinal);
    // Per quantized tensor (the float value read by a Div): its scale and parameters.
    private readonly Dictionary<string, ActivationParameters> _quantizedSources = new(StringComparer.Ordinal);

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
        var centered = Step("Sub", q, zeroPoint);
        graph.AddNode(OnnxGraph.MakeNode("Mul", graph.UniqueName(source + "_fq_Mul_node"), new[] { centered, scale }, new[] { target }));
        _activations[target] = (centered, p.Scale, q, p);
        _quantizedSources[source] = p;
    }

    // Written at Complete, once it is known which readers take the integer form and which the DequantizeLinear one.
    public void Weight(OnnxGraph graph, string target, QuantizedWeight w) => _weights[target] = w;

    public void Bias(OnnxGraph graph, string target, QuantizedBias b)
    {
        graph.AddInitializer(Tensors.FromFloats(target, b.Dims, b.Dequantize()));
        _biases[target] = b;
    }

    public void Complete(OnnxGraph graph)
    {
        var integerWeights = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in graph.Graph.Node.ToList())
        {
            if (node.Domain is not ("" or "ai.onnx") || Integer(graph, node) is not { } form) continue;
            for (int i = 0; i < form.Inputs.Length; i++)
                graph.SetInput(node, i, form.Inputs[i]);
            var output = node.Output[0];
            var accumulated = graph.UniqueName(output + "_accumulated");
            graph.SetOutput(node, 0, accumulated);
            // The float value itself stays, for the passes that read it (bias correction, the noise of each layer).
            Scale(graph, node, accumulated, output, form.Scales, form.ScaleDims);
            if (form.Requantize is { } divide)
            {
                // Fused with its quantization: q = round(acc · (s_x s_w / s_y)) + z_y, one multiply as the kernel has it,
                // in place of the Div by s_y of the float value.
                var multiplier = graph.UniqueName(output + "_requantize_scale");
                float outputScale = _quantizedSources[output].Scale;
                graph.AddInitializer(Tensors.FromFloats(multiplier, form.ScaleDims, form.Scales.Select(s => s / outputScale).ToArray()));
                divide.OpType = "Mul";
                graph.SetInput(divide, 0, multiplier);
                graph.SetInput(divide, 1, accumulated);
            }
        }

        foreach (var node in graph.Graph.Node.Where(n => n.OpType == "Add" && n.Domain is "" or "ai.onnx").ToList())
            IntegerAdd(graph, node);

        // The layers left in the float form read their weights through DequantizeLinear, as in the realized model: ONNX
        // Runtime then optimizes them alike (a constant float weight would let it fold a following Add or Mul into the
        // layer, which sums in another order than the realized model's layer).
        foreach (var (target, weight) in _weights.Where(w => graph.Consumers(w.Key).Count > 0))
            Int8Emitter.DequantizeWeight(graph, target, weight);

        // The integer form of a node's inputs (centred activations, integer weights and bias), the scale of its
        // accumulator and, where its quantization reads it alone (ONNX Runtime fuses the two), that quantization's Div;
        // null where ONNX Runtime would not run it as an integer kernel.
        (string[] Inputs, float[] Scales, long[] ScaleDims, NodeProto? Requantize)? Integer(OnnxGraph g, NodeProto node)
        {
            bool conv = node.OpType == "Conv", gemm = node.OpType == "Gemm";
            if (!conv && !gemm && node.OpType != "MatMul") return null;
            if (node.Input.Count < 2 || node.Output.Count < 1 || !_activations.TryGetValue(node.Input[0], out var x)) return null;
            var requantize = g.Consumers(node.Output[0]) is [{ OpType: "Div" } divide] && _quantizedSources.ContainsKey(node.Output[0])
                && !g.IsGraphOutput(node.Output[0]) && !g.IsReadBySubgraph(node.Output[0]) ? divide : null;
            if (conv && requantize is null) return null; // not fused: ONNX Runtime runs this Conv in float on the dequantized values
            if (gemm && (Float(node, "alpha") != 1f || Float(node, "beta") != 1f || AnnotationContext.Attribute(node, "transA", 0) != 0)) return null;

            var inputs = node.Input.ToArray();
            inputs[0] = x.Centered;
            float[] scales;
            long[] dims;
            if (_activations.TryGetValue(node.Input[1], out var y) && !conv && !gemm)
            {
                inputs[1] = y.Centered;
                (scales, dims) = (new[] { x.Scale * y.Scale }, Array.Empty<long>());
            }
            else if (_weights.TryGetValue(node.Input[1], out var w))
            {
                int outputAxis = conv ? 0 : gemm ? (AnnotationContext.Attribute(node, "transB", 0) != 0 ? 0 : 1) : w.Dims.Length - 1;
                if (w.Axis is { } axis && axis != outputAxis) return null;
                if (!integerWeights.TryGetValue(node.Input[1], out var integer))
                {
                    integer = g.UniqueName(w.Tensor + "_integer");
                    g.AddInitializer(WeightPayloads.AsFloatIntegers(integer, w));
                    integerWeights[node.Input[1]] = integer;
                }
                inputs[1] = integer;
                scales = w.Scales.Select(s => x.Scale * s).ToArray();
                dims = scales.Length == 1 ? Array.Empty<long>()
                    : conv ? new[] { 1L, scales.Length }.Concat(Enumerable.Repeat(1L, w.Dims.Length - 2)).ToArray()
                    : new long[] { scales.Length };
            }
            else return null;

            if (inputs.Length > 2 && inputs[2].Length > 0)
            {
                if (!_biases.TryGetValue(node.Input[2], out var b)) return null;
                var integer = g.UniqueName(b.Tensor + "_integer");
                g.AddInitializer(Tensors.FromFloats(integer, b.Dims, b.Values.Select(v => (float)v).ToArray()));
                inputs[2] = integer;
            }
            return (inputs, scales, dims, requantize);
        }
    }

    /// <summary>
    /// Writes <c>output = accumulated · scale</c>, the integer kernel's one rounding of its accumulator. A scalar scale is
    /// applied in float64 between two Casts, which rounds exactly as the float32 product does (an accumulator below 2²⁴
    /// times a float32 scale is exact in float64): as a float32 Mul by a scalar constant, ONNX Runtime would fold it, and
    /// a Mul or Div by a scalar constant after it (the attention's division by √d), into the MatMul's alpha
    /// (MatMulScaleFusion), one rounding of <c>acc · (s / √d)</c> where the realized model's MatMulIntegerToFloat, which
    /// that fusion does not take, rounds <c>acc · s</c> and then the division (seen on all-MiniLM-L6-v2: realized vs
    /// simulated relative error 0.026 with max ranges, growing from one step in the first layer's attention).
    /// </summary>
    private static void Scale(OnnxGraph graph, NodeProto node, string accumulated, string output, float[] scales, long[] dims)
    {
        string label = OnnxGraph.Label(node) + "_scale";
        if (dims.Length > 0)
        {
            var vector = graph.UniqueName(output + "_accumulator_scale");
            graph.AddInitializer(Tensors.FromFloats(vector, dims, scales));
            graph.AddNode(OnnxGraph.MakeNode("Mul", graph.UniqueName(label), new[] { vector, accumulated }, new[] { output }));
            return;
        }
        var scale = DoubleScalar(graph, output + "_accumulator_scale", scales[0]);
        string Step(string op, string suffix, string[] inputs, string? result = null, long? castTo = null) =>
            AddStep(graph, op, graph.UniqueName(label + suffix), inputs, result ?? graph.UniqueName(output + suffix), castTo);
        var wide = Step("Cast", "_wide", new[] { accumulated }, castTo: (long)TensorProto.Types.DataType.Double);
        var product = Step("Mul", "_product", new[] { scale, wide });
        Step("Cast", "_narrow", new[] { product }, output, (long)TensorProto.Types.DataType.Float);
    }

    // A float64 scalar initializer named after stem (the float64 steps of Scale and IntegerAdd); returns its name.
    private static string DoubleScalar(OnnxGraph graph, string stem, double value)
    {
        var name = graph.UniqueName(stem);
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Double };
        tensor.DoubleData.Add(value);
        graph.AddInitializer(tensor);
        return name;
    }

    // Adds the node op(inputs) → result named nodeName, a Cast's target type set where given; returns result.
    private static string AddStep(OnnxGraph graph, string op, string nodeName, string[] inputs, string result, long? castTo = null)
    {
        var node = OnnxGraph.MakeNode(op, nodeName, inputs, new[] { result });
        if (castTo is { } to) node.Attribute.Add(OnnxGraph.IntAttribute("to", to));
        graph.AddNode(node);
        return result;
    }

    /// <summary>
    /// A quantized Add of two quantized activations, as ONNX Runtime's QLinearAdd kernel for x86 (AVX2 and later)
    /// computes it: <c>q_c = round(fma(q_a, r_a, fma(q_b, r_b, F)))</c>, clamped to the format, with
    /// <c>r_a = s_a / s_c</c>, <c>r_b = s_b / s_c</c> and <c>F = z_c − fma(r_a, z_a, r_b z_b)</c> in float32.
    /// </summary>
    /// <remarks>
    /// The float form <c>round(((q_a − z_a) s_a + (q_b − z_b) s_b) / s_c) + z_c</c> is the same sum, rounded in other
    /// places: a value that close to a rounding tie lands one step away, and a deep residual net carries each such step
    /// on. Each fused multiply-add is computed in float64, where <c>q · r + t</c> is exact (q has 8 bits, r and t 24), and
    /// cast to float32 once, which rounds as the fused instruction does. ONNX Runtime fuses the Add with its output's
    /// quantization when that quantization reads the Add alone, or reads a Relu that reads it alone and the range starts
    /// at zero (the Relu is then dropped: the quantization clamps at zero). Other kernels (ARM's fixed-point one, SSE2's
    /// unfused products) round differently, as does the x86 kernel's path for an input of one element (its product is
    /// rounded before the sum); there the simulation can land one step away at a tie, as the float form did. F is
    /// written <c>z_c − (r_a z_a + r_b z_b)</c> in the kernel's source, but the x64 Linux build of ONNX Runtime computes
    /// the sum in parentheses as one fused multiply-add (its compiler contracts it; the unfused sum differs from it by
    /// one unit in the last place for some scales, which matters only when both inputs have a zero point, as a
    /// residual Add of two signed tensors does).
    /// </remarks>
    private void IntegerAdd(OnnxGraph g, NodeProto add)
    {
        if (add.Input.Count != 2 || add.Output.Count != 1) return;
        if (!_activations.TryGetValue(add.Input[0], out var a) || !_activations.TryGetValue(add.Input[1], out var b)) return;
        string output = add.Output[0];
        if (g.IsGraphOutput(output) || g.IsReadBySubgraph(output)) return;
        if (g.Consumers(output) is [{ OpType: "Relu" } relu] && _quantizedSources.TryGetValue(relu.Output[0], out var clamped) && clamped.ClampsAtZero)
            output = relu.Output[0];
        if (g.IsGraphOutput(output) || g.IsReadBySubgraph(output) || !_quantizedSources.TryGetValue(output, out var c)) return;
        if (g.Consumers(output) is not [{ OpType: "Div" } divide]
            || g.Consumers(divide.Output[0]) is not [{ OpType: "Round" } round]
            || g.Consumers(round.Output[0]) is not [{ OpType: "Add" } zeroPoint]) return;
        if (a.P.Format != c.Format || b.P.Format != c.Format) return;

        float ratioA = a.P.Scale / c.Scale, ratioB = b.P.Scale / c.Scale;
        // The kernel's F, as the compiler of ONNX Runtime's x64 build contracts it: r_a z_a + r_b z_b in one fused
        // multiply-add (seen on M-LSD, where the unfused sum put 4 of 51,200 values one step away).
        float fixedPart = c.ZeroPoint - MathF.FusedMultiplyAdd(ratioA, a.P.ZeroPoint, ratioB * b.P.ZeroPoint);
        string label = OnnxGraph.Label(add);
        string Constant(string suffix, double value) => DoubleScalar(g, label + suffix, value);
        string Step(string op, string suffix, string[] inputs, long? castTo = null)
        {
            var result = g.UniqueName(label + suffix);
            return AddStep(g, op, g.UniqueName(label + suffix + "_node"), inputs, result, castTo);
        }
        const long Double = (long)TensorProto.Types.DataType.Double, Float = (long)TensorProto.Types.DataType.Float;
        string FusedMultiplyAdd(string q, string ratio, string addend, string suffix)
        {
            var product = Step("Mul", suffix + "_product", new[] { Step("Cast", suffix + "_q", new[] { q }, Double), ratio });
            return Step("Cast", suffix, new[] { Step("Add", suffix + "_sum", new[] { product, addend }) }, Float);
        }
        var partial = FusedMultiplyAdd(b.Quantized, Constant("_ratio_b", ratioB), Constant("_fixed_part", fixedPart), "_qladd_b");
        var sum = FusedMultiplyAdd(a.Quantized, Constant("_ratio_a", ratioA), Step("Cast", "_qladd_b_wide", new[] { partial }, Double), "_qladd");
        // The quantization reads the kernel's value in place of x / s, and adds no zero point (F holds it).
        g.SetInput(round, 0, sum);
        var noZeroPoint = g.UniqueName(label + "_qladd_no_zero_point");
        g.AddInitializer(Tensors.FromFloats(noZeroPoint, Array.Empty<long>(), new[] { 0f }));
        g.SetInput(zeroPoint, 1, noZeroPoint);
        g.RemoveNode(divide);
    }

    /// <summary>
    /// The float tensor that <paramref name="node"/> of a simulated model writes: its output, or, where it accumulates
    /// integers, the scaled accumulator (which keeps the output's name).
    /// </summary>
    public static string FloatOutput(OnnxGraph simulated, NodeProto node)
    {
        // The scaling steps (a Mul, or Cast, Mul and Cast for a scalar scale) are named after the node, and the last one
        // writes the output's name.
        string prefix = OnnxGraph.Label(node) + "_scale", tensor = node.Output[0];
        while (simulated.Consumers(tensor).FirstOrDefault(r => r.Name.StartsWith(prefix, StringComparison.Ordinal)) is { } step)
            tensor = step.Output[0];
        return tensor;
    }

    private static float Float(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.F ?? 1f;
}
