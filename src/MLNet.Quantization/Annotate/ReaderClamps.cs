using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// An interval [<see cref="Low"/>, <see cref="High"/>] outside of which a tensor's value no longer changes what its readers
/// compute (either end may be infinite).
/// </summary>
internal readonly record struct ClampBounds(double Low, double High)
{
    public static readonly ClampBounds Unbounded = new(double.NegativeInfinity, double.PositiveInfinity);

    public bool IsBounded => Low > double.NegativeInfinity || High < double.PositiveInfinity;

    /// <summary>The values that both bounds let through.</summary>
    public ClampBounds Intersect(ClampBounds other) => new(Math.Max(Low, other.Low), Math.Min(High, other.High));

    /// <summary>The values that either bound lets through (the loosest of two readers).</summary>
    public ClampBounds Union(ClampBounds other) => new(Math.Min(Low, other.Low), Math.Max(High, other.High));

    /// <summary>
    /// <paramref name="range"/> cut to these bounds; unchanged where it lies wholly outside them (the readers then see a
    /// constant, which no range improves).
    /// </summary>
    public TensorRange Narrow(TensorRange range)
    {
        double low = Math.Max(range.Min, Low), high = Math.Min(range.Max, High);
        return high > low ? new TensorRange((float)low, (float)high) : range;
    }

    public override string ToString() => $"[{Low:G4}, {High:G4}]";
}

/// <summary>
/// Finds, for a quantized tensor, the values its readers cannot tell apart: a tensor read only through clamps
/// (Clip, Max or Min with a constant, Relu), possibly behind a LeakyRelu, loses nothing when its quantized range stops
/// at the preimage of the clamp.
/// </summary>
/// <remarks>
/// <para>
/// Exported TensorFlow models write LeakyRelu followed by Max(x, c) (openWakeWord: α = 0.2, c = −0.4), so the
/// convolution's output x ranges over, say, [−18, 19] while every value below c/α = −2 gives c. Quantizing x over
/// [−2, 19] instead of [−18, 19] halves the uint8 step and changes no output: values below −2 saturate at the zero
/// point's lower end, whose image is at or below c, and the Max restores c.
/// </para>
/// <para>
/// Each reader r of x gives bounds B_r: Relu [0, ∞) ∩ B(out); Clip(lo, hi) [lo, hi] ∩ B(out); Max(x, C) [min C, ∞) ∩
/// B(out); Min(x, C) (−∞, max C] ∩ B(out); LeakyRelu(α &gt; 0) f⁻¹(B(out)) with f⁻¹(y) = y for y ≥ 0 and y/α below;
/// anything else (−∞, ∞). The tensor's bounds are the union over its quantized readers (a reader that reads the float
/// tensor sees no quantization). A graph output, or a tensor read by a subgraph, is unbounded.
/// </para>
/// <para>
/// HardSigmoid clamps too, at [−β/α, (1 − β)/α], but it is left out on measurement: on the PaddleOCR direction
/// classifier, whose squeeze-excitation gates read a HardSigmoid, cutting the gates' inputs there moved the mean output
/// cosine on 100 photos from 0.9900 to 0.9854 with balanced weight rounding (and from 0.9825 to 0.9844 with nearest).
/// Those inputs carry far more error from upstream (about 19 dB) than their own rounding adds, so the cut gains
/// nothing there, and the change only moves the model's rounding pattern (docs/benchmarks.md, issue 16, tenth session).
/// </para>
/// </remarks>
internal static class ReaderClamps
{
    // How many clamps deep the readers are followed (LeakyRelu then Max is two).
    private const int MaximumDepth = 4;

