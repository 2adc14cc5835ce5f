using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using Onnx;

namespace MLNet.Quantization.Equalize;

/// <summary>
/// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
/// Correction"), data-free, on the float model.
/// </summary>
/// <remarks>
/// For a chain <c>y = Conv₁(x)</c>, <c>z = f(y)</c>, <c>Conv₂(z)</c> with f the identity, Relu or LeakyRelu (positively
/// homogeneous: f(y/s) = f(y)/s for s &gt; 0), output channel c of Conv₁ (its weights and bias) is divided by
/// <c>s_c = sqrt(r₁_c / r₂_c)</c> and input channel c of Conv₂ multiplied by it, where r₁_c is the largest |w| of
/// Conv₁'s output channel c and r₂_c that of Conv₂'s input channel c (over its output channels and kernel). Both then
/// have range sqrt(r₁_c·r₂_c), and the model computes the same function, up to float rounding. Grouped and depthwise
/// convolutions are handled through their groups: input channel c of Conv₂ with g groups is column c mod (C/g) of
/// the output channels of group ⌊c / (C/g)⌋. Chains longer than two are equalized pair by pair, repeatedly, until
/// no scale moves by more than 0.1% (at most 20 rounds). Only chains whose intermediate tensors have no other readers
/// and are not graph outputs are rescaled.
/// </remarks>
internal sealed class CrossLayerEqualizationPass : IQuantizationPass
{
    private const int MaximumRounds = 20;

    public void Apply(QuantizationContext context, StatisticValues statistics) => Equalize(context.Model);

    /// <summary>Whether <paramref name="model"/> has a chain to equalize (the tuner searches the option only then).</summary>
    internal static bool Applies(OnnxGraph model) => Pairs(model).Any();

    /// <summary>Equalizes every chain of <paramref name="model"/>; returns how many pairs were found.</summary>
    internal static int Equalize(OnnxGraph model)
    {
        var pairs = Pairs(model).ToList();
        // Each Conv's weights and bias are read once and rescaled in memory over the rounds (the nodes are keys by
        // reference: Write edits their inputs).
        var convs = pairs.SelectMany(p => new[] { p.First, p.Second }).Distinct()
            .ToDictionary<NodeProto, NodeProto, ConvValues>(c => c, c => ConvValues.Read(model, c), ReferenceEqualityComparer.Instance);
        for (int round = 0; round < MaximumRounds; round++)
        {
            double moved = 0;
            foreach (var (first, second) in pairs)
                moved = Math.Max(moved, EqualizePair(convs[first], convs[second]));
            if (moved < 1e-3) break;
        }
        foreach (var (conv, values) in convs)
            values.Write(model, conv);
        GraphPreparation.RemoveUnusedInitializers(model);
        GraphPreparation.RemoveDeadConstants(model);
        return pairs.Count;
    }

    private static IEnumerable<(NodeProto First, NodeProto Second)> Pairs(OnnxGraph model)
    {
        foreach (var first in model.Graph.Node.Where(n => n.OpType == "Conv").ToList())
        {
            if (!IsConstantConv(model, first)) continue;
            var tensor = first.Output[0];
            if (!IsPrivate(model, tensor, out var reader)) continue;
            if (reader.OpType is "Relu" or "LeakyRelu" || (reader.OpType == "Clip" && model.IsZeroClamp(reader) && (reader.Input.Count < 3 || reader.Input[2].Length == 0)))
            {
                tensor = reader.Output[0];
                if (!IsPrivate(model, tensor, out reader)) continue;
            }
            if (reader.OpType == "Conv" && reader.Input[0] == tensor && IsConstantConv(model, reader)
                && model.FindConstant(reader.Input[1])!.Dims[1] * Group(reader) == model.FindConstant(first.Input[1])!.Dims[0])
                yield return (first, reader);
        }
    }

