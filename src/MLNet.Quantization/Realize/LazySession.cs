using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Realize;

/// <summary>A session opened on its first use, if any, and disposed with this (a session costs a model's load).</summary>
internal sealed class LazySession : IDisposable
{
    private readonly Func<InferenceSession> _open;
    private InferenceSession? _session;

    public LazySession(Func<InferenceSession> open) => _open = open;

    /// <summary>The session, opened now if it was not yet.</summary>
    public InferenceSession Value => _session ??= _open();

    public void Dispose() => _session?.Dispose();
}
