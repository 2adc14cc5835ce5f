using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    // How far from an integer a value's position in bins must be for its bin to need no edge check (see Add).
    private readonly double _guard;

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
        _guard = 64 * Math.Pow(2, -52) * ((Math.Abs(min) + Math.Abs(max)) * _norm + bins);
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
    /// <remarks>
    /// A value v falls in bin ⌊t⌋, t = (v − Min)·Bins/(Max − Min), corrected against the edges where rounding put t across
    /// one (NumPy's rule). Eight values at a time (AVX) compute t in double, exactly as the one-value loop does; where every t is
    /// further than <c>_guard</c> from an integer, ⌊t⌋ is the bin the edges give, so no edge is read. The guard bounds the
    /// rounding of t and of the edges (a few ulps each: in bins, at most a few times 2⁻⁵²·((|Min| + |Max|)·Bins/(Max − Min)
    /// + Bins)) 64 times over. Any other group of eight, and the tail, goes through the one-value loop, so the counts are the same to
    /// the last one as without the shortcut.
    /// </remarks>
    public void Add(ReadOnlySpan<float> values)
    {
        var counter = new Counter(this);
        int i = 0;
        if (Avx.IsSupported && _norm > 0 && _guard < 0.25)
            i = counter.AddEights(values);
        for (; i < values.Length; i++) counter.Add(values[i]);
        counter.Finish();
    }

    /// <summary>As <see cref="Add"/>, one value at a time (the reference the tests compare with).</summary>
    internal void AddOneByOne(ReadOnlySpan<float> values)
    {
        var counter = new Counter(this);
        foreach (var f in values) counter.Add(f);
        counter.Finish();
    }

    // The state of one Add: the counts, and the extremes and number counted so far.
    private ref struct Counter
    {
        private readonly Histogram _histogram;
        private readonly long[] _counts;
        private readonly double[] _edges;
        private readonly double _min, _max, _norm;
        private readonly int _last;
        private float _lo, _hi;
        private long _counted;

        public Counter(Histogram histogram)
        {
            _histogram = histogram;
            _counts = histogram._counts;
            _edges = histogram._edges;
            (_min, _max, _norm) = (histogram.Min, histogram.Max, histogram._norm);
            _last = _counts.Length - 1;
            (_lo, _hi, _counted) = (float.PositiveInfinity, float.NegativeInfinity, 0);
        }

        public void Add(float f)
        {
            double v = f;
            if (!(v >= _min && v <= _max)) return;
            if (f < _lo) _lo = f;
            if (f > _hi) _hi = f;
            _counted++;
            if (_norm == 0)
            {
                _counts[_last / 2]++; // a degenerate range holds one value, which NumPy puts in the middle bin
                return;
            }
            int index = (int)((v - _min) * _norm);
            if (index >= _last)
            {
                index = _last;
                if (v < _edges[_last]) index--;
            }
            else if (v < _edges[index])
            {
                index--; // NumPy's correction where (v - min) * norm rounds up across an edge
            }
            else if (v >= _edges[index + 1])
            {
                index++;
            }
            _counts[index]++;
        }

        // Groups of eight values while they last; returns where the one-value loop takes over.
        public int AddEights(ReadOnlySpan<float> values)
        {
            var min = Vector256.Create(_min);
            var max = Vector256.Create(_max);
            var norm = Vector256.Create(_norm);
            var guard = Vector256.Create(_histogram._guard);
            var upper = Vector256.Create(1 - _histogram._guard);
            var last = Vector256.Create((double)_last);
            Span<int> bins = stackalloc int[8];
            int i = 0;
            for (; i <= values.Length - 8; i += 8)
            {
                var (low, high) = Vector256.Widen(Vector256.Create(values.Slice(i, 8)));
                Vector256<double> tLow = (low - min) * norm, tHigh = (high - min) * norm;
                // vcvttpd2dq and vcvtdq2pd: AVX, on every x86-64 CPU this library targets (a 64-bit conversion would
                // need AVX-512, and .NET emulates it element by element on AVX2 alone).
                var binLow = Avx.ConvertToVector128Int32WithTruncation(tLow);
                var binHigh = Avx.ConvertToVector128Int32WithTruncation(tHigh);
                var fracLow = tLow - Avx.ConvertToVector256Double(binLow);
                var fracHigh = tHigh - Avx.ConvertToVector256Double(binHigh);
                var clear = Vector256.GreaterThanOrEqual(low, min) & Vector256.LessThanOrEqual(low, max) & Vector256.LessThan(tLow, last)
                    & Vector256.GreaterThan(fracLow, guard) & Vector256.LessThan(fracLow, upper)
                    & Vector256.GreaterThanOrEqual(high, min) & Vector256.LessThanOrEqual(high, max) & Vector256.LessThan(tHigh, last)
                    & Vector256.GreaterThan(fracHigh, guard) & Vector256.LessThan(fracHigh, upper);
                if (clear.ExtractMostSignificantBits() != 0xF)
                {
                    for (int j = i; j < i + 8; j++) Add(values[j]);
                    continue;
                }
                binLow.CopyTo(bins);
                binHigh.CopyTo(bins[4..]);
                for (int j = 0; j < 8; j++)
                {
                    float f = values[i + j];
                    if (f < _lo) _lo = f;
                    if (f > _hi) _hi = f;
                    _counts[bins[j]]++;
                }
                _counted += 8;
            }
            return i;
        }

        public readonly void Finish()
        {
            if (_counted == 0) return;
            _histogram.Total += _counted;
            _histogram.ObservedMin = Math.Min(_histogram.ObservedMin, _lo);
            _histogram.ObservedMax = Math.Max(_histogram.ObservedMax, _hi);
        }
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
