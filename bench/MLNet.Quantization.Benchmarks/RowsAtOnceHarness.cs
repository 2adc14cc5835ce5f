using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// Issue 17: how fast Fit's streams can run ResNet18's rows on this CPU. Per row: ML.NET's scoring pass, ONNX Runtime
// one row at a time (its default threads, and one thread), and several rows at once (RowReader.ForEachInOrder's way),
// for the float model as it is and with every quantized activation as an extra output (the statistics stream).
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- rows-at-once [rows]
internal static class RowsAtOnceHarness
{
    public static void Run(string[] args)
    {
        int rows = args.Length > 0 ? int.Parse(args[0]) : 200;
        var ml = new MLContext(seed: 1);
        var (images, labels) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset", 0, rows);
        var raw = FashionMnist.ToDataView(ml, images, labels);
        var preprocess = ml.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(ml.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput")).Fit(raw);
        var data = ml.Data.Cache(preprocess.Transform(raw), ResNet18Model.Input);
        var inputs = data.GetColumn<float[]>(ResNet18Model.Input).ToArray();

        var graph = GraphPreparation.Prepare(OnnxGraph.Load(ResNet18Model.ResNet18));
        var activations = Annotate.Annotator.Annotate(graph).Activations.Select(a => a.Tensor).ToList();
        string input = graph.RealInputs().First().Name, output = graph.Graph.Output[0].Name;
        var shape = new long[] { 1, 3, 224, 224 };

        Console.WriteLine($"ResNet18, {rows} Fashion-MNIST rows, CPU {Realize.CpuFeatures.Describe()}, {Environment.ProcessorCount} cores; ms per row");
        Console.WriteLine();
        Console.WriteLine("| model | how | ms per row |");
        Console.WriteLine("|---|---|---|");
        using (var fp32 = ml.Transforms.ApplyOnnxModel(new OnnxOptions { ModelFile = ResNet18Model.ResNet18, InputColumns = new[] { ResNet18Model.Input }, OutputColumns = new[] { ResNet18Model.Output } }).Fit(data))
        {
            fp32.Transform(data).GetColumn<float[]>(ResNet18Model.Output).Count(); // warm-up
            var clock = Stopwatch.StartNew();
            fp32.Transform(data).GetColumn<float[]>(ResNet18Model.Output).Count();
            Console.WriteLine($"| float | ML.NET's scoring pass (ApplyOnnxModel, GetColumn) | {clock.Elapsed.TotalMilliseconds / rows:F1} |");
        }
        foreach (var (label, extra) in new[] { ("float", new List<string>()), ($"float + {activations.Count} activations as outputs", activations) })
        {
            var names = new[] { output }.Concat(extra.Where(t => t != input && t != output)).ToArray();
            foreach (int? threads in new int?[] { null, 1 })
            {
                using var session = Realize.Sessions.Create(graph, extra, label, threads);
                for (int atOnce = 1; atOnce <= Math.Max(2, Calibration.RowReader.Workers); atOnce++)
                {
                    Time(session, names, 1); // warm-up
                    double ms = Time(session, names, atOnce);
                    Console.WriteLine($"| {label} | {atOnce} row(s) at once, {(threads is null ? "ONNX Runtime's default threads" : $"{threads} intra-op thread")} | {ms:F1} |");
                }
            }
        }

        double Time(InferenceSession session, string[] names, int atOnce)
        {
            var clock = Stopwatch.StartNew();
            Parallel.For(0, atOnce, new ParallelOptions { MaxDegreeOfParallelism = atOnce }, w =>
            {
                using var runOptions = new RunOptions();
                for (int r = w; r < rows; r += atOnce)
                {
                    using var value = OrtValue.CreateTensorValueFromMemory(inputs[r], shape);
                    using var results = session.Run(runOptions, new[] { input }, new[] { value }, names);
                }
            });
            return clock.Elapsed.TotalMilliseconds / rows;
        }
    }
}
