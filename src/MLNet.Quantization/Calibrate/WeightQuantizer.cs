namespace MLNet.Quantization.Calibration;

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

    /// <summary>Quantizes to int8 with one scale, threshold / 127, from a range chosen by the user.</summary>
    public static QuantizedWeight Quantize(string tensor, long[] dims, float[] values, float threshold)
    {
        float scale = threshold > 0 ? threshold / 127f : 1f;
        var weight = new QuantizedWeight(tensor, dims, new sbyte[values.Length], new[] { scale }, null);
        for (int i = 0; i < values.Length; i++)
            weight.Values[i] = (sbyte)Math.Clamp(Math.Round(values[i] / scale, MidpointRounding.ToEven), -127, 127);
        return weight;
    }

    /// <summary>The weight threshold of <paramref name="method"/> for a channel with max|w| = <paramref name="absMax"/>.</summary>
    public static float Threshold(float absMax, WeightScaleMethod method) =>
        absMax == 0 ? 0 : method == WeightScaleMethod.PowerOfTwo ? MathF.Pow(2, MathF.Ceiling(MathF.Log2(absMax))) : absMax;

    private static float Scale(float absMax, WeightScaleMethod method) => absMax == 0 ? 1f
        : method == WeightScaleMethod.PowerOfTwo ? Threshold(absMax, method) / 128f : absMax / 127f;

    /// <summary>
    /// Why a bias cannot be int32 with scale = input scale × weight scale, or null when it can: a scale that underflows
    /// float, or a value beyond ±2^31 steps (outlier biases appear after BatchNormalization folding).
    /// </summary>
    public static string? BiasProblem(float[] values, float inputScale, float[] weightScales)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float scale = inputScale * weightScales[weightScales.Length == 1 ? 0 : i];
            if (!(scale >= float.Epsilon * 1e6f))
                return $"bias scale {inputScale:G6} × {weightScales[weightScales.Length == 1 ? 0 : i]:G6} underflows float at element {i}";
            if (Math.Abs(values[i] / (double)scale) > int.MaxValue)
                return $"element {i} ({values[i]:G6}) needs {values[i] / (double)scale:G6} steps of {scale:G6}, beyond int32";
        }
        return null;
    }

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
