namespace MLNet.Quantization.Calibration;

/// <summary>
/// A pure function from a histogram over [−max|x|, max|x|] to a clipping range: no I/O, no logging, no state.
/// Implementations return [0, T] for histograms whose values were never negative and [−T, T] otherwise.
/// </summary>
public interface IThresholdSearch
{
    /// <summary>The clipping range for the values counted in <paramref name="histogram"/>.</summary>
    TensorRange Search(Histogram histogram);
}
