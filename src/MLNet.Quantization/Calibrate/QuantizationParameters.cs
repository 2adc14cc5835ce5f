namespace MLNet.Quantization.Calibration;

/// <summary>uint8 parameters of an activation: <c>q = clamp(round(x / Scale) + ZeroPoint, 0, 255)</c>.</summary>
internal sealed record ActivationParameters(float Scale, byte ZeroPoint);

/// <summary>An int8 weight with one scale (<see cref="Axis"/> = null) or one per channel along <see cref="Axis"/>.</summary>
internal sealed record QuantizedWeight(string Tensor, long[] Dims, sbyte[] Values, float[] Scales, int? Axis)
{
    public float[] Dequantize()
    {
        var result = new float[Values.Length];
        int channels = Scales.Length, inner = InnerSize();
        for (int i = 0; i < Values.Length; i++)
            result[i] = Values[i] * Scales[channels == 1 ? 0 : (i / inner) % channels];
        return result;
    }

    /// <summary>Number of consecutive elements that share a channel.</summary>
    public int InnerSize()
    {
        if (Axis is null) return Values.Length;
        long inner = 1;
        for (int d = Axis.Value + 1; d < Dims.Length; d++) inner *= Dims[d];
        return (int)inner;
    }
}

/// <summary>An int32 bias with scale = input scale × weight scale (per channel when the weight is).</summary>
internal sealed record QuantizedBias(string Tensor, long[] Dims, int[] Values, float[] Scales)
{
    public float[] Dequantize() => Values.Select((v, i) => v * Scales[Scales.Length == 1 ? 0 : i]).ToArray();
}

/// <summary>Everything the realize stage needs, keyed by tensor name, plus the public table.</summary>
internal sealed record QuantizationParameters(
    IReadOnlyDictionary<string, ActivationParameters> Activations,
    IReadOnlyDictionary<string, QuantizedWeight> Weights,
    IReadOnlyDictionary<(string Node, string Tensor), QuantizedBias> Biases,
    CalibrationTable Table);
