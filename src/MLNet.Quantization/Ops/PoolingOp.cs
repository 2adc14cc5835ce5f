using MLNet.Quantization.Annotate;
using Onnx;

namespace MLNet.Quantization.Ops;

/// <summary>
/// MaxPool, AveragePool, GlobalAveragePool. MaxPool only selects values, so its output reuses the input's scale;
/// average pooling gets its own output scale (QLinearAveragePool).
/// </summary>
internal sealed class PoolingOp : IOpAnnotator
{
    private readonly bool _sharesInputScale;

    public PoolingOp(bool sharesInputScale) => _sharesInputScale = sharesInputScale;

    public QuantizeWhen When => QuantizeWhen.NextToQuantizedOp;

    public void Annotate(NodeProto node, AnnotationContext context)
    {
        if (node.Output.Count != 1)
            return; // MaxPool with an Indices output stays float.
        context.MarkInput(node, 0);
        context.MarkOutput(node, 0, _sharesInputScale ? node.Input[0] : null);
    }
}
