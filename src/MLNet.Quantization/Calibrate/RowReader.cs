using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Calibration;

/// <summary>Reads the rows of an IDataView as the input tensors of a model, one row at a time, reporting progress.</summary>
internal static class RowReader
{
    public delegate void RowVisitor(long row, string[] inputNames, OrtValue[] inputs, IReadOnlyList<InputFeed> feeds);

    /// <summary>
    /// Visits the rows that <paramref name="include"/> accepts, up to <c>MaximumCalibrationRows</c> rows read and
    /// <paramref name="maximumVisited"/> visited; returns how many were visited.
    /// </summary>
    public static long ForEach(InferenceSession session, IDataView data, QuantizationSettings settings, int pass,
        Func<long, bool> include, RowVisitor visit, long maximumVisited = long.MaxValue)
    {
        var inputNames = session.InputMetadata.Keys.ToArray();
        var columns = inputNames.Select(name => data.Schema.GetColumnOrNull(name) ?? throw new ArgumentException(
            $"The data has no column '{name}', which model input '{name}' reads. Columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.",
            nameof(data))).ToArray();
        using var cursor = data.GetRowCursor(columns);
        var feeds = inputNames.Select((name, i) => InputFeed.Create(cursor, columns[i], session.InputMetadata[name],
            settings.ShapeDictionary?.GetValueOrDefault(name) ?? session.InputMetadata[name].Dimensions)).ToArray();
        long row = 0, visited = 0;
        long limit = settings.Rows.MaximumCalibrationRows ?? long.MaxValue;
        var values = new OrtValue[feeds.Length];
        var clock = Stopwatch.StartNew();
        while (row < limit && visited < maximumVisited && cursor.MoveNext())
        {
            if (include(row))
            {
                try
                {
                    for (int i = 0; i < feeds.Length; i++) values[i] = feeds[i].Read(row);
                    visit(row, inputNames, values, feeds);
                }
                finally
                {
                    foreach (var v in values) v?.Dispose();
                    Array.Clear(values);
                }
                visited++;
                if (visited % 32 == 0) Report(settings, pass, visited, clock);
            }
            row++;
        }
        Report(settings, pass, visited, clock);
        return visited;
    }

    private static void Report(QuantizationSettings settings, int pass, long rows, Stopwatch clock) =>
        settings.Rows.Progress?.Report(new CalibrationProgress(pass, rows, rows / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)));
}
