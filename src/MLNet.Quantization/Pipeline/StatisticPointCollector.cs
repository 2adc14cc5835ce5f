using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// Streams the calibration rows once through the float model, with the nodes the points bring, and reduces each point's
/// tensor per channel as the rows arrive (<see cref="ChannelReducer"/>).
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
        var reducer = new ChannelReducer(points, model);
        var inputs = model.RealInputs().Select(i => i.Name).ToHashSet();
        var outputs = reducer.Tensors.Where(t => !inputs.Contains(t)).ToArray();
        using var session = Sessions.Create(model, outputs, graph is null ? $"the float model '{context.Settings.ModelFile}' with the statistic points" : $"the quantized form of '{context.Settings.ModelFile}' with the statistic points");
        using var runOptions = new RunOptions();

        long rows = RowReader.ForEach(session, context.Data, context.Settings, pass, context.Settings.Rows.IsCalibrationRow, (_, names, values, feeds) =>
        {
            foreach (var feed in feeds.Where(f => reducer.Reads(f.Name)))
                reducer.Add(feed.Name, feed.Floats, values[Array.IndexOf(names, feed.Name)].GetTensorTypeAndShape().Shape);
            if (outputs.Length == 0) return;
            using var results = session.Run(runOptions, names, values, outputs);
            for (int k = 0; k < outputs.Length; k++) reducer.Add(outputs[k], results[k]);
        }, maximumRows);
        return reducer.Values(rows);
    }
}
