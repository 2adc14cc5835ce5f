namespace MLNet.Quantization;

/// <summary>How the clipping threshold of an activation tensor is chosen from its statistics.</summary>
public enum CalibrationMethod
{
    /// <summary>
    /// The threshold that minimizes the KL divergence between the clipped float histogram and its quantized form
    /// (MXNet/TVM semantics: 8001 bins over ±max|x|, 255 quantized bins, 511 for tensors that are never negative).
    /// </summary>
    KlDivergence = 0,

    /// <summary>The threshold is max|x|: nothing is clipped. The default.</summary>
    Max = 1,

    /// <summary>The threshold is the <c>Percentile</c>th percentile of |x| (99.999 by default).</summary>
    Percentile = 2,

    /// <summary>
    /// KL divergence restricted to powers of two: the power-of-two threshold with the smallest divergence (the seed's
    /// second configuration, usually paired with <see cref="WeightScaleMethod.PowerOfTwo"/>).
    /// </summary>
    KlDivergencePowerOfTwo = 3,

    /// <summary>
    /// The mean over calibration rows of each row's minimum and maximum (NNCF's default range estimator): outliers of a
    /// few rows move the range by their share only. Never-negative tensors get [0, mean max].
    /// </summary>
    MeanMinMax = 4,

    /// <summary>
    /// The threshold whose uint8 grid gives the least expected squared error over the histogram, rounding and clipping
    /// together (PyTorch's <c>HistogramObserver</c>, OpenVINO's MSE estimator): see <see cref="Calibration.MeanSquaredErrorSearch"/>.
    /// </summary>
    MeanSquaredError = 5,
}
