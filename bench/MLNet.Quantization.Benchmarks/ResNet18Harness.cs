using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// ResNet18 fp32 vs int8 vs simulated through the ML.NET pipeline: speed at a fixed intra-op thread count, model size,
// and feature agreement on held-out images. Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- resnet18 [threads] [calibrationRows] [rounds]
internal static class ResNet18Harness
{
    public static void Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0]) : 1;
        int calibrationRows = args.Length > 1 ? int.Parse(args[1]) : 200;
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 5;
        const int TimedRows = 100, HeldOutRows = 200;

        var mlContext = new MLContext(seed: 1);
        var dataDirectory = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var preprocess = mlContext.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess);
        IDataView Preprocessed(string split, int skip, int count)
        {
            // Preprocessing runs once, here, so that only ResNet18 is timed.
            var (images, labels) = FashionMnist.Read(dataDirectory, split, skip, count);
            var raw = FashionMnist.ToDataView(mlContext, images, labels);
            var vectors = preprocess.Fit(raw).Transform(raw).GetColumn<float[]>("PreprocessedInput")
                .Select(v => new Input { Input247 = v }).ToArray();
            return mlContext.Data.LoadFromEnumerable(vectors);
        }
        var calibration = Preprocessed("train-subset", 0, calibrationRows);
        var heldOut = Preprocessed("test-subset", 0, HeldOutRows);
        var timed = mlContext.Data.TakeRows(heldOut, TimedRows);

        var clock = Stopwatch.StartNew();
        var int8 = mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = ResNet18Model.ResNet18, IntraOpNumThreads = threads,
        }).Fit(calibration);
        double calibrationSeconds = clock.Elapsed.TotalSeconds;
        var simulated = mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = ResNet18Model.ResNet18, IntraOpNumThreads = threads, Mode = QuantizationMode.Simulated,
        }).Fit(calibration);
        var fp32 = mlContext.Transforms.ApplyOnnxModel(new OnnxOptions
        {
            ModelFile = ResNet18Model.ResNet18, InputColumns = new[] { ResNet18Model.Input }, OutputColumns = new[] { ResNet18Model.Output },
            IntraOpNumThreads = threads, InterOpNumThreads = 1,
        }).Fit(calibration);

        float[][] Features(ITransformer model, IDataView rows) => model.Transform(rows).GetColumn<float[]>(ResNet18Model.Output).ToArray();
        double MsPerRow(ITransformer model)
        {
            var watch = Stopwatch.StartNew();
            Features(model, timed);
            return watch.Elapsed.TotalMilliseconds / TimedRows;
        }

        // The same models run directly by ONNX Runtime, to show what the ML.NET pipeline adds per row.
        var timedInputs = timed.GetColumn<float[]>(ResNet18Model.Input).ToArray();
        var int8File = Path.Combine(Path.GetTempPath(), $"bench-int8-{Guid.NewGuid():N}.onnx");
        int8.ExportOnnx(int8File);
        InferenceSession Session(string file) => new(file, new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 });
        using var rawFp32 = Session(ResNet18Model.ResNet18);
        using var rawInt8 = Session(int8File);
        double RawMsPerRow(InferenceSession session)
        {
            var watch = Stopwatch.StartNew();
            foreach (var input in timedInputs)
            {
                using var value = OrtValue.CreateTensorValueFromMemory(input, new long[] { 1, 3, 224, 224 });
                using var outputs = session.Run(Ort.RunOptions, new[] { ResNet18Model.Input }, new[] { value }, new[] { ResNet18Model.Output });
            }
            return watch.Elapsed.TotalMilliseconds / TimedRows;
        }

        var models = new (string Name, Func<double> Run)[]
        {
            ("fp32", () => MsPerRow(fp32)), ("int8", () => MsPerRow(int8)), ("simulated", () => MsPerRow(simulated)),
            ("fp32, raw ONNX Runtime", () => RawMsPerRow(rawFp32)), ("int8, raw ONNX Runtime", () => RawMsPerRow(rawInt8)),
        };
        foreach (var (_, run) in models) run(); // warm-up
        var times = models.ToDictionary(m => m.Name, _ => new List<double>());
        for (int round = 0; round < rounds; round++)
            foreach (var (name, run) in models) times[name].Add(run()); // interleaved, so drift hits all alike
        double Median(List<double> xs) => xs.OrderBy(x => x).ElementAt(xs.Count / 2);

        var reference = Features(fp32, heldOut);
        var int8Features = Features(int8, heldOut);
        var simulatedFeatures = Features(simulated, heldOut);
        double[] Cosines(float[][] a, float[][] b) => a.Zip(b, Report.Cosine).ToArray();
        var int8Cosine = Cosines(reference, int8Features);
        var simCosine = Cosines(simulatedFeatures, int8Features);
        long floatSize = new FileInfo(ResNet18Model.ResNet18).Length;

        Console.WriteLine($"ResNet18, {Environment.ProcessorCount} cores, intra-op threads {threads}, calibrated on {calibrationRows} images in {calibrationSeconds:F1} s, " +
            $"timed on {TimedRows} rows × {rounds} rounds, features compared on {HeldOutRows} held-out images");
        Console.WriteLine();
        Report.Speed(models.Select(m => (m.Name, times[m.Name],
            m.Name.StartsWith("fp32") ? floatSize : m.Name.StartsWith("int8") ? int8.ModelSize : simulated.ModelSize)).ToList(), Median);
        Console.WriteLine();
        Console.WriteLine($"int8 vs fp32 feature cosine: mean {int8Cosine.Average():F4}, worst {int8Cosine.Min():F4}");
        Console.WriteLine($"simulated vs int8 feature cosine: mean {simCosine.Average():F5}, worst {simCosine.Min():F5}");
        Console.WriteLine();
        Report.Ops(int8File, threads);
        File.Delete(int8File);
        int8.Dispose();
        simulated.Dispose();
    }

    public sealed class Input
    {
        [VectorType(1, 3, 224, 224)]
        public float[] Input247 { get; set; } = Array.Empty<float>();
    }
}
