namespace MLNet.Quantization.Calibration;

/// <summary>No clipping: [0, max x] for never-negative values, else [−max|x|, max|x|].</summary>
public sealed class MaxSearch : IThresholdSearch
{
    /// <inheritdoc/>
    public TensorRange Search(Histogram histogram)
    {
        if (histogram is null) throw new ArgumentNullException(nameof(histogram));
        if (histogram.Total == 0) return default;
        double threshold = histogram.NonNegative ? histogram.ObservedMax
            : Math.Max(Math.Abs(histogram.ObservedMin), Math.Abs(histogram.ObservedMax));
        return TensorRange.FromThreshold(threshold, histogram.NonNegative);
    }
}
