using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Benchmarks;

// Where a zoo model's int8 time goes: the model fitted as realized (no deployment check, no tuning), then the float and
// the int8 model each run by ONNX Runtime with profiling on (1 thread, every optimization, as ML.NET runs them), and
// the kernel time summed per op type of the optimized graph, with each op type's node count.
// Then the same per weighted layer (Conv, MatMul, Gemm of the original graph): its own kernel in each model.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- zoo-profile NAME [runs]
internal static class ZooProfile
{
    public static void Run(string[] args)
    {
        var model = ZooHarness.Find(args[0]);
        int runs = args.Length > 1 ? int.Parse(args[1]) : 20;
        var ml = new MLContext(seed: 1);
        var graph = Onnx.OnnxGraph.Load(model.File);
        var (inputs, rows, view) = ZooHarness.CalibrationRows(model);
        var directory = Directory.CreateTempSubdirectory("zoo-profile-").FullName;
        try
        {
            using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
            {
                ModelFile = model.File, ShapeDictionary = model.Shapes, CheckDeployment = false, Tuning = null, IntraOpNumThreads = 1,
            }).Fit(view);
            var int8 = Path.Combine(directory, "int8.onnx");
            fitted.ExportOnnx(int8);
            var fp32 = Path.Combine(directory, "fp32.onnx");
            if (Onnx.Float16Conversion.Convert(graph).Count > 0) File.WriteAllBytes(fp32, graph.ToBytes());
            else File.Copy(model.File, fp32);
            Console.WriteLine($"{model.Name}, CPU {Realize.CpuFeatures.Describe()}, 1 thread, {runs} runs of the first row each");
            var first = rows[0];
            var (a, fp32Layers) = Profile(fp32, directory, "fp32", inputs.Select(i => i.Name).ToArray(), first, model.Shapes, runs);
            var (b, int8Layers) = Profile(int8, directory, "int8", inputs.Select(i => i.Name).ToArray(), first, model.Shapes, runs);
            Console.WriteLine();
            Console.WriteLine("| op type (optimized graph) | fp32 nodes | fp32 ms/run | int8 nodes | int8 ms/run |");
            Console.WriteLine("|---|---|---|---|---|");
            foreach (var op in a.Keys.Union(b.Keys).OrderByDescending(o => Math.Max(a.GetValueOrDefault(o).Ms, b.GetValueOrDefault(o).Ms)))
            {
                var (fn, fm) = a.GetValueOrDefault(op);
                var (qn, qm) = b.GetValueOrDefault(op);
                Console.WriteLine($"| {op} | {fn} | {fm / runs:F3} | {qn} | {qm / runs:F3} |");
            }
            Console.WriteLine($"| total | {a.Values.Sum(v => v.Nodes)} | {a.Values.Sum(v => v.Ms) / runs:F3} | {b.Values.Sum(v => v.Nodes)} | {b.Values.Sum(v => v.Ms) / runs:F3} |");
            // Per weighted layer: its own kernel in each model (the float Conv with a fused activation, the QLinearConv).
            var fl = Layers(graph, fp32Layers);
            var ql = Layers(graph, int8Layers);
            Console.WriteLine();
            Console.WriteLine("| layer | op | float µs/run | int8 µs/run | int8 / float |");
            Console.WriteLine("|---|---|---|---|---|");
            foreach (var layer in fl.Keys.Union(ql.Keys).OrderByDescending(l => ql.GetValueOrDefault(l) - fl.GetValueOrDefault(l)))
            {
                double x = fl.GetValueOrDefault(layer) * 1000 / runs, y = ql.GetValueOrDefault(layer) * 1000 / runs;
                Console.WriteLine($"| {layer} | {graph.FindNode(layer)?.OpType} | {x:F1} | {y:F1} | {(x > 0 ? y / x : double.NaN):F2} |");
            }
            Console.WriteLine($"| slower in int8 | | {fl.Where(kv => ql.GetValueOrDefault(kv.Key) > kv.Value).Sum(kv => kv.Value) * 1000 / runs:F1} | {ql.Where(kv => kv.Value > fl.GetValueOrDefault(kv.Key)).Sum(kv => kv.Value) * 1000 / runs:F1} | |");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static readonly HashSet<string> Weighted = new(StringComparer.Ordinal)
        { "Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul" };

    // Kernel milliseconds per original Conv/MatMul/Gemm node: ONNX Runtime names a fused QLinear node '<node>_token_N'
    // and an NCHWc Conv '<its last output>_nchwc' (the activation's output when one is fused into it).
    private static Dictionary<string, double> Layers(Onnx.OnnxGraph graph, Dictionary<string, double> times)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, ms) in times)
        {
            var node = graph.FindNode(name) ?? graph.FindNode(System.Text.RegularExpressions.Regex.Replace(name, "_token_[0-9]+$", ""));
            if (node is null && name.EndsWith("_nchwc", StringComparison.Ordinal))
            {
                node = graph.Producer(name[..^6]);
                for (int up = 0; up < 3 && node is not null && node.OpType is not ("Conv" or "MatMul" or "Gemm") && node.Input.Count > 0; up++)
                    node = graph.Producer(node.Input[0]);
            }
            if (node is null) continue;
            result[Onnx.OnnxGraph.Label(node)] = result.GetValueOrDefault(Onnx.OnnxGraph.Label(node)) + ms;
        }
        return result;
    }

    // Per op type: nodes in the optimized graph and the summed kernel milliseconds over the runs (the first run left out).
    // Also the summed kernel milliseconds of each Conv, MatMul or Gemm kernel, by the optimized graph's node name.
    private static (Dictionary<string, (int Nodes, double Ms)> Ops, Dictionary<string, double> Layers) Profile(string file, string directory, string name, string[] inputs, Array[] row,
        Dictionary<string, int[]> shapes, int runs)
    {
        var optimized = Path.Combine(directory, name + "-optimized.onnx");
        using var options = new SessionOptions { IntraOpNumThreads = 1, OptimizedModelFilePath = optimized, EnableProfiling = true,
            ProfileOutputPathPrefix = Path.Combine(directory, name) };
        using var session = new InferenceSession(file, options);
        var values = inputs.Select((n, k) => OrtValue.CreateTensorValueFromMemory((float[])row[k], shapes[n].Select(d => (long)d).ToArray())).ToList();
        using (var runOptions = new RunOptions())
            for (int r = 0; r <= runs; r++)
            {
                using var result = session.Run(runOptions, inputs, values, session.OutputNames);
            }
        var trace = session.EndProfiling();
        foreach (var v in values) v.Dispose();
        var counts = Onnx.OnnxGraph.Load(optimized).Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        var times = new Dictionary<string, double>();
        var layers = new Dictionary<string, double>(StringComparer.Ordinal);
        using var json = JsonDocument.Parse(File.ReadAllText(trace));
        int run = -1;
        foreach (var e in json.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() == "Session" && e.GetProperty("name").GetString() == "model_run") run++;
            if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
            if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var op)) continue;
            // model_run events close after their nodes: nodes before the first model_run event belong to run 0.
            if (run < 0) continue;
            times[op.GetString()!] = times.GetValueOrDefault(op.GetString()!) + e.GetProperty("dur").GetInt64() / 1000.0;
            if (Weighted.Contains(op.GetString()!))
            {
                var node = e.GetProperty("name").GetString()![..^"_kernel_time".Length];
                layers[node] = layers.GetValueOrDefault(node) + e.GetProperty("dur").GetInt64() / 1000.0;
            }
        }
        // ZOO_PROFILE_KEEP=DIR: the trace, the model and ONNX Runtime's optimized graph are copied there to read.
        if (Environment.GetEnvironmentVariable("ZOO_PROFILE_KEEP") is { Length: > 0 } keep)
            foreach (var (from, to) in new[] { (trace, ".json"), (optimized, "-optimized.onnx"), (file, ".onnx") })
                File.Copy(from, Path.Combine(keep, name + to), overwrite: true);
        File.Delete(trace);
        return (counts.Keys.Union(times.Keys).ToDictionary(k => k, k => (counts.GetValueOrDefault(k), times.GetValueOrDefault(k))), layers);
    }
}
