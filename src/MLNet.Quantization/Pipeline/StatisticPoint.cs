using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// A tensor whose per-channel statistics a pass needs: its mean and largest magnitude along <see cref="Axis"/> (negative
/// counts from the end), over the calibration rows of the float model. With <see cref="Probe"/>, the point extends the
/// copy of the float model that this collection runs (a layer recomputed from quantized inputs and weights, say) and
/// names the tensor to reduce; <see cref="Tensor"/> then only describes it.
/// </summary>
internal sealed record StatisticPoint(string Tensor, int Axis)
{
    /// <summary>Adds nodes to the collection's copy of the float model and returns the tensor to reduce.</summary>
    public Func<OnnxGraph, string>? Probe { get; init; }

    /// <summary>
    /// Also keep each row's smallest and largest value of every channel (the last axis only), within
    /// <see cref="ChannelReducer.RowExtremesBudgetBytes"/>: what <see cref="Calibration.ScaledStatistics"/> derives the
    /// statistics of this tensor times a per-channel constant from, without streaming the rows again.
    /// </summary>
    public bool RowExtremes { get; init; }
}

/// <summary>
/// Per-channel statistics of one tensor over the rows read: <c>Mean[c]</c> and <c>AbsMax[c]</c>, and where the point
/// asked for them and they fit, <see cref="RowExtremes"/>.
/// </summary>
internal sealed record ChannelStatistics(double[] Mean, float[] AbsMax, long Rows)
{
    /// <summary>Each row's extremes per channel, in row order (null where not kept).</summary>
    public RowExtremes? RowExtremes { get; init; }
}

/// <summary>
/// A tensor's smallest and largest value of each channel (its last axis) in each row, in row order, and the number of
/// values per channel over all rows.
/// </summary>
internal sealed record RowExtremes(IReadOnlyList<float[]> Minima, IReadOnlyList<float[]> Maxima, long ValuesPerChannel);

/// <summary>The values of a step's statistic points.</summary>
internal sealed class StatisticValues
{
    public static readonly StatisticValues None = new(new Dictionary<StatisticPoint, ChannelStatistics>());

    private readonly IReadOnlyDictionary<StatisticPoint, ChannelStatistics> _values;

    public StatisticValues(IReadOnlyDictionary<StatisticPoint, ChannelStatistics> values) => _values = values;

    public ChannelStatistics this[StatisticPoint point] => _values.TryGetValue(point, out var v) ? v
        : throw new InvalidOperationException($"No statistics were collected for tensor '{point.Tensor}' (axis {point.Axis}): the pass did not declare it.");

    /// <summary>The rows' extremes of <paramref name="tensor"/> (a point without a probe), if some point kept them.</summary>
    public RowExtremes? RowExtremesOf(string tensor) =>
        _values.Where(p => p.Key.Probe is null && p.Key.Tensor == tensor).Select(p => p.Value.RowExtremes).FirstOrDefault(r => r is not null);
}
