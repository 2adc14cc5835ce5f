namespace MLNet.Quantization.Calibration;

/// <summary>
/// The KL-divergence threshold of MXNet's <c>_get_optimal_threshold</c> and TVM's <c>kl_divergence.py</c>, without their
/// defects, and fast: about O(n·q) instead of O(n²).
/// </summary>
/// <remarks>
/// <para><b>Candidates.</b> The histogram has n bins (odd) over [−m, m]; the zero bin is z = n/2 and the bin width
/// w = 2m/n. Candidate i runs from q/2 to z (q = quantized bins): its window is bins [z − i, z + i] and its threshold is
/// the window's right edge, T_i = (i + ½)·w.</para>
/// <para><b>P</b> is the window's counts with every count left of the window added to its first bin and every count
/// right of it to its last bin: outliers are clipped, not dropped. <b>Q</b> splits the window's own counts (outliers
/// excluded) into q groups of ⌊(2i+1)/q⌋ bins, the remainder joining the last group; each group's total is spread evenly
/// over those of its bins where P ≠ 0, and Q = 0 where P = 0.</para>
/// <para><b>Smoothing</b> (MXNet's <c>_smooth_distribution</c>, ε = 1e-4): each zero bin becomes ε and each nonzero bin
/// loses ε·zeros/nonzeros. <b>Divergence</b>: KL(P‖Q) = Σ p̂ ln(p̂/q̂) after normalizing both to sum 1, in double.
/// Smoothing keeps the sums, so with N = Σp (all counts) and M = Σq (the window's counts),
/// KL = (Σ p′ ln p′ − Σ p′ ln q′)/N + ln(M/N), where only bins with p ≠ 0 contribute. Q′ is constant on the P-nonzero bins
/// of a group, so the second sum takes one term per group from prefix sums; the first is kept as running sums over the
/// window's interior (which only grows with i), using the series
/// (c − e)ln(c − e) = c ln c − e ln c − e + e²/2c + e³/6c² + e⁴/12c³ + … for counts c ≥ 32 (error below 1e-9 of the sum)
/// and exact logarithms for smaller counts, grouped by value.</para>
/// <para><b>Choice.</b> The first minimum wins. A candidate that cannot be smoothed (Q all zero, or a bin driven to ≤ 0)
/// never wins: in the references its NaN divergence wins the argmin, so a constant tensor gets the smallest candidate.
/// If no candidate is valid (for example every value sits in one edge bin, as for a constant tensor), the threshold
/// is m = max|x|, which keeps a constant exactly. An all-zero histogram (m = 0) gives threshold 0.</para>
/// <para><b>Unsigned widening.</b> When the values were never negative, <see cref="Search"/> uses 2q + 1 quantized bins and
/// the range [0, T], as MXNet's uint8 mode does: the positive half then gets about q levels.</para>
/// <para><b>Power of two.</b> With <see cref="PowerOfTwo"/>, T is restricted to powers of two (the seed's second
/// configuration): of the two powers of two around the KL threshold, the one whose nearest candidate window has the
/// smaller divergence. (Over all powers of two, the smallest windows would win: there each quantized bin holds a single
/// histogram bin, Q equals P, and the divergence is an artefact.)</para>
/// </remarks>
public sealed class KlDivergenceSearch : IThresholdSearch
{
    /// <summary>The smoothing constant of MXNet's <c>_smooth_distribution</c>.</summary>
    public const double Epsilon = 1e-4;

    private const int SeriesFrom = 32;

    /// <summary>Creates the search.</summary>
    /// <param name="quantizedBins">Quantized bins q for signed tensors; never-negative tensors use 2q + 1. At least 3.</param>
    /// <param name="powerOfTwo">Restrict thresholds to powers of two.</param>
    public KlDivergenceSearch(int quantizedBins = 255, bool powerOfTwo = false)
    {
        if (quantizedBins < 3) throw new ArgumentOutOfRangeException(nameof(quantizedBins), quantizedBins, "Must be at least 3.");
        QuantizedBins = quantizedBins;
        PowerOfTwo = powerOfTwo;
    }

