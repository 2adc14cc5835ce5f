namespace MLNet.Quantization.Tests;

/// <summary>A fresh folder under the temp path, deleted with its contents on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlnet-quantization-tests", Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>The library's temp model files (<see cref="TemporaryModelFile.Prefix"/>) now in the temp folder.</summary>
    public static List<string> ModelFiles() =>
        Directory.GetFiles(System.IO.Path.GetTempPath(), TemporaryModelFile.Prefix + "*").ToList();

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