    /// <summary>The bounds of <paramref name="tensor"/> over the readers that read its quantized form.</summary>
    public static ClampBounds Of(OnnxGraph graph, QuantizationPlan plan, string tensor)
    {
        if (graph.IsGraphOutput(tensor) || graph.IsReadBySubgraph(tensor)) return ClampBounds.Unbounded;
        var readers = graph.Consumers(tensor).Where(r => plan.ReadsQuantized(tensor, r.Name)).ToList();
        if (readers.Count == 0) return ClampBounds.Unbounded;
        ClampBounds? bounds = null;
        foreach (var reader in readers)
        {
            var b = Through(graph, reader, tensor, 0);
            bounds = bounds is { } sofar ? sofar.Union(b) : b;
            if (!bounds.Value.IsBounded) break;
        }
        return bounds ?? ClampBounds.Unbounded;
    }

    // The values of `input` that `node` (and what reads its output, as far as MaximumDepth) can tell apart.
    private static ClampBounds Through(OnnxGraph graph, NodeProto node, string input, int depth)
    {
        if (node.Input.Count == 0 || node.Output.Count != 1) return ClampBounds.Unbounded;
        switch (node.OpType)
        {
            case "Relu" when node.Input[0] == input:
                return new ClampBounds(0, double.PositiveInfinity).Intersect(After(graph, node, depth));
            case "Clip" when node.Input[0] == input:
            {
                double low = ConstantBound(graph, node, 1, min: true) ?? double.NegativeInfinity;
                double high = ConstantBound(graph, node, 2, min: false) ?? double.PositiveInfinity;
                return new ClampBounds(low, high).Intersect(After(graph, node, depth));
            }
            case "Max" or "Min" when node.Input.Count == 2 && (node.Input[0] == input) != (node.Input[1] == input):
            {
                var other = node.Input[0] == input ? node.Input[1] : node.Input[0];
                if (graph.FindConstant(other) is not { DataType: Tensors.Float } constant || Tensors.ReadFloats(constant) is not { Length: > 0 } c
                    || c.Any(v => !float.IsFinite(v)))
                    return ClampBounds.Unbounded;
                var own = node.OpType == "Max" ? new ClampBounds(c.Min(), double.PositiveInfinity) : new ClampBounds(double.NegativeInfinity, c.Max());
                return own.Intersect(After(graph, node, depth));
            }
            case "LeakyRelu" when node.Input[0] == input:
            {
                float alpha = node.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 0.01f;
                if (!(alpha > 0) || !float.IsFinite(alpha)) return ClampBounds.Unbounded;
                var after = After(graph, node, depth);
                return new ClampBounds(Inverse(after.Low), Inverse(after.High));
                double Inverse(double y) => y >= 0 || double.IsInfinity(y) ? y : y / alpha;
            }
            default:
                return ClampBounds.Unbounded;
        }
    }

    // The bounds of a clamp's output, over all its readers: the output is only followed where it is not itself a graph
    // output and every reader is one more clamp, so that the chain stays a function of the clamped value.
    private static ClampBounds After(OnnxGraph graph, NodeProto node, int depth)
    {
        var output = node.Output[0];
        if (depth >= MaximumDepth || graph.IsGraphOutput(output) || graph.IsReadBySubgraph(output)) return ClampBounds.Unbounded;
        var readers = graph.Consumers(output);
        if (readers.Count == 0) return ClampBounds.Unbounded;
        ClampBounds? bounds = null;
        foreach (var reader in readers)
        {
            var b = Through(graph, reader, output, depth + 1);
            bounds = bounds is { } sofar ? sofar.Union(b) : b;
        }
        return bounds ?? ClampBounds.Unbounded;
    }

    // Clip's min (input 1) or max (input 2) when it is a constant scalar; null when absent, so unbounded on that side.
    private static double? ConstantBound(OnnxGraph graph, NodeProto clip, int index, bool min)
    {
        if (clip.Input.Count <= index || clip.Input[index].Length == 0) return null;
        return graph.FindConstant(clip.Input[index]) is { DataType: Tensors.Float } t && Tensors.ReadFloats(t) is [var v] && float.IsFinite(v)
            ? v : (min ? double.NegativeInfinity : double.PositiveInfinity);
    }
}
