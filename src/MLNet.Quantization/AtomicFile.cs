namespace MLNet.Quantization;

/// <summary>Writes a file through a temporary file beside it, so that a failure never leaves a half-written file.</summary>
internal static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The path must not be empty.", nameof(path));
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Cannot write '{path}': directory '{directory}' does not exist.");
        var temporary = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = File.Create(temporary)) write(stream);
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }
}
