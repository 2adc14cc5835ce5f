using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// all-MiniLM-L6-v2 fp32 vs int8 vs simulated through the ML.NET pipeline: speed at 128 tokens and a fixed intra-op
// thread count, size, embedding agreement on held-out WordNet glosses, and which ops ran quantized.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- minilm [threads] [calibrationRows] [rounds] [method=Max] [asymmetric=true] [smoothQuantAlpha=0.5]
internal static class MiniLmHarness
{
    private static readonly string[] Inputs = { "input_ids", "attention_mask", "token_type_ids" };

    public static void Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0]) : 1;
        int calibrationRows = args.Length > 1 ? int.Parse(args[1]) : 200;
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 5;
        var method = args.Length > 3 ? Enum.Parse<CalibrationMethod>(args[3], ignoreCase: true) : CalibrationMethod.Max;
        bool asymmetric = args.Length > 4 ? bool.Parse(args[4]) : true;
        // Issue 11: an int8 model with SmoothQuant (this alpha) is timed beside the plain one.
        double alpha = args.Length > 5 ? double.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture) : 0.5;
        const int TimedRows = 50;

        var ml = new MLContext(seed: 1);
        var (texts, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        IDataView Tokens(IEnumerable<string> rows, bool pad = false)
        {
            // Tokenized once, here, so that only the model is timed.
            var text = ml.Data.LoadFromEnumerable(rows.Select(t => new MiniLm.TextRow { Text = t }));
            var tokens = MiniLm.Tokenize(ml, pad).Fit(text).Transform(text);
            return ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<MiniLm.Tokens>(tokens, reuseRowObject: false).ToArray());
        }
        var calibration = Tokens(texts.Take(calibrationRows));
        var heldOut = Tokens(texts.Skip(calibrationRows));
        var timed = Tokens(texts.Skip(calibrationRows).Take(TimedRows), pad: true);

        var clock = Stopwatch.StartNew();
        QuantizingTransformer Quantize(QuantizationMode mode, double? smoothQuantAlpha = null) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = MiniLm.ModelFile, OutputColumnNames = new[] { MiniLm.Output }, IntraOpNumThreads = threads, Mode = mode, ActivationCalibration = method,
            AsymmetricActivations = asymmetric, SmoothQuantAlpha = smoothQuantAlpha,
        }).Fit(calibration);
        var int8 = Quantize(QuantizationMode.Int8);
        double calibrationSeconds = clock.Elapsed.TotalSeconds;
        using var smoothed = Quantize(QuantizationMode.Int8, alpha);
        var simulated = Quantize(QuantizationMode.Simulated);
        var fp32 = ml.Transforms.ApplyOnnxModel(new OnnxOptions
        {
            ModelFile = MiniLm.ModelFile, InputColumns = Inputs, OutputColumns = new[] { MiniLm.Output },
            IntraOpNumThreads = threads, InterOpNumThreads = 1,
        }).Fit(calibration);
        var pool = MiniLm.MeanPool(ml).Fit(fp32.Transform(calibration));
        float[][] Embeddings(ITransformer model, IDataView rows) => pool.Transform(model.Transform(rows)).GetColumn<float[]>("Embedding").ToArray();

        double MsPerRow(ITransformer model)
        {
            var watch = Stopwatch.StartNew();
            model.Transform(timed).GetColumn<float[]>(MiniLm.Output).Count();
            return watch.Elapsed.TotalMilliseconds / TimedRows;
        }
        var int8File = Path.Combine(Path.GetTempPath(), $"bench-minilm-int8-{Guid.NewGuid():N}.onnx");
        int8.ExportOnnx(int8File);
        var timedTokens = ml.Data.CreateEnumerable<MiniLm.Tokens>(timed, reuseRowObject: false).ToArray();
        InferenceSession Session(string file) => new(file, new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 });
        using var rawFp32 = Session(MiniLm.ModelFile);
        using var rawInt8 = Session(int8File);
        double RawMsPerRow(InferenceSession session)
        {
            var watch = Stopwatch.StartNew();
            foreach (var t in timedTokens)
            {
                var shape = new long[] { 1, t.input_ids.Length };
                using var ids = OrtValue.CreateTensorValueFromMemory(t.input_ids, shape);
                using var mask = OrtValue.CreateTensorValueFromMemory(t.attention_mask, shape);
                using var types = OrtValue.CreateTensorValueFromMemory(t.token_type_ids, shape);
                using var outputs = session.Run(Ort.RunOptions, Inputs, new[] { ids, mask, types }, new[] { MiniLm.Output });
            }
            return watch.Elapsed.TotalMilliseconds / TimedRows;
        }

        var runners = new (string Name, Func<double> Run, long Size)[]
        {
            ("fp32", () => MsPerRow(fp32), new FileInfo(MiniLm.ModelFile).Length),
            ("int8", () => MsPerRow(int8), int8.ModelSize),
            ("simulated", () => MsPerRow(simulated), simulated.ModelSize),
            ($"int8, SmoothQuant {alpha}", () => MsPerRow(smoothed), smoothed.ModelSize),
            ("fp32, raw ONNX Runtime", () => RawMsPerRow(rawFp32), new FileInfo(MiniLm.ModelFile).Length),
            ("int8, raw ONNX Runtime", () => RawMsPerRow(rawInt8), int8.ModelSize),
        };
        foreach (var runner in runners) runner.Run();
        var times = runners.ToDictionary(r => r.Name, _ => new List<double>());
        for (int round = 0; round < rounds; round++)
            foreach (var runner in runners) times[runner.Name].Add(runner.Run());
        double Median(List<double> xs) => xs.OrderBy(x => x).ElementAt(xs.Count / 2);

        var reference = Embeddings(fp32, heldOut);
        var int8Cosine = reference.Zip(Embeddings(int8, heldOut), Report.Cosine).OrderBy(c => c).ToArray();
        var simCosine = Embeddings(simulated, heldOut).Zip(Embeddings(int8, heldOut), Report.Cosine).OrderBy(c => c).ToArray();

        Console.WriteLine($"all-MiniLM-L6-v2, {Environment.ProcessorCount} cores, intra-op threads {threads}, calibrated ({method}, {(asymmetric ? "asymmetric" : "symmetric")} activations) on {calibrationRows} glosses " +
            $"in {calibrationSeconds:F1} s, timed on {TimedRows} rows padded to 128 tokens × {rounds} rounds, embeddings compared on {reference.Length} held-out glosses");
        Console.WriteLine();
        Report.Speed(runners.Select(r => (r.Name, times[r.Name], r.Size)).ToList(), Median);
        Console.WriteLine();
        Console.WriteLine($"int8 vs fp32 embedding cosine: mean {int8Cosine.Average():F4}, worst 1% {int8Cosine[int8Cosine.Length / 100]:F4}, worst {int8Cosine[0]:F4}");
        Console.WriteLine($"simulated vs int8 embedding cosine: mean {simCosine.Average():F5}, worst {simCosine[0]:F5}");
        Console.WriteLine();
        Report.Ops(int8File, threads);
        File.Delete(int8File);
        int8.Dispose();
        simulated.Dispose();
    }
}
