using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// The activation statistics of a tensor that the model makes as another tensor times a positive constant per channel
/// of the last axis (SmoothQuant's <c>Mul</c> by 1/s), derived from the rows' extremes of the other tensor
/// (<see cref="RowExtremes"/>) instead of streaming the rows again: SmoothQuant's α candidates then cost no stream each.
/// </summary>
/// <remarks>
/// For Y = X·c with c_k &gt; 0, the float product is monotone in X for each channel k (IEEE rounding of x·c_k never
/// reverses an order), so with m_{r,k} and M_{r,k} the smallest and largest X[…, k] of row r:
/// <c>min Y_r = min_k fl(m_{r,k}·c_k)</c> and <c>max Y_r = max_k fl(M_{r,k}·c_k)</c>: exactly the values that ONNX
/// Runtime's Mul computes from that X. The range is their extremes over the rows, and the per-row sums (for
/// mean-min/max) are added in row order, as a stream adds them. X's extremes come from the model before the rewrite,
/// as the statistics of every tensor the rewrite kept do (<see cref="Pipeline.PipelineStep.KeepsTensorValues"/>): past
/// the first smoothed MatMul, X in the rewritten model differs from it by the float rounding of X·diag(1/s)·diag(s)·W,
/// so a stream of the rewritten model can read a range a few ulps away (measured on all-MiniLM-L6-v2: the first
/// layer's smoothed input equal, the next ones within 6·10⁻⁷ relative). Histograms cannot be derived: where the method
/// needs them, Y is streamed. A channel whose extremes are not finite (NaN or ∞ in X, or a product that overflows)
/// leaves Y to the stream, which decides whether it stays float.
/// </remarks>
internal static class ScaledStatistics
{
    /// <summary>
    /// <paramref name="kept"/> with the statistics of every planned activation it lacks that can be derived so; the
    /// same object where none can.
    /// </summary>
    public static CalibrationStatistics Extend(QuantizationContext context, CalibrationStatistics kept)
    {
        var known = kept.ByTensor();
        var derived = new List<TensorStatistics>();
        foreach (var mark in context.Plan.Activations.Where(a => a.ShareScaleWith is null && !known.ContainsKey(a.Tensor)))
        {
            if (Scaling(context.Model, mark.Tensor) is not var (input, scale)) continue;
            if (context.RowExtremesOfKeptValues(input) is not { } extremes || extremes.Minima.Count != kept.Rows) continue;
            if (Derive(new TensorStatistics(mark.Tensor, TensorRole.Activation, mark.Node, mark.OpType), extremes, scale) is { } statistics)
                derived.Add(statistics);
        }
        return derived.Count == 0 ? kept
            : new CalibrationStatistics(kept.ModelFingerprint, kept.Inputs, kept.Bins, kept.Rows, kept.Tensors.Concat(derived).ToList());
    }

    /// <summary>
    /// Fills <paramref name="statistics"/> (empty) with the range and per-row sums of X·<paramref name="scale"/>, X given
    /// by its rows' extremes; null where a channel's extremes or products are not finite, the sizes differ, or no row was read.
    /// </summary>
    internal static TensorStatistics? Derive(TensorStatistics statistics, RowExtremes extremes, float[] scale)
    {
        if (extremes.Minima.Count == 0 || scale.Any(c => !(c > 0) || !float.IsFinite(c)) || extremes.Minima.Any(m => m.Length != scale.Length))
            return null;
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sumMin = 0, sumMax = 0;
        for (int r = 0; r < extremes.Minima.Count; r++)
        {
            float low = float.PositiveInfinity, high = float.NegativeInfinity;
            for (int k = 0; k < scale.Length; k++)
            {
                float a = extremes.Minima[r][k] * scale[k], b = extremes.Maxima[r][k] * scale[k];
                if (!float.IsFinite(a) || !float.IsFinite(b)) return null;
                if (a < low) low = a;
                if (b > high) high = b;
            }
            min = Math.Min(min, low);
            max = Math.Max(max, high);
            sumMin += low;
            sumMax += high;
        }
        statistics.Restore(min, max, extremes.ValuesPerChannel * scale.Length);
        statistics.ReadOnAnotherModel = true;
        statistics.RestoreSamples(extremes.Minima.Count, sumMin, sumMax);
        return statistics;
    }

    /// <summary>
    /// For a tensor made by <c>Mul(X, c)</c> (either order), c a constant float vector along X's last axis (any leading
    /// dimensions 1), X and c; null for any other producer.
    /// </summary>
    private static (string Input, float[] Scale)? Scaling(OnnxGraph model, string tensor)
    {
        if (model.Producer(tensor) is not { OpType: "Mul", Domain: "" or "ai.onnx" } mul || mul.Input.Count != 2) return null;
        for (int i = 0; i < 2; i++)
        {
            if (model.FindConstant(mul.Input[i]) is not { DataType: Tensors.Float } constant || model.FindConstant(mul.Input[1 - i]) is not null) continue;
            if (constant.Dims.Count == 0 || constant.Dims.Take(constant.Dims.Count - 1).Any(d => d != 1)) continue;
            return (mul.Input[1 - i], Tensors.ReadFloats(constant));
        }
        return null;
    }
}
