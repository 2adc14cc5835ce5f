namespace MLNet.Quantization.Calibration;

/// <summary>
/// The threshold whose uint8 grid reproduces the histogram's values with the least expected squared error, rounding and
/// clipping together (the L2 search of PyTorch's <c>HistogramObserver</c>, and OpenVINO's MSE range estimator).
/// </summary>
/// <remarks>
/// <para><b>Candidates.</b> The histogram has n bins (odd) over [−m, m], zero bin z = n/2, width w = 2m/n, and bin i
/// stands for its centre c_i with its count h_i. Candidate j = 0 … z − 1 is the right edge of the folded bin j,
/// T_j = (j + ½)·w, and the last candidate is m itself.</para>
/// <para><b>The grid each candidate gives</b>, as <c>Calibrator</c> realizes it: [lo, hi] = [0, T] with step Δ = T/L for
/// never-negative values (L = levels, 255 for uint8); for signed values with asymmetric activations
/// [lo, hi] = [min(max(x_min, −T), 0), max(min(x_max, T), 0)] with Δ = (hi − lo)/L (x_min, x_max: the observed extremes);
/// with symmetric activations [−T, T] with Δ = T/⌊L/2⌋.</para>
/// <para><b>Error.</b> A value inside [lo, hi] rounds to the grid with the uniform rounding error Δ²/12 on average; a value
/// outside is clipped to the bound: E(T) = Δ²/12 · Σ_{lo ≤ c_i ≤ hi} h_i + Σ_{c_i &gt; hi} h_i (c_i − hi)² +
/// Σ_{c_i &lt; lo} h_i (lo − c_i)². With the sums S_k = Σ h_i c_iᵏ (k = 0, 1, 2) over a tail's bins, kept as prefix sums
/// for the lower tail and suffix sums for the upper one (so that a short tail is not the difference of two large sums),
/// a tail is S₂ − 2b·S₁ + b²·S₀, so each candidate costs O(1) and the search O(n).</para>
/// <para><b>Choice.</b> The smallest E wins; among equal errors the largest threshold (the least clipping). An empty
/// histogram gives [0, 0]; an all-zero one (m = 0) gives threshold 0.</para>
/// <para>Unlike the KL divergence, which compares shapes of distributions and ignores how far a clipped outlier
/// lands, the squared error weighs each value by its distance: it clips a long tail only while the finer grid repays
/// the clipped values' error, which is the quantity that adds up, layer after layer, in the model's output error.</para>
/// </remarks>
public sealed class MeanSquaredErrorSearch : IThresholdSearch
{
    /// <summary>Creates the search.</summary>
    /// <param name="asymmetric">Whether signed activations are realized over their own [min, max] (the default) or symmetrically.</param>
    /// <param name="levels">Steps between the smallest and the largest integer: 255 for uint8. At least 2.</param>
    public MeanSquaredErrorSearch(bool asymmetric = true, int levels = 255)
    {
        if (levels < 2) throw new ArgumentOutOfRangeException(nameof(levels), levels, "Must be at least 2.");
        Asymmetric = asymmetric;
        Levels = levels;
    }

    /// <summary>Whether signed ranges are asymmetric, clipped to the observed extremes.</summary>
    public bool Asymmetric { get; }

    /// <summary>Steps between the smallest and the largest integer.</summary>
    public int Levels { get; }

    /// <inheritdoc/>
    public TensorRange Search(Histogram histogram)
    {
        if (histogram is null) throw new ArgumentNullException(nameof(histogram));
        if (histogram.Bins % 2 == 0) throw new ArgumentException("The squared-error search needs an odd number of bins.", nameof(histogram));
        if (histogram.Total == 0) return default;
        if (histogram.Max <= 0) return TensorRange.FromThreshold(0, histogram.NonNegative);
        return TensorRange.FromThreshold(Threshold(histogram), histogram.NonNegative);
    }

    /// <summary>The expected squared error, summed over the counted values, of the grid that threshold <paramref name="t"/> gives.</summary>
    public double Error(Histogram histogram, double t)
    {
        if (histogram is null) throw new ArgumentNullException(nameof(histogram));
        return new Sums(histogram).Error(Grid(histogram, t));
    }

    private double Threshold(Histogram histogram)
    {
        var sums = new Sums(histogram);
        int zero = histogram.Bins / 2;
        double best = histogram.Max, bestError = sums.Error(Grid(histogram, best));
        for (int j = zero - 1; j >= 0; j--)
        {
            double t = histogram.Edge(zero + j + 1);
            double error = sums.Error(Grid(histogram, t));
            if (error < bestError)
            {
                (best, bestError) = (t, error);
            }
        }
        return best;
    }

    // The grid [lo, hi] with step Δ that Calibrator realizes for threshold t.
    private (double Lo, double Hi, double Step) Grid(Histogram histogram, double t)
    {
        if (histogram.NonNegative) return (0, t, t / Levels);
        if (!Asymmetric) return (-t, t, t / (Levels / 2));
        double lo = Math.Min(Math.Max(histogram.ObservedMin, -t), 0), hi = Math.Max(Math.Min(histogram.ObservedMax, t), 0);
        return (lo, hi, (hi - lo) / Levels);
    }

    // The sums of the remarks: prefix sums of h, h·c and h·c² for the lower tail, suffix sums for the upper one.
    private sealed class Sums
    {
        private readonly double[] _p0, _p1, _p2, _q0, _q1, _q2;
        private readonly double _min, _width;
        private readonly int _bins;

        public Sums(Histogram histogram)
        {
            _bins = histogram.Bins;
            _min = histogram.Min;
            _width = histogram.BinWidth;
            (_p0, _p1, _p2, _q0, _q1, _q2) = (new double[_bins + 1], new double[_bins + 1], new double[_bins + 1],
                new double[_bins + 1], new double[_bins + 1], new double[_bins + 1]);
            var counts = histogram.Counts;
            for (int i = 0; i < _bins; i++)
            {
                double c = Centre(i), h = counts[i];
                _p0[i + 1] = _p0[i] + h;
                _p1[i + 1] = _p1[i] + h * c;
                _p2[i + 1] = _p2[i] + h * c * c;
            }
            for (int i = _bins - 1; i >= 0; i--)
            {
                double c = Centre(i), h = counts[i];
                _q0[i] = _q0[i + 1] + h;
                _q1[i] = _q1[i + 1] + h * c;
                _q2[i] = _q2[i + 1] + h * c * c;
            }
        }

        private double Centre(int i) => _min + (i + 0.5) * _width;

        public double Error((double Lo, double Hi, double Step) grid)
        {
            // Bins whose centre lies below lo: i < (lo − min)/w − ½; above hi: i > (hi − min)/w − ½.
            int below = Math.Clamp((int)Math.Ceiling((grid.Lo - _min) / _width - 0.5), 0, _bins);
            int above = Math.Clamp((int)Math.Floor((grid.Hi - _min) / _width - 0.5) + 1, below, _bins);
            double inside = _p0[_bins] - _p0[below] - _q0[above];
            return Math.Max(0, inside) * grid.Step * grid.Step / 12
                + Tail(_p0[below], _p1[below], _p2[below], grid.Lo) + Tail(_q0[above], _q1[above], _q2[above], grid.Hi);
        }

        // Σ h (c − b)² = Σh·c² − 2b·Σh·c + b²·Σh.
        private static double Tail(double s0, double s1, double s2, double b) => s0 == 0 ? 0 : Math.Max(0, s2 - 2 * b * s1 + b * b * s0);
    }
}
