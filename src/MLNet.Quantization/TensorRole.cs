namespace MLNet.Quantization;

/// <summary>The role a quantized tensor plays in the node that uses it.</summary>
public enum TensorRole
{
    /// <summary>A tensor computed from the model's inputs, calibrated on data (uint8).</summary>
    Activation = 0,

    /// <summary>A constant weight (int8, symmetric).</summary>
    Weight = 1,

    /// <summary>A constant bias (int32, scale = input scale × weight scale).</summary>
    Bias = 2,
}
