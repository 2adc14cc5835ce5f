using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

/// <summary>
/// Peak memory (VmHWM) of calibrating ResNet18 on N rows. Each N runs in a child process, so peaks do not mix. Rows are
/// made on the fly from the shipped Fashion-MNIST images (repeated), never held in memory.
/// </summary>
internal static class CalibrationMemory
{
    public static void Run(string[] args)
    {
        if (args.Length == 2 && args[0] == "--child")
        {
            Child(int.Parse(args[1]));
            return;
        }
        var counts = args.Length > 0 ? args.Select(int.Parse).ToArray() : new[] { 1000, 10000 };
        Console.WriteLine("| calibration rows | peak resident memory | calibration time |");
        Console.WriteLine("|---|---|---|");
        foreach (var rows in counts)
        {
            var start = new ProcessStartInfo(Environment.ProcessPath!, $"memory --child {rows}") { RedirectStandardOutput = true };
            using var child = Process.Start(start)!;
            string output = child.StandardOutput.ReadToEnd().Trim();
            child.WaitForExit();
            Console.WriteLine(output);
        }
    }

    private static void Child(int rows)
    {
        var mlContext = new MLContext(seed: 1);
        var (images, labels) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset");
        var repeated = Enumerable.Range(0, rows).Select(i => images[i % images.Length]).ToArray();
        var repeatedLabels = Enumerable.Range(0, rows).Select(i => labels[i % labels.Length]).ToArray();
        var raw = FashionMnist.ToDataView(mlContext, repeated, repeatedLabels);
        var pipeline = mlContext.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(mlContext.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput"))
            .Append(mlContext.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18));
        var clock = Stopwatch.StartNew();
        using var model = (IDisposable)pipeline.Fit(raw).LastTransformer;
        double seconds = clock.Elapsed.TotalSeconds;
        var peak = File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM:"));
        Console.WriteLine($"| {rows} | {peak["VmHWM:".Length..].Trim()} | {seconds:F0} s |");
    }
}
