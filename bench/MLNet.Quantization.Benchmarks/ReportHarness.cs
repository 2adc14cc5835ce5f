using Microsoft.ML;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// Writes the calibration report of ResNet18 (calibrated on Fashion-MNIST images) as HTML and CSV.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- report [directory] [calibrationRows]
internal static class ReportHarness
{
    public static void Run(string[] args)
    {
        var directory = args.Length > 0 ? args[0] : "docs/report";
        int rows = args.Length > 1 ? int.Parse(args[1]) : 200;
        Directory.CreateDirectory(directory);
        var ml = new MLContext(seed: 1);
        var (images, labels) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset", 0, rows);
        var raw = FashionMnist.ToDataView(ml, images, labels);
        var data = ml.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(ml.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput")).Fit(raw).Transform(raw);
        using var model = ml.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18).Fit(data);
        var report = model.Report;
        report.WriteHtml(Path.Combine(directory, "resnet18-report.html"));
        report.WriteCsv(Path.Combine(directory, "resnet18-report.csv"));
        Console.WriteLine($"Output cosine {report.OutputCosine:F5} on {report.Rows} rows; the layers that add the most noise:");
        foreach (var t in report.Ranked.Take(5))
            Console.WriteLine($"  {t.Tensor} ({t.OpType} {t.Node}): adds {t.AddedNoise:E2}, SQNR {t.SqnrDb:F1} dB, clipped {t.ClippedFraction:P3}");
    }
}
