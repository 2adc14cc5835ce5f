namespace MLNet.Quantization.Calibration;

/// <summary>
/// A fixed-range histogram with NumPy <c>histogram</c> semantics: <see cref="Bins"/> equal bins over [<see cref="Min"/>,
/// <see cref="Max"/>], each half-open except the last, which is closed. It also records the smallest and largest value
/// it was given. Counts are exact integers, so histograms of shards of the data merge into exactly the histogram of all
/// of it, whatever the order, batch size or number of threads.
/// </summary>
public sealed class Histogram
{
    private readonly long[] _counts;
    private readonly double[] _edges;
    private readonly double _norm;

    /// <summary>Creates an empty histogram of <paramref name="bins"/> equal bins over [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bins"/> is below 1.</exception>
    /// <exception cref="ArgumentException">The range is empty, reversed or not finite.</exception>
    public Histogram(double min, double max, int bins)
    {
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "A histogram needs at least one bin.");
        if (!(max >= min) || !double.IsFinite(min) || !double.IsFinite(max))
            throw new ArgumentException($"Invalid histogram range [{min}, {max}].", nameof(max));
        Min = min;
        Max = max;
        _counts = new long[bins];
        _norm = max > min ? bins / (max - min) : 0;
        // NumPy's linspace: first + i * step, with the last edge set to max exactly.
        double step = (max - min) / bins;
        _edges = new double[bins + 1];
        for (int i = 0; i < bins; i++) _edges[i] = min + i * step;
        _edges[bins] = max;
    }

    /// <summary>An empty histogram over [−<paramref name="absMax"/>, <paramref name="absMax"/>]: the layout the KL search expects.</summary>
    public static Histogram Symmetric(double absMax, int bins) => new(-absMax, absMax, bins);

    /// <summary>The histogram of <paramref name="values"/> over ±max|x| (NumPy <c>histogram(x, bins, range=(-m, m))</c>).</summary>
    /// <exception cref="ArgumentException">A value is not finite.</exception>
    public static Histogram Build(ReadOnlySpan<float> values, int bins = 8001)
    {
        float absMax = 0;
        foreach (var v in values)
        {
            if (!float.IsFinite(v)) throw new ArgumentException($"The values hold a non-finite value ({v}).", nameof(values));
            absMax = Math.Max(absMax, Math.Abs(v));
        }
        var histogram = Symmetric(absMax, bins);
        histogram.Add(values);
        return histogram;
    }

    /// <summary>The left edge of the first bin.</summary>
    public double Min { get; }

    /// <summary>The right edge of the last bin.</summary>
    public double Max { get; }

    /// <summary>The number of bins.</summary>
    public int Bins => _counts.Length;

    /// <summary>The count of each bin.</summary>
    public ReadOnlySpan<long> Counts => _counts;

    /// <summary>The width of each bin.</summary>
    public double BinWidth => (Max - Min) / Bins;

    /// <summary>The smallest value counted, or +∞ when none was.</summary>
    public double ObservedMin { get; private set; } = double.PositiveInfinity;

    /// <summary>The largest value counted, or −∞ when none was.</summary>
    public double ObservedMax { get; private set; } = double.NegativeInfinity;

    /// <summary>True when no counted value was negative.</summary>
    public bool NonNegative => ObservedMin >= 0;

    /// <summary>The number of values counted.</summary>
    public long Total { get; private set; }

    internal long[] RawCounts => _counts;

    /// <summary>Rebuilds a histogram that was saved: its range, counts and observed extremes.</summary>
    internal static Histogram Restore(double min, double max, long[] counts, double observedMin, double observedMax)
    {
        var histogram = new Histogram(min, max, counts.Length);
        counts.CopyTo(histogram._counts, 0);
        histogram.Total = counts.Sum();
        histogram.ObservedMin = observedMin;
        histogram.ObservedMax = observedMax;
        return histogram;
    }

    internal Histogram Clone() => Restore(Min, Max, _counts, ObservedMin, ObservedMax);

    /// <summary>Edge <paramref name="i"/>: the left edge of bin i, and <see cref="Max"/> for i = <see cref="Bins"/>.</summary>
    public double Edge(int i) => _edges[i];

    /// <summary>Counts <paramref name="values"/>; values outside [Min, Max] are not counted.</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        int last = _counts.Length - 1;
        var counts = _counts;
        var edges = _edges;
        double min = Min, max = Max, norm = _norm;
        float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
        long counted = 0;
        foreach (var f in values)
        {
            double v = f;
            if (!(v >= min && v <= max)) continue;
            if (f < lo) lo = f;
            if (f > hi) hi = f;
            counted++;
            if (norm == 0)
            {
                counts[last / 2]++; // a degenerate range holds one value, which NumPy puts in the middle bin
                continue;
            }
            int index = (int)((v - min) * norm);
            if (index >= last)
            {
                index = last;
                if (v < edges[last]) index--;
            }
            else if (v < edges[index])
            {
                index--; // NumPy's correction where (v - min) * norm rounds up across an edge
            }
            else if (v >= edges[index + 1] && index + 1 < last + 1)
            {
                index++;
            }
            counts[index]++;
        }
        if (counted == 0) return;
        Total += counted;
        ObservedMin = Math.Min(ObservedMin, lo);
        ObservedMax = Math.Max(ObservedMax, hi);
    }

    /// <summary>Adds the counts of <paramref name="other"/>, which must have the same range and bins.</summary>
    /// <exception cref="ArgumentException">The ranges or bin counts differ.</exception>
    public void Merge(Histogram other)
    {
        if (other is null) throw new ArgumentNullException(nameof(other));
        if (other.Bins != Bins || other.Min != Min || other.Max != Max)
            throw new ArgumentException(
                $"Only histograms with the same range and bins merge: [{Min}, {Max}]×{Bins} vs [{other.Min}, {other.Max}]×{other.Bins}.", nameof(other));
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Total += other.Total;
        ObservedMin = Math.Min(ObservedMin, other.ObservedMin);
        ObservedMax = Math.Max(ObservedMax, other.ObservedMax);
    }
}
