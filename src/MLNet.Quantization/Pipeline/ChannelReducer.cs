using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// Reduces the tensors of statistic points per channel as the rows arrive: per (tensor, axis) key only the sums and the
/// largest magnitudes are kept, so memory does not grow with the rows; only the points that ask for each row's
/// extremes (<see cref="StatisticPoint.RowExtremes"/>) keep two values per channel and row, up to
/// <see cref="RowExtremesBudgetBytes"/> in all.
/// </summary>
internal sealed class ChannelReducer
{
    /// <summary>The most memory that the rows' extremes may take by default, over all points; past it none are kept.</summary>
    public const long RowExtremesBudgetBytes = 64L << 20;

    private readonly IReadOnlyDictionary<StatisticPoint, string> _tensorOf;
    private readonly IReadOnlyList<(string Tensor, int Axis)> _keys;
    private readonly Dictionary<(string, int), double[]> _sums = new();
    private readonly Dictionary<(string, int), float[]> _maxima = new();
    private readonly Dictionary<(string, int), long> _counts = new();
    private readonly Dictionary<(string, int), (List<float[]> Minima, List<float[]> Maxima)>? _rows;
    private readonly long _rowBudget;
    private long _rowBytes;

    /// <summary>
    /// Reduces the tensors of <paramref name="points"/> in <paramref name="graph"/>, to which a point's probe adds its
    /// nodes; the rows' extremes take at most <paramref name="rowExtremesBudget"/> bytes.
    /// </summary>
    public ChannelReducer(IReadOnlyList<StatisticPoint> points, OnnxGraph graph, long rowExtremesBudget = RowExtremesBudgetBytes)
    {
        _rowBudget = rowExtremesBudget;
        _tensorOf = points.Distinct().ToDictionary(p => p, p => p.Probe is { } probe ? probe(graph) : p.Tensor);
        _keys = _tensorOf.Values.Zip(_tensorOf.Keys, (t, p) => (Tensor: t, p.Axis)).Distinct().ToList();
        var extremes = _tensorOf.Where(p => p.Key.RowExtremes && p.Key.Axis == -1).Select(p => (p.Value, -1)).Distinct().ToList();
        if (extremes.Count > 0) _rows = extremes.ToDictionary(k => k, _ => (new List<float[]>(), new List<float[]>()));
    }

    /// <summary>The tensors reduced, each once.</summary>
    public IReadOnlyList<string> Tensors => _keys.Select(k => k.Tensor).Distinct().ToList();

    /// <summary>Whether some key reduces <paramref name="tensor"/>.</summary>
    public bool Reads(string tensor) => _keys.Any(k => k.Tensor == tensor);

    /// <summary>Adds one row's value of <paramref name="tensor"/>, which must be a float tensor.</summary>
    public void Add(string tensor, OrtValue value) => Add(tensor, Calibration.TensorStream.Floats(tensor, value, out var shape), shape);

    /// <summary>Adds one row's value of <paramref name="tensor"/> to every key that reduces it.</summary>
    public void Add(string tensor, ReadOnlySpan<float> values, ReadOnlySpan<long> shape)
    {
        foreach (var key in _keys.Where(k => k.Tensor == tensor))
        {
            int axis = key.Axis < 0 ? key.Axis + shape.Length : key.Axis;
            if (axis < 0 || axis >= shape.Length)
                throw new InvalidOperationException($"Tensor '{tensor}' has rank {shape.Length}, which has no axis {key.Axis}.");
            int channels = (int)shape[axis];
            long inner = 1;
            for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
            if (!_sums.TryGetValue(key, out var sum))
            {
                _sums[key] = sum = new double[channels];
                _maxima[key] = new float[channels];
            }
            if (sum.Length != channels)
                throw new InvalidOperationException($"Tensor '{tensor}' changes its size along axis {key.Axis} between rows ({sum.Length}, then {channels}).");
            var max = _maxima[key];
            if (inner == 1)
            {
                // Channels last (a MatMul's output): each run of `channels` values holds one of each, in order.
                for (int start = 0; start < values.Length; start += channels)
                {
                    var row = values.Slice(start, Math.Min(channels, values.Length - start));
                    for (int c = 0; c < row.Length; c++) Accumulate(row[c], ref sum[c], ref max[c]);
                }
                _counts[key] = _counts.GetValueOrDefault(key) + values.Length / channels;
                if (_rows is not null && _rows.TryGetValue(key, out var kept)) KeepExtremes(kept, values, channels);
                continue;
            }
            // Channel c owns runs of `inner` consecutive values, the runs cycling through the channels.
            for (long start = 0, run = 0; start < values.Length; start += inner, run++)
            {
                int c = (int)(run % channels);
                var (total, largest) = Reduce(values.Slice((int)start, (int)inner), max[c]);
                sum[c] += total;
                max[c] = largest;
            }
            _counts[key] = _counts.GetValueOrDefault(key) + values.Length / channels;
        }
    }

