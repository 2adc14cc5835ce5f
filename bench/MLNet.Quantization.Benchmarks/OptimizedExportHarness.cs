using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// all-MiniLM-L6-v2 as ONNX Runtime's own optimizer saves it (com.microsoft FusedMatMul, BiasGelu, FusedGemm and
// LayerNormalization, as an "optimized" export ships), through Fit with the defaults, beside the model as published.
// Usage: optimized-export [BASIC|EXTENDED] [rows]
internal static class OptimizedExportHarness
{
    public static void Run(string[] args)
    {
        string level = args.Length > 0 ? args[0] : "EXTENDED";
        int rows = args.Length > 1 ? int.Parse(args[1]) : 200;
        using var directory = new ZooHarness.TemporaryDirectory();
        var optimized = Path.Combine(directory.Path, $"minilm-{level}.onnx");
        using (var options = new SessionOptions { GraphOptimizationLevel = Enum.Parse<GraphOptimizationLevel>("ORT_ENABLE_" + level), OptimizedModelFilePath = optimized })
        using (new InferenceSession(MiniLm.ModelFile, options)) { }
        var g = Onnx.OnnxGraph.Load(optimized);
        Console.WriteLine("ops: " + string.Join(", ", g.Graph.Node.GroupBy(n => (n.Domain ?? "") + ":" + n.OpType).Select(x => $"{x.Key} {x.Count()}")));
        var ml = new MLContext(seed: 1);
        var (texts, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        var text = ml.Data.LoadFromEnumerable(texts.Take(rows).Select(t => new MiniLm.TextRow { Text = t }));
        var tokens = MiniLm.Tokenize(ml).Fit(text).Transform(text);
        var data = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<MiniLm.Tokens>(tokens, reuseRowObject: false).ToArray());
        foreach (var file in new[] { MiniLm.ModelFile, optimized })
        {
            var clock = Stopwatch.StartNew();
            try
            {
                using var t = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = file, OutputColumnNames = new[] { MiniLm.Output } }).Fit(data);
                Console.WriteLine($"{Path.GetFileName(file)}: Fit {clock.Elapsed.TotalSeconds:F1} s; {t.Deployment?.Summary}");
                Console.WriteLine(t.Tuning?.Summary);
                Console.WriteLine($"agreement: {t.Agreement}");
            }
            catch (Exception e)
            {
                Console.WriteLine($"{Path.GetFileName(file)}: {e.GetType().Name}: {e.Message}");
            }
        }
    }
}
