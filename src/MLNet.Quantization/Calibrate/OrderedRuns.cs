using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Runs the rows of a pass on up to <c>workers</c> threads at once and hands each result over in the order the rows
/// were added, on the thread that adds them: what the consumer adds up is added as in a one-row-at-a-time pass, so it is
/// the same to the bit. The results in flight stay within <see cref="RowReader.InFlightBudget"/> bytes, as the first
/// result's size tells. A row's inputs are disposed once its result is taken, and the result too, where it is disposable.
/// </summary>
internal sealed class OrderedRuns<T> : IDisposable
{
    private readonly Queue<(long Row, OrtValue[] Inputs, Task<T> Result)> _flight = new();
    private readonly int _workers;
    private readonly Action<long, OrtValue[], T> _consume;
    private readonly Func<T, long> _bytes;
    private int _allowed = 1; // until the first result tells its size

    public OrderedRuns(int workers, Action<long, OrtValue[], T> consume, Func<T, long> bytes)
    {
        (_workers, _consume, _bytes) = (Math.Max(1, workers), consume, bytes);
    }

    /// <summary>The results taken so far.</summary>
    public long Taken { get; private set; }

    /// <summary>Called after each result is taken.</summary>
    public Action<long>? AfterTake { get; init; }

    /// <summary>
    /// Starts <paramref name="run"/> on row <paramref name="row"/>'s <paramref name="inputs"/> (owned from here on), then
    /// takes the oldest results while the flight is full. A failure of a run is thrown here, as it was thrown.
    /// </summary>
    public void Add(long row, OrtValue[] inputs, Func<OrtValue[], T> run)
    {
        _flight.Enqueue((row, inputs, _workers == 1 ? Task.FromResult(run(inputs)) : Task.Run(() => run(inputs))));
        while (_flight.Count >= _allowed) Take();
    }

    /// <summary>
    /// As <see cref="Add(long, OrtValue[], Func{OrtValue[], T})"/>, on the <paramref name="count"/> inputs that
    /// <paramref name="read"/> makes by index; where a read fails, the inputs made before it are disposed.
    /// </summary>
    public void Add(long row, int count, Func<int, OrtValue> read, Func<OrtValue[], T> run)
    {
        var inputs = new OrtValue[count];
        try
        {
            for (int i = 0; i < count; i++) inputs[i] = read(i);
        }
        catch
        {
            foreach (var v in inputs) v?.Dispose();
            throw;
        }
        Add(row, inputs, run);
    }

    /// <summary>Takes every result in flight.</summary>
    public void Finish()
    {
        while (_flight.Count > 0) Take();
    }

    private void Take()
    {
        var (row, inputs, task) = _flight.Dequeue();
        try
        {
            var result = task.GetAwaiter().GetResult(); // a failure as it was thrown, not wrapped
            try
            {
                if (Taken == 0) _allowed = (int)Math.Clamp(RowReader.InFlightBudget / Math.Max(1, _bytes(result)), 1, _workers);
                _consume(row, inputs, result);
            }
            finally
            {
                (result as IDisposable)?.Dispose();
            }
        }
        finally
        {
            foreach (var v in inputs) v?.Dispose();
        }
        Taken++;
        AfterTake?.Invoke(Taken);
    }

    /// <summary>After a failure: the rows still in flight finish before their inputs go, and their results are dropped.</summary>
    public void Dispose()
    {
        while (_flight.Count > 0)
        {
            var (_, inputs, task) = _flight.Dequeue();
            try
            {
                task.Wait();
                (task.Result as IDisposable)?.Dispose();
            }
            catch (AggregateException)
            {
                // the pass already fails with the first error
            }
            foreach (var v in inputs) v?.Dispose();
        }
    }
}
