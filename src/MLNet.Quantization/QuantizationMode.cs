namespace MLNet.Quantization;

/// <summary>How the calibrated model is realized.</summary>
public enum QuantizationMode
{
    /// <summary>
    /// QuantizeLinear/DequantizeLinear pairs with uint8 activations and int8 weights, which ONNX Runtime fuses into
    /// int8 kernels (QLinearConv, QLinearAdd, MatMulIntegerToFloat, ...). The default.
    /// </summary>
    Int8 = 0,

    /// <summary>
    /// Fake quantization in float ops (divide, round half to even, add zero point, clip, subtract, multiply) with the same
    /// scales as <see cref="Int8"/>. ONNX Runtime cannot fuse it: use it to study accuracy, not for speed.
    /// </summary>
    Simulated = 1,
}
