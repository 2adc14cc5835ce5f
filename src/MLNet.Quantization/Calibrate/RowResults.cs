using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Calibration;

/// <summary>The outputs of the runs of several sessions on one row (<see cref="RowReader.ForEachInOrder"/>), disposed together.</summary>
internal sealed class RowResults : IDisposable
{
    private readonly IDisposableReadOnlyCollection<OrtValue>?[] _runs;

    public RowResults(params IDisposableReadOnlyCollection<OrtValue>?[] runs) => _runs = runs;

    /// <summary>The outputs of run <paramref name="index"/>, in the order the run was given its output names.</summary>
    public IDisposableReadOnlyCollection<OrtValue> this[int index] =>
        _runs[index] ?? throw new InvalidOperationException($"Run {index} was not made on this row.");

    /// <summary>The bytes of every output.</summary>
    public long Bytes => _runs.Sum(r => r is null ? 0 : RowReader.Bytes(r));

    public void Dispose()
    {
        foreach (var run in _runs) run?.Dispose();
    }
}
