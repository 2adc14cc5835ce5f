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
        using var session = Sessions.Create(model, outputs, graph is null ? $"the float model '{context.Settings.ModelFile}' with the statistic points" : $"the quantized form of '{context.Settings.ModelFile}' with the statistic points", Calibration.RowReader.SessionThreads);
        long rows = TensorStream.ForEach(session, context.Data, context.Settings, pass, context.Settings.Rows.IsCalibrationRow,
            inputs.Where(reducer.Reads).ToHashSet(), outputs, (tensor, values, shape, _) => reducer.Add(tensor, values, shape), maximumRows);
        return reducer.Values(rows);
    }
}
