namespace MLNet.Quantization.Calibration;

/// <summary>
/// What calibration learned of one tensor: its range over all calibration rows and, when a histogram-based method or a
/// <c>CustomCalibration</c> callback needs it, its histogram over ±max|x|. Weights are described the same way, from
/// their values.
/// </summary>
public sealed class TensorStatistics
{
    internal TensorStatistics(string tensor, TensorRole role, string node, string opType)
    {
        Tensor = tensor;
        Role = role;
        Node = node;
        OpType = opType;
    }

    /// <summary>The tensor's name.</summary>
    public string Tensor { get; }

    /// <summary>Activation or weight.</summary>
    public TensorRole Role { get; }

    /// <summary>The node that asked for the tensor to be quantized.</summary>
    public string Node { get; }

    /// <summary>The op type of <see cref="Node"/>.</summary>
    public string OpType { get; }

    /// <summary>The smallest value seen (+∞ before any).</summary>
    public double Min { get; private set; } = double.PositiveInfinity;

    /// <summary>The largest value seen (−∞ before any).</summary>
    public double Max { get; private set; } = double.NegativeInfinity;

    /// <summary>The number of values seen.</summary>
    public long Count { get; private set; }

    /// <summary>The number of samples (calibration rows) seen: each row's values are one sample.</summary>
    public long Samples { get; private set; }

    /// <summary>The mean over samples of each sample's smallest value (NNCF's default range estimator takes it); 0 before any.</summary>
    public double MeanSampleMin => Samples == 0 ? 0 : SumSampleMin / Samples;

    /// <summary>The mean over samples of each sample's largest value; 0 before any.</summary>
    public double MeanSampleMax => Samples == 0 ? 0 : SumSampleMax / Samples;

    internal double SumSampleMin { get; private set; }

    internal double SumSampleMax { get; private set; }

    /// <summary>max(|Min|, |Max|).</summary>
    public double AbsMax => Count == 0 ? 0 : Math.Max(Math.Abs(Min), Math.Abs(Max));

    /// <summary>True when no value was negative: the tensor is quantized as uint8 with zero point 0.</summary>
    public bool NonNegative => Min >= 0;

    /// <summary>
    /// The histogram over ±max|x|: calibration from rows always fills it (the report and refitting with another method
    /// need it); null only in merged statistics whose shards counted over different ranges. In a tuning trial on a model
    /// that SmoothQuant rewrote, it can be counted over a range up to 2⁻¹⁸ (relative) wider than max|x|: the range read
    /// on the model before the rewrite, which the rewrite's float rounding can move by a few ulps.
    /// </summary>
    public Histogram? Histogram { get; internal set; }

    /// <summary>
    /// Whether the range was read on another model than the one these statistics describe: a model that a rewrite
    /// keeping every tensor's value (SmoothQuant) started from, directly or through per-channel scales
    /// (<see cref="ScaledStatistics"/>). Such a range can be a few ulps off the rewritten model's own, so a
    /// collection that is given it as known counts over it widened by <see cref="StatisticsCollector.RangeSlack"/>.
    /// </summary>
    internal bool ReadOnAnotherModel { get; set; }

    /// <summary>Sets the range, as saved or merged.</summary>
    internal void Restore(double min, double max, long count)
    {
        Min = min;
        Max = max;
        Count = count;
    }

    /// <summary>Sets the per-sample sums, as saved or merged.</summary>
    internal void RestoreSamples(long samples, double sumMin, double sumMax)
    {
        Samples = samples;
        SumSampleMin = sumMin;
        SumSampleMax = sumMax;
    }

    /// <summary>A copy with the same range and a copy of the histogram.</summary>
    internal TensorStatistics Clone() => Clone(Node, OpType);

    /// <summary>A copy, as <see cref="Clone()"/>, of the same tensor read by another node (the same values in a rewritten model).</summary>
    internal TensorStatistics Clone(string node, string opType)
    {
        var copy = new TensorStatistics(Tensor, Role, node, opType) { Histogram = Histogram?.Clone(), ReadOnAnotherModel = ReadOnAnotherModel };
        copy.Restore(Min, Max, Count);
        copy.RestoreSamples(Samples, SumSampleMin, SumSampleMax);
        return copy;
    }

    /// <summary>Folds <paramref name="values"/> into the range; returns the index of the first non-finite value, or −1.</summary>
    internal int AddRange(ReadOnlySpan<float> values)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        int i = 0;
        int width = System.Numerics.Vector<float>.Count;
        if (System.Numerics.Vector.IsHardwareAccelerated && values.Length >= width)
        {
            // v − v is 0 for a finite v and NaN for NaN or ±∞: a block with any other difference holds the first
            // non-finite value, which the scalar loop below then finds.
            var low = new System.Numerics.Vector<float>(float.PositiveInfinity);
            var high = new System.Numerics.Vector<float>(float.NegativeInfinity);
            for (; i <= values.Length - width; i += width)
            {
                var v = new System.Numerics.Vector<float>(values.Slice(i, width));
                if (!System.Numerics.Vector.EqualsAll(v - v, System.Numerics.Vector<float>.Zero)) break;
                low = System.Numerics.Vector.Min(low, v);
                high = System.Numerics.Vector.Max(high, v);
            }
            for (int lane = 0; lane < width; lane++)
            {
                min = Math.Min(min, low[lane]);
                max = Math.Max(max, high[lane]);
            }
        }
        for (; i < values.Length; i++)
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
            Samples++;
            SumSampleMin += min;
            SumSampleMax += max;
        }
        return -1;
    }
}
