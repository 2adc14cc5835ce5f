using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// One pass over the rows through a session: every requested tensor of every row, a model input or a graph output, is
/// handed to the visitors as its float values and shape. The activation ranges and histograms
/// (<see cref="StatisticsCollector"/>) and the per-channel statistic points (<see cref="Pipeline.ChannelReducer"/>) are
/// both such visitors, so that one stream can feed both.
/// </summary>
internal static class TensorStream
{
    public delegate void Visitor(string tensor, ReadOnlySpan<float> values, ReadOnlySpan<long> shape, long row);

    /// <summary>
    /// Streams the rows that <paramref name="include"/> accepts (at most <paramref name="maximumRows"/>): the inputs named in
    /// <paramref name="inputs"/> from the data, <paramref name="outputs"/> from one run of <paramref name="session"/> (none:
    /// the model is not run). Returns the rows visited. A requested tensor that is not float is an error.
    /// </summary>
    public static long ForEach(InferenceSession session, IDataView data, QuantizationSettings settings, int pass, Func<long, bool> include,
        IReadOnlySet<string> inputs, IReadOnlyList<string> outputs, Visitor visit, long maximumRows = long.MaxValue)
    {
        using var runOptions = new RunOptions();
        var names = outputs.ToArray();
        // The model runs on several rows at once; the visitors see the rows in order, so what they add up does not change.
        return RowReader.ForEachInOrder(session, data, settings, pass, include,
            (inputNames, values) => names.Length == 0 ? null : session.Run(runOptions, inputNames, values, names),
            (row, inputNames, values, results) =>
            {
                for (int i = 0; i < inputNames.Length; i++)
                    if (inputs.Contains(inputNames[i]))
                        visit(inputNames[i], Floats(inputNames[i], values[i], out var inputShape), inputShape, row);
                if (results is null) return;
                for (int k = 0; k < names.Length; k++)
                    visit(names[k], Floats(names[k], results[k], out var shape), shape, row);
            }, results => results is null ? 0 : RowReader.Bytes(results), maximumRows);
    }

    /// <summary>The values and the shape of <paramref name="value"/>, the tensor named <paramref name="tensor"/>, which must be float.</summary>
    public static ReadOnlySpan<float> Floats(string tensor, OrtValue value, out long[] shape)
    {
        var info = value.GetTensorTypeAndShape();
        if (info.ElementDataType != TensorElementType.Float)
            throw new InvalidOperationException($"Tensor '{tensor}' is a {info.ElementDataType} tensor, not float.");
        shape = info.Shape;
        return value.GetTensorDataAsSpan<float>();
    }
}