    /// <summary>Quantized bins for signed tensors.</summary>
    public int QuantizedBins { get; }

    /// <summary>Whether thresholds are restricted to powers of two.</summary>
    public bool PowerOfTwo { get; }

    /// <inheritdoc/>
    public TensorRange Search(Histogram histogram)
    {
        if (histogram is null) throw new ArgumentNullException(nameof(histogram));
        int q = histogram.NonNegative ? 2 * QuantizedBins + 1 : QuantizedBins;
        double threshold = PowerOfTwo ? PowerOfTwoThreshold(histogram, q) : Threshold(histogram, q);
        return TensorRange.FromThreshold(threshold, histogram.NonNegative);
    }

    /// <summary>
    /// The seed's one-call form, <c>_get_optimal_threshold(samples, bins, quantizedBins)</c>: the histogram over
    /// ±max|x| and the KL threshold with exactly <paramref name="quantizedBins"/> (no unsigned widening).
    /// </summary>
    public static float FindKlThreshold(ReadOnlySpan<float> samples, int bins = 8001, int quantizedBins = 255) =>
        (float)Threshold(Histogram.Build(samples, bins), quantizedBins);

    /// <summary>The KL threshold of <paramref name="histogram"/> with <paramref name="quantizedBins"/> quantized bins.</summary>
    public static double Threshold(Histogram histogram, int quantizedBins)
    {
        var divergences = Divergences(histogram, quantizedBins, out int first);
        if (divergences is null) return EmptyThreshold(histogram);
        int best = -1;
        for (int k = 0; k < divergences.Length; k++)
            if (divergences[k] < (best < 0 ? double.PositiveInfinity : divergences[best])) best = k;
        return best < 0 ? histogram.Max : histogram.Edge(histogram.Bins / 2 + first + best + 1);
    }

    // The two powers of two around the KL threshold, and of those the one with the smaller divergence (the larger on a
    // tie). Searching every power of two instead would let the smallest windows win, where each quantized bin holds one
    // histogram bin and Q copies P: their divergence says nothing about quantization.
    private static double PowerOfTwoThreshold(Histogram histogram, int quantizedBins)
    {
        var divergences = Divergences(histogram, quantizedBins, out int first);
        if (divergences is null) return EmptyThreshold(histogram);
        double threshold = Threshold(histogram, quantizedBins);
        double lower = Math.Pow(2, Math.Floor(Math.Log2(threshold))), upper = Math.Pow(2, Math.Ceiling(Math.Log2(threshold)));
        double At(double power)
        {
            int i = (int)Math.Round(power / histogram.BinWidth - 0.5, MidpointRounding.ToEven);
            return i < first ? double.PositiveInfinity : divergences[Math.Min(i, histogram.Bins / 2) - first];
        }
        return At(lower) < At(upper) ? lower : upper;
    }

    private static double EmptyThreshold(Histogram histogram) => histogram.Max <= 0 ? 0 : histogram.Max;

