namespace MLNet.Quantization.Tests;

/// <summary>Progress reported on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress : IProgress<CalibrationProgress>
{
    private readonly Action<CalibrationProgress> _report;

    public SynchronousProgress(Action<CalibrationProgress> report) => _report = report;

    public void Report(CalibrationProgress value) => _report(value);
}
