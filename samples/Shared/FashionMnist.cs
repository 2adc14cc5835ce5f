using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Quantization.Samples;

/// <summary>One Fashion-MNIST image, upscaled to the 3×224×224 RGB (0..255) layout that ResNetPreprocess.onnx reads.</summary>
public sealed class FashionImage
{
    /// <summary>Number of values of <see cref="OriginalInput"/>.</summary>
    public const int Size = 3 * 224 * 224;

    /// <summary>The RGB pixels, channel-major, 0..255.</summary>
    [VectorType(Size)]
    public float[] OriginalInput { get; set; } = Array.Empty<float>();

    /// <summary>The class, 0..9.</summary>
    public uint Label { get; set; }
}

/// <summary>Reads the IDX files of Fashion-MNIST and streams them as <see cref="FashionImage"/> rows.</summary>
public static class FashionMnist
{
    /// <summary>The folder of the shipped subset, found by walking up from the working directory.</summary>
    public static string DataDirectory(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "data", "fashion-mnist");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"No data/fashion-mnist folder above '{start}'.");
    }

    /// <summary>Reads <paramref name="count"/> images and labels from <c>{prefix}-images-idx3-ubyte.gz</c> and <c>{prefix}-labels-idx1-ubyte.gz</c>, skipping <paramref name="skip"/>.</summary>
    public static (byte[][] Images, byte[] Labels) Read(string directory, string prefix, int skip = 0, int count = int.MaxValue)
    {
        var images = ReadIdx(Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz"), 2051);
        var labels = ReadIdx(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz"), 2049);
        int n = Math.Min(count, images.Count - skip);
        return (Enumerable.Range(skip, n).Select(i => images.Item(i)).ToArray(), Enumerable.Range(skip, n).Select(i => labels.Item(i)[0]).ToArray());
    }

    /// <summary>A lazy IDataView: the 600 KB float vector of each row is made only when a cursor reaches it.</summary>
    public static IDataView ToDataView(MLContext mlContext, byte[][] images, byte[] labels) =>
        mlContext.Data.LoadFromEnumerable(Rows(images, labels));

    private static IEnumerable<FashionImage> Rows(byte[][] images, byte[] labels)
    {
        for (int i = 0; i < images.Length; i++)
            yield return new FashionImage { OriginalInput = Upscale(images[i]), Label = labels[i] };
    }

    /// <summary>28×28 grey → 3×224×224 RGB by nearest-neighbour 8× upscaling.</summary>
    public static float[] Upscale(byte[] image)
    {
        var result = new float[FashionImage.Size];
        for (int y = 0; y < 224; y++)
            for (int x = 0; x < 224; x++)
            {
                float v = image[(y / 8) * 28 + x / 8];
                for (int c = 0; c < 3; c++) result[c * 224 * 224 + y * 224 + x] = v;
            }
        return result;
    }

    private sealed record Idx(byte[] Bytes, int Count, int ItemSize, int Offset)
    {
        public byte[] Item(int i) => Bytes.AsSpan(Offset + i * ItemSize, ItemSize).ToArray();
    }

    private static Idx ReadIdx(string path, int magic)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        var bytes = ms.ToArray();
        int Int(int at) => (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
        if (Int(0) != magic) throw new InvalidDataException($"'{path}' is not an IDX file with magic {magic}.");
        int count = Int(4);
        return magic == 2051 ? new Idx(bytes, count, Int(8) * Int(12), 16) : new Idx(bytes, count, 1, 8);
    }
}
