namespace MLNet.Quantization.Calibrate;

/// <summary>
/// A fixed-range histogram with NumPy <c>histogram</c> semantics: <c>Bins</c> equal bins over [Min, Max], each bin
/// half-open except the last, which is closed. Values outside the range are not counted (the calibration passes fix
/// the range to ±max|x| before counting, so none are). Counts are exact integers, so histograms built from shards
/// of the data merge into exactly the histogram of all the data, whatever the order.
/// </summary>
internal sealed class Histogram
{
    private readonly double _norm;

    public Histogram(double min, double max, int bins)
    {
        if (bins < 1) throw new ArgumentOutOfRangeException(nameof(bins), bins, "A histogram needs at least one bin.");
        if (!(max >= min) || double.IsInfinity(min) || double.IsInfinity(max))
            throw new ArgumentException($"Invalid histogram range [{min}, {max}].", nameof(max));
        Min = min;
        Max = max;
        Counts = new long[bins];
        _norm = max > min ? bins / (max - min) : 0;
    }

    /// <summary>A histogram over [−absMax, absMax], as the KL search expects; the zero bin is the middle one.</summary>
    public static Histogram Symmetric(double absMax, int bins) => new(-absMax, absMax, bins);

    public double Min { get; }

    public double Max { get; }

    public long[] Counts { get; }

    public int Bins => Counts.Length;

    public double BinWidth => (Max - Min) / Bins;

    /// <summary>The left edge of bin <paramref name="i"/> (i = Bins gives Max), as NumPy's <c>linspace</c> computes it.</summary>
    public double Edge(int i) => i == Bins ? Max : Min + i * BinWidth;

    public long Total => Counts.Sum();

    /// <summary>Counts <paramref name="values"/>.</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        int last = Bins - 1;
        var counts = Counts;
        if (_norm == 0)
        {
            // Degenerate range: NumPy widens it to [v − 0.5, v + 0.5]; every value that equals v falls in the middle bin.
            foreach (var v in values)
                if (v == Min) counts[Bins / 2]++;
            return;
        }
        double min = Min, max = Max, norm = _norm;
        foreach (var f in values)
        {
            double v = f;
            if (v < min || v > max) continue;
            int index = (int)((v - min) * norm);
            if (index >= last)
            {
                index = last;
            }
            else
            {
                // NumPy's correction for rounding at the edges.
                if (v < Edge(index)) index--;
                else if (v >= Edge(index + 1) && index + 1 < Bins) index++;
            }
            counts[index]++;
        }
    }

    /// <summary>Adds the counts of another histogram with the same range and bins.</summary>
    public void Merge(Histogram other)
    {
        if (other.Bins != Bins || other.Min != Min || other.Max != Max)
            throw new ArgumentException("Only histograms with the same range and bins can be merged.", nameof(other));
        for (int i = 0; i < Counts.Length; i++) Counts[i] += other.Counts[i];
    }
}
