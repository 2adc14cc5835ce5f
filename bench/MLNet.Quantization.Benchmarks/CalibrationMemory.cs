using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

/// <summary>
/// Peak memory (VmHWM) of calibrating ResNet18 on N rows. Each N runs in a child process, so peaks do not mix.
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
        // 100 distinct preprocessed images, streamed N times by reference: the data source itself allocates nothing per
        // row, so the peak measures calibration (ONNX Runtime, ML.NET's cursor, the statistics), not the test data.
        var (images, labels) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset", count: 100);
        var raw = FashionMnist.ToDataView(mlContext, images, labels);
        var vectors = mlContext.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Fit(raw).Transform(raw).GetColumn<float[]>("PreprocessedInput").ToArray();
        var data = mlContext.Data.LoadFromEnumerable(Rows(vectors, rows));
        var clock = Stopwatch.StartNew();
        using var model = mlContext.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18).Fit(data);
        double seconds = clock.Elapsed.TotalSeconds;
        var peak = File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM:"));
        Console.WriteLine($"| {rows} | {peak["VmHWM:".Length..].Trim()} | {seconds:F0} s |");
    }

    private static IEnumerable<Input> Rows(float[][] vectors, int rows)
    {
        for (int i = 0; i < rows; i++) yield return new Input { Input247 = vectors[i % vectors.Length] };
    }

    /// <summary>A preprocessed ResNet18 input row.</summary>
    public sealed class Input
    {
        /// <summary>The model input.</summary>
        [VectorType(1, 3, 224, 224)]
        public float[] Input247 { get; set; } = Array.Empty<float>();
    }
}
