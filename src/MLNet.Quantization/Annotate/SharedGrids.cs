using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// A tensor computed from a quantized one by ops that leave values ≥ 0 as they are and move the others no further from
/// zero (LeakyRelu with 0 ≤ α ≤ 1, Relu, Max with a constant ≤ 0, Clip from a minimum ≤ 0) is quantized on that
/// tensor's grid (<see cref="ActivationMark.ShareScaleWith"/>).
/// </summary>
/// <remarks>
/// <para>
/// The ops read the source dequantized, so its non-negative values reach the tensor already on the source's grid, and
/// quantizing them there again gives them back unchanged; on a grid of its own each would be rounded a second time.
/// openWakeWord's embedding model writes every layer as Conv → LeakyRelu(0.2) → Max(x, −0.4): both the convolution's
/// output and the Max's were quantized, on grids of about the same step, so every non-negative activation was rounded
/// twice. With one grid the model's output error went from 0.054 to 0.043 with the defaults, after the cut of
/// <see cref="ReaderClamps"/> (docs/benchmarks.md, issue 16, tenth session).
/// </para>
/// <para>
/// The tensor's values lie within the source's range: an op of the chain maps [lo, hi] (lo ≤ 0) into [lo, hi], so the
/// shared grid clips none of them. Where the source's range stops at its readers' clamp (<see cref="ReaderClamps"/>),
/// the chain's values past the clamp are the clamp's, which lie within the range too. The negative values of a
/// LeakyRelu (αx) are rounded on the source's step instead of their own; they are the small ones.
/// </para>
/// </remarks>
internal static class SharedGrids
{
    /// <summary>Makes each activation computed from a quantized one through positive identities share that one's grid.</summary>
    public static void Share(OnnxGraph graph, QuantizationPlan plan)
    {
        for (int i = 0; i < plan.Activations.Count; i++)
        {
            var mark = plan.Activations[i];
            if (mark.ShareScaleWith is not null || graph.IsGraphOutput(mark.Tensor)) continue;
            var tensor = mark.Tensor;
            NodeProto? first = null;
            int steps = 0;
            while (steps < 4 && graph.Producer(tensor) is { } node && PositiveIdentityInput(graph, node) is { } input && plan.FindActivation(tensor) is var own
                   && (steps == 0 || own is null))
            {
                first = node;
                tensor = input;
                steps++;
            }
            if (steps == 0 || first is null || plan.FindActivation(tensor) is not { } source || !plan.ReadsQuantized(tensor, first.Name)) continue;
            plan.Activations[i] = mark with { ShareScaleWith = source.Tensor, ReadersClamp = null };
        }
    }

    // The input of `node` when node is the identity on [0, ∞) and maps negative values into [x, 0] (so never further
    // from zero); null otherwise.
    private static string? PositiveIdentityInput(OnnxGraph graph, NodeProto node)
    {
        if (node.Input.Count == 0 || node.Output.Count != 1 || node.Input[0].Length == 0) return null;
        switch (node.OpType)
        {
            case "Relu":
                return node.Input[0];
            case "LeakyRelu":
                float alpha = node.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 0.01f;
                return alpha is >= 0 and <= 1 ? node.Input[0] : null;
            case "Max" when node.Input.Count == 2:
            {
                int constant = graph.FindConstant(node.Input[1]) is not null ? 1 : graph.FindConstant(node.Input[0]) is not null ? 0 : -1;
                if (constant < 0 || graph.FindConstant(node.Input[constant]) is not { DataType: Tensors.Float } c) return null;
                return Tensors.ReadFloats(c) is { Length: > 0 } values && values.All(v => v <= 0) ? node.Input[1 - constant] : null;
            }
            case "Clip":
            {
                if (node.Input.Count < 2 || node.Input[1].Length == 0 || graph.FindConstant(node.Input[1]) is not { DataType: Tensors.Float } low
                    || Tensors.ReadFloats(low) is not [<= 0f]) return null;
                if (node.Input.Count >= 3 && node.Input[2].Length > 0
                    && (graph.FindConstant(node.Input[2]) is not { DataType: Tensors.Float } high || Tensors.ReadFloats(high) is not [>= 0f])) return null;
                return node.Input[0];
            }
            default:
                return null;
        }
    }
}