    // Read by one node only, and not a graph output nor read by a subgraph.
    private static bool IsPrivate(OnnxGraph model, string tensor, out NodeProto reader)
    {
        var readers = model.Consumers(tensor);
        reader = readers.Count == 1 ? readers[0] : null!;
        return readers.Count == 1 && !model.IsGraphOutput(tensor) && !model.IsReadBySubgraph(tensor);
    }

    private static bool IsConstantConv(OnnxGraph model, NodeProto conv) =>
        model.FindConstant(conv.Input[1]) is { DataType: Tensors.Float, Dims.Count: >= 3 }
        && (conv.Input.Count < 3 || conv.Input[2].Length == 0 || model.FindConstant(conv.Input[2]) is { DataType: Tensors.Float });

    private static long Group(NodeProto conv) => conv.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;

    // A Conv's weights and bias (an initializer or a Constant node's value), as floats.
    private sealed record ConvValues(long[] Dims, float[] Weights, long[]? BiasDims, float[]? Bias)
    {
        public static ConvValues Read(OnnxGraph model, NodeProto conv)
        {
            var w = model.FindConstant(conv.Input[1])!;
            var b = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? model.FindConstant(conv.Input[2])! : null;
            return new ConvValues(Tensors.Dims(w), Tensors.ReadFloats(w), b is null ? null : Tensors.Dims(b), b is null ? null : Tensors.ReadFloats(b));
        }

        // As initializers of the Conv's own, so that a constant shared with another node is never rescaled for it.
        public void Write(OnnxGraph model, NodeProto conv)
        {
            Own(1, Dims, Weights);
            if (Bias is not null) Own(2, BiasDims!, Bias);

            void Own(int input, long[] dims, float[] values)
            {
                var tensor = Tensors.FromFloats(model.UniqueName(conv.Input[input] + "_equalized"), dims, values);
                model.AddInitializer(tensor);
                model.SetInput(conv, input, tensor.Name);
            }
        }
    }

    // One equalization of a pair, in place; returns the largest |s − 1|.
    private static double EqualizePair(ConvValues first, ConvValues second)
    {
        var (w1, w2) = (first.Weights, second.Weights);
        int channels = (int)first.Dims[0];
        int inner1 = w1.Length / channels;
        int outputs2 = (int)second.Dims[0], perGroup = (int)second.Dims[1];
        int kernel2 = w2.Length / (outputs2 * perGroup);
        int groups = channels / perGroup, outputsPerGroup = outputs2 / groups;
        var scales = new double[channels];
        double moved = 0;
        for (int c = 0; c < channels; c++)
        {
            double r1 = 0, r2 = 0;
            for (int k = 0; k < inner1; k++) r1 = Math.Max(r1, Math.Abs(w1[c * inner1 + k]));
            int group = c / perGroup, column = c % perGroup;
            for (int m = group * outputsPerGroup; m < (group + 1) * outputsPerGroup; m++)
                for (int k = 0; k < kernel2; k++) r2 = Math.Max(r2, Math.Abs(w2[(m * perGroup + column) * kernel2 + k]));
            scales[c] = r1 > 0 && r2 > 0 ? Math.Clamp(Math.Sqrt(r1 / r2), 1e-4, 1e4) : 1;
            moved = Math.Max(moved, Math.Abs(scales[c] - 1));
        }
        for (int c = 0; c < channels; c++)
        {
            for (int k = 0; k < inner1; k++) w1[c * inner1 + k] = (float)(w1[c * inner1 + k] / scales[c]);
            int group = c / perGroup, column = c % perGroup;
            for (int m = group * outputsPerGroup; m < (group + 1) * outputsPerGroup; m++)
                for (int k = 0; k < kernel2; k++) w2[(m * perGroup + column) * kernel2 + k] = (float)(w2[(m * perGroup + column) * kernel2 + k] * scales[c]);
        }
        if (first.Bias is { } bias)
            for (int c = 0; c < channels && c < bias.Length; c++) bias[c] = (float)(bias[c] / scales[c]);
        return moved;
    }
}