    /// <summary>
    /// The divergence of every candidate i from <paramref name="first"/> = q/2 to n/2 (+∞ where Q cannot be smoothed),
    /// or null when the histogram is empty or all zero.
    /// </summary>
    internal static double[]? Divergences(Histogram histogram, int quantizedBins, out int first)
    {
        var hist = histogram.RawCounts;
        int n = hist.Length, zero = n / 2;
        if (n % 2 == 0) throw new ArgumentException("The KL search needs an odd number of bins.", nameof(histogram));
        if (quantizedBins < 3 || quantizedBins > n)
            throw new ArgumentOutOfRangeException(nameof(quantizedBins), quantizedBins, $"Must lie in [3, {n}] for {n} bins.");
        first = quantizedBins / 2;
        if (histogram.Max <= 0 || histogram.Total == 0) return null;

        var prefix = new long[n + 1];
        var nonzeroPrefix = new int[n + 1];
        for (int k = 0; k < n; k++)
        {
            prefix[k + 1] = prefix[k] + hist[k];
            nonzeroPrefix[k + 1] = nonzeroPrefix[k] + (hist[k] != 0 ? 1 : 0);
        }
        double total = prefix[n];
        var interior = new InteriorSums();
        for (int k = zero - first + 1; k <= zero + first - 1; k++) interior.Add(hist[k]);

        var divergences = new double[zero - first + 1];
        var groupMass = new long[quantizedBins];
        var groupNonzero = new int[quantizedBins];
        for (int i = first; i <= zero; i++)
        {
            int start = zero - i, end = zero + i, length = 2 * i + 1; // window [start, end]
            long leftOutliers = prefix[start], rightOutliers = prefix[n] - prefix[end + 1];
            long pFirst = hist[start] + leftOutliers, pLast = hist[end] + rightOutliers;
            divergences[i - first] = Candidate();
            interior.Add(hist[start]);
            interior.Add(hist[end]);

            double Candidate()
            {
                long nonzeroP = interior.Nonzero + (pFirst != 0 ? 1 : 0) + (pLast != 0 ? 1 : 0);
                double e = Epsilon * (length - nonzeroP) / nonzeroP;
                if (e >= 1) return double.PositiveInfinity; // a count of 1 would drop to <= 0
                double a = interior.XLogX(e) + XLogX(pFirst, e) + XLogX(pLast, e);

                int merged = length / quantizedBins;
                long nonzeroQ = 0;
                for (int g = 0; g < quantizedBins; g++)
                {
                    int gs = start + g * merged, ge = g == quantizedBins - 1 ? end + 1 : gs + merged;
                    groupMass[g] = prefix[ge] - prefix[gs];
                    int c = nonzeroPrefix[ge] - nonzeroPrefix[gs];
                    if (g == 0) c += (pFirst != 0 ? 1 : 0) - (hist[start] != 0 ? 1 : 0);
                    if (g == quantizedBins - 1) c += (pLast != 0 ? 1 : 0) - (hist[end] != 0 ? 1 : 0);
                    groupNonzero[g] = c;
                    if (groupMass[g] > 0) nonzeroQ += c;
                }
                if (nonzeroQ == 0) return double.PositiveInfinity;
                double eq = Epsilon * (length - nonzeroQ) / nonzeroQ;
                double b = 0;
                for (int g = 0; g < quantizedBins; g++)
                {
                    int c = groupNonzero[g];
                    if (c == 0) continue;
                    double pMass = groupMass[g] + (g == 0 ? leftOutliers : 0) + (g == quantizedBins - 1 ? rightOutliers : 0);
                    double q = groupMass[g] > 0 ? (double)groupMass[g] / c - eq : Epsilon;
                    if (q <= 0) return double.PositiveInfinity;
                    b += (pMass - e * c) * Math.Log(q);
                }
                double window = prefix[end + 1] - prefix[start];
                return (a - b) / total + Math.Log(window / total);
            }
        }
        return divergences;
    }

    private static double XLogX(long count, double e)
    {
        if (count == 0) return 0;
        double x = count - e;
        return x * Math.Log(x);
    }

    /// <summary>Σ (c − e) ln(c − e) over the nonzero counts c of the window's interior, kept as running sums.</summary>
    private sealed class InteriorSums
    {
        private readonly long[] _small = new long[SeriesFrom];
        private double _xLogX, _log, _inverse, _inverse2, _inverse3;
        private long _large;

        public long Nonzero { get; private set; }

        public void Add(long c)
        {
            if (c == 0) return;
            Nonzero++;
            if (c < SeriesFrom)
            {
                _small[c]++;
                return;
            }
            double x = c, log = Math.Log(x);
            _large++;
            _xLogX += x * log;
            _log += log;
            _inverse += 1 / x;
            _inverse2 += 1 / (x * x);
            _inverse3 += 1 / (x * x * x);
        }

        public double XLogX(double e)
        {
            double sum = _xLogX - e * _log - e * _large + e * e / 2 * _inverse + e * e * e / 6 * _inverse2 + e * e * e * e / 12 * _inverse3;
            for (int v = 1; v < SeriesFrom; v++)
                if (_small[v] != 0) sum += _small[v] * (v - e) * Math.Log(v - e);
            return sum;
        }
    }
}
