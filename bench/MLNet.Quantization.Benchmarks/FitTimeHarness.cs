using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// Issue 11: how long Fit takes against one fp32 scoring pass of ML.NET over the same rows, per configuration, with
// each pass's share; and how long the fallback takes. Both at ONNX Runtime's default thread count, as Fit runs.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- fit-time [resnetRows] [miniLmRows] [only configurations containing this] [resnet|minilm|both]
// The last column is the process's peak working set so far: run one configuration and one model per process to read it as that Fit's.
// The passes column ends with the number of ONNX Runtime sessions that the Fit opened and the managed memory it allocated.
internal static class FitTimeHarness
{
    private static readonly (string Name, Action<QuantizingEstimator.Options> Set)[] Configurations =
    {
        ("defaults", _ => { }),
        ("defaults without the deployment check", o => o.CheckDeployment = false),
        ("issue 17: recipe defaults, not tuned", o => o.Tuning = null),
        ("issue 17: defaults, tuned", _ => { }),
        ("nearest rounding: defaults, tuned", o => o.WeightRounding = WeightRounding.Nearest),
        ("+ fast bias correction", o => o.BiasCorrection = BiasCorrection.Fast),
        ("+ full bias correction", o => o.BiasCorrection = BiasCorrection.Full),
        ("full bias correction alone, not tuned", o => { o.Tuning = null; o.BiasCorrection = BiasCorrection.Full; }),
        ("fast bias correction alone, not tuned", o => { o.Tuning = null; o.BiasCorrection = BiasCorrection.Fast; }),
        ("+ cross-layer equalization", o => o.CrossLayerEqualization = true),
        ("+ SmoothQuant 0.5", o => o.SmoothQuantAlpha = 0.5),
        ("KL divergence", o => o.ActivationCalibration = CalibrationMethod.KlDivergence),
        ("fallback to 0.998 output cosine", o => o.MinimumOutputCosine = 0.998),
    };

    public static void Run(string[] args)
    {
        int resnetRows = args.Length > 0 ? int.Parse(args[0]) : 500;
        int miniLmRows = args.Length > 1 ? int.Parse(args[1]) : 200;
        string only = args.Length > 2 ? args[2] : "";
        string models = args.Length > 3 ? args[3] : "both";
        var ml = new MLContext(seed: 1);
        var root = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var full = Path.Combine(root, "full");
        var (images, labels) = File.Exists(Path.Combine(full, "train-images-idx3-ubyte.gz"))
            ? FashionMnist.Read(full, "train", 0, resnetRows) : FashionMnist.Read(root, "train-subset", 0, Math.Min(resnetRows, 1000));
        var raw = FashionMnist.ToDataView(ml, images, labels);
        var preprocess = ml.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(ml.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput")).Fit(raw);
        var resnetData = ml.Data.Cache(preprocess.Transform(raw), ResNet18Model.Input);
        resnetData.GetColumn<float[]>(ResNet18Model.Input).Count();

        var (texts, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        var text = ml.Data.LoadFromEnumerable(texts.Take(miniLmRows).Select(t => new MiniLm.TextRow { Text = t }));
        var tokens = MiniLm.Tokenize(ml).Fit(text).Transform(text);
        var miniLmData = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<MiniLm.Tokens>(tokens, reuseRowObject: false).ToArray());

        Console.WriteLine($"Fit time against one fp32 scoring pass over the same rows, CPU {Realize.CpuFeatures.Describe()}, {Environment.ProcessorCount} cores, ONNX Runtime's default threads");
        Console.WriteLine();
        Console.WriteLine("| model | rows | configuration | fp32 pass | Fit | Fit / fp32 pass | passes (s) | peak working set |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        if (models != "minilm")
            Measure(ml, "ResNet18", ResNet18Model.ResNet18, new[] { ResNet18Model.Input }, new[] { ResNet18Model.Output }, resnetData, resnetRows, only);
        if (models != "resnet")
            Measure(ml, "all-MiniLM-L6-v2", MiniLm.ModelFile, new[] { "input_ids", "attention_mask", "token_type_ids" }, new[] { MiniLm.Output },
            miniLmData, miniLmRows, only);
    }

    private static void Measure(MLContext ml, string name, string model, string[] inputs, string[] outputs, IDataView rows, int count, string only)
    {
        var fp32 = ml.Transforms.ApplyOnnxModel(new OnnxOptions { ModelFile = model, InputColumns = inputs, OutputColumns = outputs }).Fit(rows);
        double FloatPass()
        {
            var clock = Stopwatch.StartNew();
            fp32.Transform(rows).GetColumn<float[]>(outputs[0]).Count();
            return clock.Elapsed.TotalSeconds;
        }
        FloatPass(); // warm-up
        foreach (var (configuration, set) in Configurations.Where(c => c.Name.Contains(only, StringComparison.Ordinal)))
        {
            double floatSeconds = FloatPass();
            var streams = new Dictionary<int, (TimeSpan First, TimeSpan Last)>();
            var watch = Stopwatch.StartNew();
            var options = new QuantizingEstimator.Options
            {
                ModelFile = model, InputColumnNames = inputs, OutputColumnNames = outputs,
                // Seconds between the first and the last report of each progress pass (1 ranges, 2 histograms, 3 measuring, 4 algorithms).
                Progress = new Reporter(p => streams[p.Pass] = streams.TryGetValue(p.Pass, out var t) ? (t.First, watch.Elapsed) : (watch.Elapsed, watch.Elapsed)),
            };
            set(options);
            var clock = Stopwatch.StartNew();
            watch.Restart();
            long sessions = Realize.Sessions.Opened;
            long allocated = GC.GetTotalAllocatedBytes(precise: true);
            using var fitted = ml.Transforms.QuantizeCalibrated(options).Fit(rows);
            double fitSeconds = clock.Elapsed.TotalSeconds;
            allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            if (fitted.Tuning is { } tuning) Console.Error.WriteLine(tuning.Summary + "\n" + tuning.ToCsv());
            if (fitted.Deployment is { } deployment) Console.Error.WriteLine($"{configuration}: {deployment.Summary}");
            string passes = string.Join(", ", fitted.FitTimings.Select(t => $"{t.Pass} {t.Seconds:F1}"))
                + "; streams " + string.Join(", ", streams.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {(kv.Value.Last - kv.Value.First).TotalSeconds:F1}"))
                + $"; {Realize.Sessions.Opened - sessions} sessions; {allocated / 1e6:F0} MB allocated";
            string dropped = options.MinimumOutputCosine is null ? "" : $"; {fitted.Report.FloatNodes.Count} nodes kept float, output cosine {fitted.Report.OutputCosine:F4}";
            Console.WriteLine($"| {name} | {count} | {configuration} | {floatSeconds:F1} s | {fitSeconds:F1} s | {fitSeconds / floatSeconds:F2}x | {passes}{dropped} | {Process.GetCurrentProcess().PeakWorkingSet64 / 1e6:F0} MB |");
        }
    }

    private sealed class Reporter : IProgress<CalibrationProgress>
    {
        private readonly Action<CalibrationProgress> _report;

        public Reporter(Action<CalibrationProgress> report) => _report = report;

        public void Report(CalibrationProgress value) => _report(value);
    }
}
