using System.Collections.Concurrent;

namespace MLNet.Quantization;

/// <summary>
/// A model written to the temp folder for ML.NET's <c>OnnxTransformer</c>, which scores and saves from a file, or for an
/// ONNX Runtime session of <c>Fit</c> to read without an array of the whole model on the managed heap. It is
/// deleted on <see cref="Dispose"/>, by the finalizer when the owner was never disposed, and at process exit as a last
/// resort, so that no fit leaves a file behind.
/// </summary>
internal sealed class TemporaryModelFile : IDisposable
{
    /// <summary>The file name prefix, so that tests (and people) can recognise the files.</summary>
    public const string Prefix = "mlnet-quantized-";

    private static readonly ConcurrentDictionary<string, byte> Live = new(StringComparer.Ordinal);

    static TemporaryModelFile() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var path in Live.Keys) TryDelete(path);
    };

    public TemporaryModelFile(byte[] model)
        : this(stream => stream.Write(model))
    {
    }

    /// <summary>A file that <paramref name="write"/> fills, streamed: no array of the whole model is made.</summary>
    public TemporaryModelFile(Action<Stream> write)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{Prefix}{Guid.NewGuid():N}.onnx");
        Live[Path] = 0;
        try
        {
            using var stream = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            write(stream);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    ~TemporaryModelFile() => Delete();

    public string Path { get; }

    public void Dispose()
    {
        Delete();
        GC.SuppressFinalize(this);
    }

    private void Delete()
    {
        TryDelete(Path);
        Live.TryRemove(Path, out _);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Still open elsewhere (on Windows): the process-exit pass tries again.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
