using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>
/// How images become the model's input: size, layout, channel order and normalisation for a float input; for a uint8
/// input (<see cref="Pixels"/>), the pixels as they are.
/// </summary>
internal sealed record ImageSettings(int Height, int Width, bool Nhwc, bool Bgr, float Scale, float[] Mean, float[] Std, bool Pixels = false)
{
    /// <summary>The shape of one image as the model input takes it: [1, 3, H, W] or [1, H, W, 3].</summary>
    public int[] Dims => Nhwc ? new[] { 1, Height, Width, 3 } : new[] { 1, 3, Height, Width };
}

/// <summary>A folder of images, decoded and resized one at a time as calibration rows stream.</summary>
internal static class ImageRows
{
    private static readonly string[] Extensions = { ".png", ".jpg", ".jpeg", ".bmp" };

    public static IReadOnlyList<string> Files(string folder)
    {
        var files = Directory.EnumerateFiles(folder).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new UsageException($"'{folder}' holds no images (.png, .jpg, .jpeg, .bmp).");
        return files;
    }

    /// <summary>The settings for <paramref name="input"/>, from the options where given and else from its shape.</summary>
    public static ImageSettings Settings(ModelInput input, (int H, int W)? size, string? layout, string channels, float scale, float[]? mean, float[]? std)
    {
        bool pixels = input.ElementType == global::Onnx.TensorProto.Types.DataType.Uint8;
        if (input.ElementType != global::Onnx.TensorProto.Types.DataType.Float && !pixels)
            throw new UsageException($"Model input '{input.Name}' takes {input.ElementType}; images feed float or uint8 inputs.");
        if (pixels && (scale != 1 || mean is not null || std is not null))
            throw new UsageException($"Model input '{input.Name}' takes uint8 pixels as they are: --scale, --mean and --std apply to float inputs only.");
        if (input.Dims.Length != 4)
            throw new UsageException($"Model input '{input.Name}' has rank {input.Dims.Length}; images need a rank-4 input (NCHW or NHWC).");
        bool nhwc = layout switch
        {
            "nchw" => false,
            "nhwc" => true,
            null when input.Dims[1] == 3 || input.Dims[1] == 1 => false,
            null when input.Dims[3] == 3 || input.Dims[3] == 1 => true,
            null => throw new UsageException($"The layout of model input '{input.Name}' [{string.Join(",", input.Dims)}] is not clear: give --layout nchw or nhwc."),
            _ => throw new UsageException($"--layout must be nchw or nhwc, not '{layout}'."),
        };
        long channelCount = nhwc ? input.Dims[3] : input.Dims[1];
        if (channelCount != 3)
            throw new UsageException($"Model input '{input.Name}' has {channelCount} channels; images give 3.");
        long h = nhwc ? input.Dims[1] : input.Dims[2], w = nhwc ? input.Dims[2] : input.Dims[3];
        var (height, width) = size ?? (h > 0 && w > 0 ? ((int)h, (int)w)
            : throw new UsageException($"Model input '{input.Name}' has a dynamic image size: give --image-size H,W."));
        if (h > 0 && w > 0 && (height != h || width != w))
            throw new UsageException($"--image-size {height},{width} does not fit model input '{input.Name}', which takes {h}×{w}.");
        if (mean is { Length: not 3 } || std is { Length: not 3 })
            throw new UsageException("--mean and --std take three values, one per channel.");
        if (std is not null && std.Any(s => s == 0))
            throw new UsageException("--std values must not be 0.");
        return new ImageSettings(height, width, nhwc, channels == "bgr", scale, mean ?? new float[3], std ?? new[] { 1f, 1f, 1f }, pixels);
    }

    public static IDataView View(ModelInput input, IReadOnlyList<string> files, ImageSettings settings)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(input.Name, new VectorDataViewType(settings.Pixels ? NumberDataViewType.Byte : NumberDataViewType.Single, settings.Dims));
        return new RowsDataView(builder.ToSchema(), () => files.Select(f => new Array[] { Read(f, settings) }));
    }

    /// <summary>Decodes, composites over white, resizes and normalises one image: float[], or byte[] for <see cref="ImageSettings.Pixels"/>.</summary>
    public static Array Read(string file, ImageSettings s)
    {
        using var decoded = SKBitmap.Decode(file) ?? throw new UsageException($"'{file}' is not an image this tool can read.");
        using var target = new SKBitmap(new SKImageInfo(s.Width, s.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(target))
        using (var image = SKImage.FromBitmap(decoded))
        {
            canvas.Clear(SKColors.White);
            canvas.DrawImage(image, new SKRect(0, 0, s.Width, s.Height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
        }
        var floats = s.Pixels ? null : new float[3 * s.Height * s.Width];
        var bytes = s.Pixels ? new byte[3 * s.Height * s.Width] : null;
        for (int y = 0; y < s.Height; y++)
            for (int x = 0; x < s.Width; x++)
            {
                var c = target.GetPixel(x, y);
                for (int k = 0; k < 3; k++)
                {
                    int channel = s.Bgr ? 2 - k : k;
                    byte pixel = channel == 0 ? c.Red : channel == 1 ? c.Green : c.Blue;
                    int at = s.Nhwc ? (y * s.Width + x) * 3 + k : (k * s.Height + y) * s.Width + x;
                    if (bytes is not null) bytes[at] = pixel;
                    else floats![at] = (pixel * s.Scale - s.Mean[k]) / s.Std[k];
                }
            }
        return (Array?)bytes ?? floats!;
    }
}
