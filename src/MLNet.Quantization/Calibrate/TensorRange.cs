namespace MLNet.Quantization.Calibration;

/// <summary>
/// A clipping range chosen for a tensor. Ranges with <see cref="Min"/> ≥ 0 are realized as uint8 with zero point 0 over
/// [0, Max]; any other range as uint8 over [Min, Max] with the zero point that maps 0 exactly, or, with symmetric
/// activations, over [−T, T] with T = max(|Min|, |Max|) and zero point 128.
/// </summary>
/// <param name="Min">The lower clipping bound.</param>
/// <param name="Max">The upper clipping bound.</param>
public readonly record struct TensorRange(float Min, float Max)
{
    /// <summary>The symmetric threshold T: <see cref="Max"/> when the range is non-negative, else max(|Min|, |Max|).</summary>
    public float Threshold => Min >= 0 ? Max : Math.Max(Math.Abs(Min), Math.Abs(Max));

    /// <summary>[0, T] when <paramref name="nonNegative"/>, else [−T, T].</summary>
    public static TensorRange FromThreshold(double threshold, bool nonNegative) =>
        nonNegative ? new TensorRange(0, (float)threshold) : new TensorRange(-(float)threshold, (float)threshold);
}
