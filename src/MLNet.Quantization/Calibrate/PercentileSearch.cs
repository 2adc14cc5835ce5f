namespace MLNet.Quantization.Calibration;

/// <summary>The threshold that leaves <see cref="Percentile"/> percent of the |x| values unclipped (TVM's and ONNX Runtime's 99.999 by default).</summary>
/// <remarks>
/// The symmetric histogram (odd bin count) is folded around its zero bin into bins of |x|: bin j holds the zero bin
/// for j = 0, else bins z − j and z + j. The threshold is the right edge of the first folded bin at which the cumulative
/// count reaches <c>Percentile/100 × total</c>, so it overestimates the exact percentile by at most one bin width.
/// </remarks>
public sealed class PercentileSearch : IThresholdSearch
{
    /// <summary>Creates the search.</summary>
    /// <param name="percentile">The percentage of |x| to keep, in (0, 100].</param>
    public PercentileSearch(double percentile = 99.999)
    {
        if (!(percentile > 0 && percentile <= 100))
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "Must lie in (0, 100].");
        Percentile = percentile;
    }

    /// <summary>The percentage of |x| kept.</summary>
    public double Percentile { get; }

    /// <inheritdoc/>
    public TensorRange Search(Histogram histogram)
    {
        if (histogram is null) throw new ArgumentNullException(nameof(histogram));
        return TensorRange.FromThreshold(Threshold(histogram), histogram.NonNegative);
    }

    private double Threshold(Histogram histogram)
    {
        var hist = histogram.Counts;
        int n = hist.Length, zero = n / 2;
        if (n % 2 == 0) throw new ArgumentException("The percentile search needs an odd number of bins.", nameof(histogram));
        if (histogram.Total == 0 || histogram.Max <= 0) return Math.Max(histogram.Max, 0);
        double target = Percentile / 100.0 * histogram.Total;
        long cumulative = hist[zero];
        for (int j = 0; j < zero; j++)
        {
            if (cumulative >= target) return histogram.Edge(zero + j + 1);
            cumulative += hist[zero + j + 1] + hist[zero - j - 1];
        }
        return histogram.Max;
    }
}
