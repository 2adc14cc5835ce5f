using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Annotate;

/// <summary>Annotate: marks, per op, the tensors to quantize (data-free).</summary>
internal sealed class AnnotatePass : IQuantizationPass
{
    public void Apply(QuantizationContext context, StatisticValues statistics) =>
        context.Plan = Annotator.Annotate(context.Model, context.Exclusions);
}
