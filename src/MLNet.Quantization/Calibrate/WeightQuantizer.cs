namespace MLNet.Quantization.Calibrate;

/// <summary>Symmetric int8 weight and int32 bias quantization: pure functions of the float values.</summary>
internal static class WeightQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="values"/> to int8 with zero point 0: per tensor, or per channel along <paramref name="axis"/>.
    /// </summary>
    /// <remarks>
    /// <see cref="WeightScaleMethod.Max"/>: s = max|w| / 127. <see cref="WeightScaleMethod.PowerOfTwo"/>:
    /// s = 2^ceil(log2 max|w|) / 128. q = clamp(round_half_even(w / s), −127, 127). A channel of zeros gets s = 1.
    /// </remarks>
    public static QuantizedWeight Quantize(string tensor, long[] dims, float[] values, int? axis, WeightScaleMethod method)
    {
        int channels = axis is null ? 1 : (int)dims[axis.Value];
        var scales = new float[channels];
        var weight = new QuantizedWeight(tensor, dims, new sbyte[values.Length], scales, axis);
        int inner = weight.InnerSize();
        var absMax = new float[channels];
        for (int i = 0; i < values.Length; i++)
        {
            int c = channels == 1 ? 0 : (i / inner) % channels;
            absMax[c] = Math.Max(absMax[c], Math.Abs(values[i]));
        }
        for (int c = 0; c < channels; c++)
            scales[c] = Scale(absMax[c], method);
        for (int i = 0; i < values.Length; i++)
        {
            int c = channels == 1 ? 0 : (i / inner) % channels;
            weight.Values[i] = (sbyte)Math.Clamp(Math.Round(values[i] / scales[c], MidpointRounding.ToEven), -127, 127);
        }
        return weight;
    }

    /// <summary>The weight threshold of <paramref name="method"/> for a channel with max|w| = <paramref name="absMax"/>.</summary>
    public static float Threshold(float absMax, WeightScaleMethod method) =>
        absMax == 0 ? 0 : method == WeightScaleMethod.PowerOfTwo ? MathF.Pow(2, MathF.Ceiling(MathF.Log2(absMax))) : absMax;

    private static float Scale(float absMax, WeightScaleMethod method) => absMax == 0 ? 1f
        : method == WeightScaleMethod.PowerOfTwo ? Threshold(absMax, method) / 128f : absMax / 127f;

    /// <summary>
    /// Quantizes a bias to int32 with scale[c] = inputScale × weightScale[c], computed in float exactly as ONNX Runtime
    /// expects; values beyond the int32 range are clamped.
    /// </summary>
    public static QuantizedBias QuantizeBias(string tensor, long[] dims, float[] values, float inputScale, float[] weightScales)
    {
        var scales = weightScales.Select(s => inputScale * s).ToArray();
        var q = new int[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            double v = Math.Round(values[i] / (double)scales[scales.Length == 1 ? 0 : i], MidpointRounding.ToEven);
            q[i] = (int)Math.Clamp(v, int.MinValue, int.MaxValue);
        }
        return new QuantizedBias(tensor, dims, q, scales);
    }
}
