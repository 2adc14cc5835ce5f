using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace MLNet.Quantization.Benchmarks;

/// <summary>Tables the harnesses print.</summary>
internal static class Report
{
    public static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        if (na == 0 || nb == 0) return na == nb ? 1 : 0; // two zero vectors agree; one zero vector does not
        return dot / Math.Sqrt(na * nb);
    }

    /// <summary>Median, min, max and speed-up against the fp32 row of the same runner (ML.NET or raw ONNX Runtime).</summary>
    public static void Speed(List<(string Name, List<double> Times, long Size)> rows, Func<List<double>, double> median)
    {
        long floatSize = rows[0].Size;
        Console.WriteLine("| model | ms/row (median) | min | max | speed-up vs fp32 of the same runner | model size |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (name, t, size) in rows)
        {
            var baseline = rows.First(r => r.Name == (name.EndsWith("Runtime") ? "fp32, raw ONNX Runtime" : "fp32")).Times;
            Console.WriteLine($"| {name} | {median(t):F2} | {t.Min():F2} | {t.Max():F2} | {median(baseline) / median(t):F2}x | {size / 1e6:F1} MB ({100.0 * size / floatSize:F1}%) |");
        }
    }

    /// <summary>
    /// Per op type of the realized model: how many nodes read a dequantized activation (quantized) and how many stay
    /// float; then the kernels ONNX Runtime built from it.
    /// </summary>
    public static void Ops(string realizedFile, int threads)
    {
        var realized = ModelProto.Parser.ParseFrom(File.ReadAllBytes(realizedFile));
        var initializers = realized.Graph.Initializer.ToDictionary(i => i.Name);
        var dequantized = realized.Graph.Node.Where(n => n.OpType == "DequantizeLinear").Select(n => n.Output[0]).ToHashSet();
        var weights = realized.Graph.Node.Where(n => n.OpType == "DequantizeLinear" && initializers.TryGetValue(n.Input[0], out var init) && init.Dims.Count > 0)
            .Select(n => n.Output[0]).ToHashSet();
        Console.WriteLine("| op (realized model) | quantized | float |");
        Console.WriteLine("|---|---|---|");
        foreach (var group in realized.Graph.Node.Where(n => n.OpType is not ("QuantizeLinear" or "DequantizeLinear" or "Constant"))
                     .GroupBy(n => n.OpType).OrderByDescending(g => g.Count()))
        {
            int quantized = group.Count(n => n.Input.Any(i => dequantized.Contains(i) && !weights.Contains(i)) || n.Input.Any(weights.Contains));
            Console.WriteLine($"| {group.Key} | {quantized} | {group.Count() - quantized} |");
        }
        var optimizedFile = realizedFile + ".optimized.onnx";
        using (var options = new SessionOptions { OptimizedModelFilePath = optimizedFile, IntraOpNumThreads = threads })
        using (new InferenceSession(realizedFile, options)) { }
        var kernels = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimizedFile)).Graph.Node.GroupBy(n => n.OpType).OrderByDescending(g => g.Count());
        Console.WriteLine();
        Console.WriteLine("ONNX Runtime's optimized graph: " + string.Join(", ", kernels.Select(g => $"{g.Key}×{g.Count()}")));
        File.Delete(optimizedFile);
    }
}
