using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>Marks the tensors of one op type that are to be quantized. Implementations never edit the graph.</summary>
internal interface IOpAnnotator
{
    void Annotate(NodeProto node, AnnotationContext context);
}
