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
    /// <summary>
    /// 3 (RGB or BGR, composited over white), 1 (gray: ITU-R 601 luma of the composited RGB, as PIL's "L") or 4 (RGBA or
    /// BGRA as the image holds it, alpha not composited).
    /// </summary>
    public int Channels { get; init; } = 3;

    /// <summary>The shape of one image as the model input takes it: [1, C, H, W] or [1, H, W, C].</summary>
    public int[] Dims => Nhwc ? new[] { 1, Height, Width, Channels } : new[] { 1, Channels, Height, Width };
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
        // Channels are 1, 3 or 4: where only one of the two places holds such a count, that is the layout; where both do,
        // the rule from before four channels were read (1 or 3 in second place: NCHW; else in last place: NHWC).
        static bool Channel(long d) => d is 1 or 3 or 4;
        bool nhwc = layout switch
        {
            "nchw" => false,
            "nhwc" => true,
            null when Channel(input.Dims[1]) && !Channel(input.Dims[3]) => false,
            null when Channel(input.Dims[3]) && !Channel(input.Dims[1]) => true,
            null when input.Dims[1] is 1 or 3 => false,
            null when input.Dims[3] is 1 or 3 => true,
            null => throw new UsageException($"The layout of model input '{input.Name}' [{string.Join(",", input.Dims)}] is not clear: give --layout nchw or nhwc."),
            _ => throw new UsageException($"--layout must be nchw or nhwc, not '{layout}'."),
        };
        long channelCount = nhwc ? input.Dims[3] : input.Dims[1];
        if (!Channel(channelCount))
            throw new UsageException($"Model input '{input.Name}' has {channelCount} channels; images give 1 (gray), 3 (RGB) or 4 (RGBA).");
        int count = (int)channelCount;
        long h = nhwc ? input.Dims[1] : input.Dims[2], w = nhwc ? input.Dims[2] : input.Dims[3];
        var (height, width) = size ?? (h > 0 && w > 0 ? ((int)h, (int)w)
            : throw new UsageException($"Model input '{input.Name}' has a dynamic image size: give --image-size H,W."));
        if (h > 0 && w > 0 && (height != h || width != w))
            throw new UsageException($"--image-size {height},{width} does not fit model input '{input.Name}', which takes {h}×{w}.");
        float[] PerChannel(float[]? values, string option, float otherwise)
        {
            if (values is null) return Enumerable.Repeat(otherwise, count).ToArray();
            if (values.Length == 1) return Enumerable.Repeat(values[0], count).ToArray();
            if (values.Length == count) return values;
            throw new UsageException($"{option} takes one value, or one per channel: {count} for model input '{input.Name}', not {values.Length}.");
        }
        var means = PerChannel(mean, "--mean", 0);
        var stds = PerChannel(std, "--std", 1);
        if (stds.Any(s => s == 0))
            throw new UsageException("--std values must not be 0.");
        return new ImageSettings(height, width, nhwc, channels == "bgr", scale, means, stds, pixels) { Channels = count };
    }

    public static IDataView View(ModelInput input, IReadOnlyList<string> files, ImageSettings settings)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(input.Name, new VectorDataViewType(settings.Pixels ? NumberDataViewType.Byte : NumberDataViewType.Single, settings.Dims));
        return new RowsDataView(builder.ToSchema(), () => files.Select(f => new Array[] { Read(f, settings) }));
    }

    /// <summary>
    /// Decodes, resizes, composites over white (but for four channels) and normalises one image: float[], or byte[] for
    /// <see cref="ImageSettings.Pixels"/>.
    /// </summary>
    public static Array Read(string file, ImageSettings s)
    {
        using var decoded = SKBitmap.Decode(file) ?? throw new UsageException($"'{file}' is not an image this tool can read.");
        using var target = new SKBitmap(new SKImageInfo(s.Width, s.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(target))
        using (var image = SKImage.FromBitmap(decoded))
        {
            canvas.Clear(s.Channels == 4 ? SKColors.Transparent : SKColors.White);
            canvas.DrawImage(image, new SKRect(0, 0, s.Width, s.Height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
        }
        int channels = s.Channels, size = channels * s.Height * s.Width;
        var floats = s.Pixels ? null : new float[size];
        var bytes = s.Pixels ? new byte[size] : null;
        Span<float> pixel = stackalloc float[4];
        for (int y = 0; y < s.Height; y++)
            for (int x = 0; x < s.Width; x++)
            {
                var c = target.GetPixel(x, y);
                if (channels == 1)
                    pixel[0] = (c.Red * 299 + c.Green * 587 + c.Blue * 114) / 1000f;
                else
                {
                    pixel[0] = s.Bgr ? c.Blue : c.Red;
                    pixel[1] = c.Green;
                    pixel[2] = s.Bgr ? c.Red : c.Blue;
                    pixel[3] = c.Alpha;
                }
                for (int k = 0; k < channels; k++)
                {
                    int at = s.Nhwc ? (y * s.Width + x) * channels + k : (k * s.Height + y) * s.Width + x;
                    if (bytes is not null) bytes[at] = (byte)MathF.Round(pixel[k]);
                    else floats![at] = (pixel[k] * s.Scale - s.Mean[k]) / s.Std[k];
                }
            }
        return (Array?)bytes ?? floats!;
    }
}
