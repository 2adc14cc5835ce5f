using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// Streams the calibration rows once through the float model, with the nodes the points bring, and reduces each point's
/// tensor per channel as the rows arrive: only sums and maxima are kept, so memory does not grow with the rows.
/// </summary>
internal static class StatisticPointCollector
{
    /// <summary>
    /// Collects <paramref name="points"/> on the calibration rows (the first <paramref name="maximumRows"/>) of
    /// <paramref name="graph"/>, the float model unless given.
    /// </summary>
    public static StatisticValues Collect(QuantizationContext context, IReadOnlyList<StatisticPoint> points, int pass,
        OnnxGraph? graph = null, long maximumRows = long.MaxValue)
    {
        if (points.Count == 0) return StatisticValues.None;
        var model = (graph ?? context.Model).Clone();
        var tensorOf = points.Distinct().ToDictionary(p => p, p => p.Probe is { } probe ? probe(model) : p.Tensor);
        var inputs = model.RealInputs().Select(i => i.Name).ToHashSet();
        var keys = tensorOf.Values.Zip(tensorOf.Keys, (t, p) => (Tensor: t, p.Axis)).Distinct().ToList();
        var outputs = keys.Select(k => k.Tensor).Where(t => !inputs.Contains(t)).Distinct().ToArray();
        using var session = Sessions.Create(model, outputs, graph is null ? $"the float model '{context.Settings.ModelFile}' with the statistic points" : $"the quantized form of '{context.Settings.ModelFile}' with the statistic points");
        var sums = new Dictionary<(string, int), double[]>();
        var maxima = new Dictionary<(string, int), float[]>();
        var counts = new Dictionary<(string, int), long>();
        using var runOptions = new RunOptions();

        void Reduce(string tensor, ReadOnlySpan<float> values, ReadOnlySpan<long> shape)
        {
            foreach (var key in keys.Where(k => k.Tensor == tensor))
            {
                int axis = key.Axis < 0 ? key.Axis + shape.Length : key.Axis;
                if (axis < 0 || axis >= shape.Length)
                    throw new InvalidOperationException($"Tensor '{tensor}' has rank {shape.Length}, which has no axis {key.Axis}.");
                int channels = (int)shape[axis];
                long inner = 1;
                for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
                if (!sums.TryGetValue(key, out var sum))
                {
                    sums[key] = sum = new double[channels];
                    maxima[key] = new float[channels];
                }
                if (sum.Length != channels)
                    throw new InvalidOperationException($"Tensor '{tensor}' changes its size along axis {key.Axis} between rows ({sum.Length}, then {channels}).");
                var max = maxima[key];
                // Channel c owns runs of `inner` consecutive values, the runs cycling through the channels.
                for (long start = 0, run = 0; start < values.Length; start += inner, run++)
                {
                    int c = (int)(run % channels);
                    var block = values.Slice((int)start, (int)inner);
                    double total = 0;
                    float largest = max[c];
                    foreach (float v in block)
                    {
                        total += v;
                        float a = Math.Abs(v);
                        if (a > largest) largest = a;
                    }
                    sum[c] += total;
                    max[c] = largest;
                }
                counts[key] = counts.GetValueOrDefault(key) + values.Length / channels;
            }
        }

        long rows = RowReader.ForEach(session, context.Data, context.Settings, pass, context.Settings.Rows.IsCalibrationRow, (_, names, values, feeds) =>
        {
            foreach (var feed in feeds.Where(f => keys.Any(k => k.Tensor == f.Name)))
                Reduce(feed.Name, feed.Floats, values[Array.IndexOf(names, feed.Name)].GetTensorTypeAndShape().Shape);
            if (outputs.Length == 0) return;
            using var results = session.Run(runOptions, names, values, outputs);
            for (int k = 0; k < outputs.Length; k++)
            {
                var info = results[k].GetTensorTypeAndShape();
                if (info.ElementDataType != TensorElementType.Float)
                    throw new InvalidOperationException($"Statistic point '{outputs[k]}' is a {info.ElementDataType} tensor, not float.");
                Reduce(outputs[k], results[k].GetTensorDataAsSpan<float>(), info.Shape);
            }
        }, maximumRows);
        var values = keys.Where(sums.ContainsKey).ToDictionary(k => k,
            k => new ChannelStatistics(sums[k].Select(s => s / Math.Max(1, counts[k])).ToArray(), maxima[k], rows));
        return new StatisticValues(points.Distinct().Where(p => values.ContainsKey((tensorOf[p], p.Axis)))
            .ToDictionary(p => p, p => values[(tensorOf[p], p.Axis)]));
    }
}
