namespace MLNet.Quantization.Calibrate;

/// <summary>
/// Pure threshold searches: each maps a symmetric histogram over [−max|x|, max|x|] to a clipping threshold T.
/// No I/O, no logging, no state.
/// </summary>
internal static class ThresholdSearch
{
    /// <summary>The smoothing constant of MXNet's <c>_smooth_distribution</c>.</summary>
    public const double Epsilon = 1e-4;

    /// <summary>
    /// The KL-divergence threshold of MXNet's <c>_get_optimal_threshold</c> and TVM's <c>kl_divergence.py</c>.
    /// </summary>
    /// <remarks>
    /// <para>The histogram has <c>n</c> bins (odd) over [−m, m]; the zero bin is <c>z = n/2</c>. For every candidate
    /// <c>i</c> from <c>quantizedBins/2</c> to <c>z</c>, the window is bins [z − i, z + i] and the candidate threshold is
    /// its right edge <c>T_i = (i + ½)·w</c>.</para>
    /// <para>P is the window's counts with all counts left of the window added to its first bin and all counts right of
    /// it to its last bin (outliers are clipped, not dropped). Q splits the window's own counts (outliers excluded) into
    /// <c>quantizedBins</c> groups of <c>(2i+1)/quantizedBins</c> bins, the remainder joining the last group; each group's
    /// total is spread evenly over those of its bins where P ≠ 0, and Q = 0 where P = 0.</para>
    /// <para>Both are smoothed as MXNet does: each zero bin gets ε = 1e-4 and each nonzero bin loses ε·zeros/nonzeros.
    /// The divergence is KL(P‖Q) = Σ p_k ln(p_k/q_k) after normalizing both to sum 1, computed in double.</para>
    /// <para>Unlike the references, a candidate that cannot be smoothed (Q all zero, or a bin driven to ≤ 0) is skipped,
    /// so NaN never wins. The first minimum wins. A histogram whose mass all sits in the zero bin (an all-zero tensor)
    /// or that leaves no valid candidate returns m = max|x|, so a constant tensor keeps its value.</para>
    /// <para>Cost: O(n²) in the worst case, O(n·q) for the Q group totals thanks to prefix sums.</para>
    /// </remarks>
    public static double KlDivergence(Histogram histogram, int quantizedBins = 255)
    {
        var hist = histogram.Counts;
        int n = hist.Length;
        if (n % 2 == 0) throw new ArgumentException("The KL search needs an odd number of bins.", nameof(histogram));
        if (quantizedBins < 3 || quantizedBins > n)
            throw new ArgumentOutOfRangeException(nameof(quantizedBins), quantizedBins, $"Must lie in [3, {n}].");
        double absMax = histogram.Max;
        if (absMax <= 0) return 0;
        int zero = n / 2;
        var prefix = new long[n + 1];
        for (int k = 0; k < n; k++) prefix[k + 1] = prefix[k] + hist[k];
        long total = prefix[n];
        if (total == 0) return absMax;

        double bestDivergence = double.PositiveInfinity;
        double bestThreshold = absMax;
        int firstCandidate = quantizedBins / 2;
        var p = new double[n];
        var q = new double[n];
        for (int i = firstCandidate; i <= zero; i++)
        {
            int start = zero - i, length = 2 * i + 1;
            double divergence = CandidateDivergence(hist, prefix, start, length, quantizedBins, p, q);
            if (divergence < bestDivergence)
            {
                bestDivergence = divergence;
                bestThreshold = histogram.Edge(start + length);
            }
        }
        return bestThreshold;
    }

    /// <summary>KL(P‖Q) of one candidate window, or +∞ when Q cannot be smoothed.</summary>
    internal static double CandidateDivergence(long[] hist, long[] prefix, int start, int length, int quantizedBins, double[] p, double[] q)
    {
        int n = hist.Length, stop = start + length;
        for (int k = 0; k < length; k++) p[k] = hist[start + k];
        p[0] += prefix[start];
        p[length - 1] += prefix[n] - prefix[stop];

        int merged = length / quantizedBins;
        for (int j = 0; j < quantizedBins; j++)
        {
            int gStart = j * merged;
            int gStop = j == quantizedBins - 1 ? length : gStart + merged;
            double mass = prefix[start + gStop] - prefix[start + gStart];
            int nonzero = 0;
            for (int k = gStart; k < gStop; k++) if (p[k] != 0) nonzero++;
            double value = nonzero == 0 ? 0 : mass / nonzero;
            for (int k = gStart; k < gStop; k++) q[k] = p[k] != 0 ? value : 0;
        }
        if (!Smooth(p, length) || !Smooth(q, length)) return double.PositiveInfinity;

        double sumP = 0, sumQ = 0;
        for (int k = 0; k < length; k++) { sumP += p[k]; sumQ += q[k]; }
        double kl = 0;
        for (int k = 0; k < length; k++)
        {
            double pk = p[k] / sumP;
            kl += pk * Math.Log(pk / (q[k] / sumQ));
        }
        return double.IsNaN(kl) ? double.PositiveInfinity : kl;
    }

    // MXNet's _smooth_distribution; false when the distribution is all zero or a bin would drop to <= 0.
    private static bool Smooth(double[] d, int length)
    {
        int zeros = 0;
        for (int k = 0; k < length; k++) if (d[k] == 0) zeros++;
        int nonzeros = length - zeros;
        if (nonzeros == 0) return false;
        double eps1 = Epsilon * zeros / nonzeros;
        for (int k = 0; k < length; k++)
        {
            d[k] = d[k] == 0 ? Epsilon : d[k] - eps1;
            if (d[k] <= 0) return false;
        }
        return true;
    }

    /// <summary>The threshold that keeps <paramref name="percentile"/> percent of |x| unclipped.</summary>
    /// <remarks>
    /// The symmetric histogram is folded around its zero bin into |x| bins; the threshold is the right edge of the first
    /// |x| bin at which the cumulative count reaches <c>percentile/100 × total</c>.
    /// </remarks>
    public static double Percentile(Histogram histogram, double percentile = 99.999)
    {
        if (!(percentile > 0 && percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "Must lie in (0, 100].");
        var hist = histogram.Counts;
        int n = hist.Length, zero = n / 2;
        if (n % 2 == 0) throw new ArgumentException("The percentile search needs an odd number of bins.", nameof(histogram));
        long total = histogram.Total;
        if (total == 0 || histogram.Max <= 0) return Math.Max(histogram.Max, 0);
        double target = percentile / 100.0 * total;
        long cumulative = hist[zero];
        for (int i = 0; i < zero; i++)
        {
            if (cumulative >= target)
                return histogram.Edge(zero + i + 1);
            cumulative += hist[zero + i + 1] + hist[zero - i - 1];
        }
        return histogram.Max;
    }
}
