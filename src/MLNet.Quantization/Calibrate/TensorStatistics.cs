namespace MLNet.Quantization.Calibrate;

/// <summary>What the calibration passes learned of one activation tensor: its range and, for KL and percentile, its histogram.</summary>
internal sealed class TensorStatistics
{
    public TensorStatistics(string tensor) => Tensor = tensor;

    public string Tensor { get; }

    public double Min { get; private set; } = double.PositiveInfinity;

    public double Max { get; private set; } = double.NegativeInfinity;

    public long Count { get; private set; }

    public double AbsMax => Math.Max(Math.Abs(Min), Math.Abs(Max));

    /// <summary>True when no value was negative: the tensor is quantized as uint8 with zero point 0.</summary>
    public bool NonNegative => Min >= 0;

    public Histogram? Histogram { get; set; }

    /// <summary>Folds <paramref name="values"/> into the range; returns the index of the first non-finite value, or −1.</summary>
    public int AddRange(ReadOnlySpan<float> values)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v)) return i;
            if (v < min) min = v;
            if (v > max) max = v;
        }
        if (values.Length > 0)
        {
            Min = Math.Min(Min, min);
            Max = Math.Max(Max, max);
            Count += values.Length;
        }
        return -1;
    }
}
