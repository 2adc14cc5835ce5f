using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Reads the rows of an IDataView as the input tensors of a model, reporting progress: with the models run on several
/// rows at once and their results taken in row order (<see cref="ForEachInOrder"/>), or one row at a time.
/// </summary>
internal static class RowReader
{
    public delegate void RowVisitor(long row, string[] inputNames, OrtValue[] inputs);

    /// <summary>Runs the models on one row's inputs; called on several rows at once, so it may only read shared state.</summary>
    public delegate T RowRunner<T>(string[] inputNames, OrtValue[] inputs);

    /// <summary>Takes one row's result, in row order, on the calling thread; the row's inputs are alive until it returns.</summary>
    public delegate void RowConsumer<T>(long row, string[] inputNames, OrtValue[] inputs, T result);

    /// <summary>
    /// How many rows <see cref="ForEachInOrder"/> runs at once: one per core, at most 4. ONNX Runtime's default
    /// threading (one thread per physical core, or one where the cores are hyperthreads) leaves cores idle on one row of a
    /// convolutional model: on a 2-core AMD EPYC (AVX512-VNNI), ResNet18 took 21–22 ms a row one at a time, with one
    /// or with the default threads, and 11–12 ms two at a time (docs/benchmarks.md, issue 17).
    /// </summary>
    public static int Workers { get; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>
    /// The intra-op threads of a session that <see cref="ForEachInOrder"/> runs: the cores shared among the rows run at
    /// once, or null (ONNX Runtime's default) when rows run one at a time.
    /// </summary>
    public static int? SessionThreads => Workers > 1 ? Math.Max(1, Environment.ProcessorCount / Workers) : null;

    /// <summary>The most bytes of results in flight (rows run but not yet taken), beyond the first row's.</summary>
    public const long InFlightBudget = 256L << 20;

    /// <summary>
    /// Visits the rows that <paramref name="include"/> accepts, as <see cref="ForEach"/> does, but runs
    /// <paramref name="run"/> on up to <see cref="Workers"/> rows at once and hands each result to
    /// <paramref name="consume"/> in row order, on this thread: whatever <paramref name="consume"/> adds up is added in the
    /// order of a one-row-at-a-time pass, so the results are the same to the bit. <paramref name="bytes"/> tells a result's
    /// size, so that the results in flight stay within <see cref="InFlightBudget"/>. Every result is disposed once taken
    /// (or once the pass fails), and a failure in <paramref name="run"/> is rethrown as it was thrown. <paramref name="workers"/>
    /// (tests): rows at once instead of <see cref="Workers"/>.
    /// </summary>
    public static long ForEachInOrder<T>(InferenceSession session, IDataView data, QuantizationSettings settings, int pass,
        Func<long, bool> include, RowRunner<T> run, RowConsumer<T> consume, Func<T, long> bytes, long maximumVisited = long.MaxValue,
        int? workers = null)
    {
        int count = workers ?? Workers;
        var inputNames = session.InputMetadata.Keys.ToArray();
        var columns = inputNames.Select(name => data.Schema.GetColumnOrNull(name) ?? throw new ArgumentException(
            $"The data has no column '{name}', which model input '{name}' reads. Columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.",
            nameof(data))).ToArray();
        using var cursor = data.GetRowCursor(columns);
        // One buffer per row in flight, and one for the row being read.
        var feeds = inputNames.Select((name, i) => InputFeed.Create(cursor, columns[i], session.InputMetadata[name],
            settings.ShapeDictionary?.GetValueOrDefault(name) ?? session.InputMetadata[name].Dimensions, count + 1)).ToArray();
        long row = 0, read = 0;
        long limit = settings.Rows.MaximumCalibrationRows ?? long.MaxValue;
        var clock = Stopwatch.StartNew();
        using var flight = new OrderedRuns<T>(count, (taken, values, result) => consume(taken, inputNames, values, result), bytes)
        {
            AfterTake = visited => { if (visited % 32 == 0) Report(settings, pass, visited, clock); },
        };
        while (row < limit && read < maximumVisited && cursor.MoveNext())
        {
            if (include(row))
            {
                flight.Add(row, feeds.Length, i => feeds[i].Read(row), inputs => run(inputNames, inputs));
                read++;
            }
            row++;
        }
        flight.Finish();
        long visited = flight.Taken;
        Report(settings, pass, visited, clock);
        return visited;
    }

    /// <summary>
    /// Visits the rows that <paramref name="include"/> accepts, up to <c>MaximumCalibrationRows</c> rows read and
    /// <paramref name="maximumVisited"/> visited; returns how many were visited.
    /// </summary>
    public static long ForEach(InferenceSession session, IDataView data, QuantizationSettings settings, int pass,
        Func<long, bool> include, RowVisitor visit, long maximumVisited = long.MaxValue) =>
        // One row at a time, on this thread: the visitor runs the models itself (the deployment check times them).
        ForEachInOrder(session, data, settings, pass, include, (_, _) => true, (row, names, values, _) => visit(row, names, values),
            _ => 0, maximumVisited, workers: 1);

    /// <summary>The bytes of <paramref name="values"/>' tensors (4 per element: a size for <see cref="ForEachInOrder"/>'s budget).</summary>
    public static long Bytes(IEnumerable<OrtValue?> values) =>
        values.Where(v => v is { OnnxType: OnnxValueType.ONNX_TYPE_TENSOR }).Sum(v => v!.GetTensorTypeAndShape().ElementCount * 4L);

    private static void Report(QuantizationSettings settings, int pass, long rows, Stopwatch clock) =>
        settings.Rows.Progress?.Report(new CalibrationProgress(pass, rows, rows / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)));
}
