using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Writes the nodes that (de)quantize one tensor. <see cref="Int8Emitter"/> writes QuantizeLinear/DequantizeLinear,
/// which ONNX Runtime fuses into int8 kernels; <see cref="SimulatedEmitter"/> writes the same arithmetic in float ops.
/// Both produce a float tensor named <c>target</c>, so the writer's surgery is the same for both.
/// </summary>
internal interface IQdqEmitter
{
    /// <summary>Writes <c>target = dequantize(quantize(source))</c> for an activation.</summary>
    void Activation(OnnxGraph graph, string source, string target, ActivationParameters parameters);

    /// <summary>Makes <c>target</c> the float tensor of the dequantized weight (the simulated emitter writes it at <see cref="Complete"/>).</summary>
    void Weight(OnnxGraph graph, string target, QuantizedWeight weight);

    /// <summary>Writes a float tensor <c>target</c> holding the dequantized bias.</summary>
    void Bias(OnnxGraph graph, string target, QuantizedBias bias);

    /// <summary>
    /// Called once the writer has placed every (de)quantization: rewrites what the form needs beyond them (the
    /// simulation's integer accumulation of the nodes ONNX Runtime runs as integer kernels).
    /// </summary>
    void Complete(OnnxGraph graph);
}