    // The sum (in double) and the largest magnitude of one channel's run, from `largest` so far. Over Vector<float>
    // blocks, each widened to double before it is added: the same sum as one value at a time, up to the order of the
    // double additions. A NaN, which the one-at-a-time comparison skips, makes the run go one value at a time.
    private static (double Total, float Largest) Reduce(ReadOnlySpan<float> block, float largest)
    {
        int width = System.Numerics.Vector<float>.Count, i = 0;
        double total = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated && block.Length >= width)
        {
            var low = System.Numerics.Vector<double>.Zero;
            var high = System.Numerics.Vector<double>.Zero;
            var big = new System.Numerics.Vector<float>(largest);
            for (; i <= block.Length - width; i += width)
            {
                var v = new System.Numerics.Vector<float>(block.Slice(i, width));
                System.Numerics.Vector.Widen(v, out var a, out var b);
                low += a;
                high += b;
                big = System.Numerics.Vector.Max(big, System.Numerics.Vector.Abs(v));
            }
            double vectorTotal = System.Numerics.Vector.Sum(low + high);
            float vectorLargest = largest;
            for (int lane = 0; lane < width; lane++) vectorLargest = Math.Max(vectorLargest, big[lane]);
            if (float.IsNaN(vectorLargest)) i = 0; // from the start, one at a time
            else (total, largest) = (vectorTotal, vectorLargest);
        }
        for (; i < block.Length; i++) Accumulate(block[i], ref total, ref largest);
        return (total, largest);
    }

    // This row's smallest and largest value of each channel; past the budget, no point keeps any.
    private void KeepExtremes((List<float[]> Minima, List<float[]> Maxima) kept, ReadOnlySpan<float> values, int channels)
    {
        _rowBytes += 2L * channels * sizeof(float);
        if (_rowBytes > _rowBudget)
        {
            _rows!.Clear();
            return;
        }
        var low = new float[channels];
        var high = new float[channels];
        Array.Fill(low, float.PositiveInfinity);
        Array.Fill(high, float.NegativeInfinity);
        for (int start = 0; start + channels <= values.Length; start += channels)
        {
            var run = values.Slice(start, channels);
            for (int c = 0; c < channels; c++)
            {
                float v = run[c];
                if (float.IsNaN(v)) low[c] = high[c] = float.NaN; // and NaN it stays: the derived statistics then refuse the channel
                else if (v < low[c]) low[c] = v;
                if (v > high[c]) high[c] = v;
            }
        }
        kept.Minima.Add(low);
        kept.Maxima.Add(high);
    }

    // One value into a sum and a largest magnitude (a NaN leaves the largest as it was).
    private static void Accumulate(float value, ref double total, ref float largest)
    {
        total += value;
        float magnitude = Math.Abs(value);
        if (magnitude > largest) largest = magnitude;
    }

    /// <summary>The statistics of the points over <paramref name="rows"/> rows; a point whose tensor never arrived has none.</summary>
    public StatisticValues Values(long rows)
    {
        var values = _keys.Where(_sums.ContainsKey).ToDictionary(k => k,
            k => new ChannelStatistics(_sums[k].Select(s => s / Math.Max(1, _counts[k])).ToArray(), _maxima[k], rows)
            {
                RowExtremes = _rows is not null && _rows.TryGetValue(k, out var kept) && kept.Minima.Count == rows
                    ? new RowExtremes(kept.Minima, kept.Maxima, _counts[k])
                    : null,
            });
        return new StatisticValues(_tensorOf.Where(p => values.ContainsKey((p.Value, p.Key.Axis)))
            .ToDictionary(p => p.Key, p => values[(p.Value, p.Key.Axis)]));
    }
}
