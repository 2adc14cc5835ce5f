using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;
using Onnx;

namespace MLNet.Quantization.Benchmarks;

// Issue 10's lifetime figures: resident memory and temp-folder files around repeated GetOutputSchema calls and
// Fit/Dispose cycles. Usage: ... -- lifetime [schemaCalls=1000] [fits=150]
internal static class LifetimeHarness
{
    public static void Run(string[] args)
    {
        int calls = args.Length > 0 ? int.Parse(args[0]) : 1000;
        int fits = args.Length > 1 ? int.Parse(args[1]) : 150;
        var directory = Directory.CreateTempSubdirectory("mlnet-quantization-lifetime-");
        try
        {
            var model = Path.Combine(directory.FullName, "mlp.onnx");
            File.WriteAllBytes(model, Google.Protobuf.MessageExtensions.ToByteArray(Mlp()));
            var ml = new MLContext(seed: 1);
            var definition = SchemaDefinition.Create(typeof(Row));
            definition["X"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 16);
            var random = new Random(1);
            var rows = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 32)
                .Select(_ => new Row { X = Enumerable.Range(0, 16).Select(_ => (float)random.NextDouble()).ToArray() }).ToArray(), definition);
            Console.WriteLine($"CPU {Realize.CpuFeatures.Describe()}, {Environment.ProcessorCount} cores");
            Console.WriteLine("| what | calls | seconds | RSS before (MB) | RSS after (MB) | managed heap before (MB) | after (MB) | temp files before | temp files after |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|");

            var estimator = ml.Transforms.QuantizeCalibrated(model);
            var schemaShape = SchemaShapeOf(ml, rows);
            Measure($"GetOutputSchema, 16→32→16 MLP", calls, () => estimator.GetOutputSchema(schemaShape));
            Measure($"Fit + Transform + Dispose, same MLP", fits, () =>
            {
                using var fitted = estimator.Fit(rows);
                fitted.Transform(rows).GetColumn<float[]>("Y").Count();
            });
            var resnet = ml.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18);
            var images = ml.Data.LoadFromEnumerable(new[] { new ResNet18Harness.Input { Input247 = new float[3 * 224 * 224] } });
            var imageShape = SchemaShapeOf(ml, images);
            Measure("GetOutputSchema, ResNet18", 20, () => resnet.GetOutputSchema(imageShape));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static void Measure(string what, int count, Action action)
    {
        static long Rss()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            using var process = Process.GetCurrentProcess();
            return process.WorkingSet64;
        }
        static int TempFiles() => Directory.GetFiles(Path.GetTempPath()).Length;
        action(); // warm-up: the first call loads ONNX Runtime and JITs
        long before = Rss();
        long heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        int filesBefore = TempFiles();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < count; i++) action();
        double seconds = clock.Elapsed.TotalSeconds;
        long after = Rss();
        Console.WriteLine($"| {what} | {count} | {seconds:F2} | {before / 1e6:F0} | {after / 1e6:F0} | {heapBefore / 1e6:F0} | " +
            $"{GC.GetTotalMemory(forceFullCollection: true) / 1e6:F0} | {filesBefore} | {TempFiles()} |");
    }

    // ML.NET makes SchemaShape.Create internal; a measuring harness (not the library) may reach it, as the tests do.
    private static SchemaShape SchemaShapeOf(MLContext ml, IDataView data) => (SchemaShape)typeof(SchemaShape)
        .GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static, new[] { typeof(DataViewSchema) })!
        .Invoke(null, new object[] { data.Schema })!;

    private static ModelProto Mlp()
    {
        var random = new Random(3);
        TensorProto Weight(string name, long rows, long columns)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.Add(rows);
            t.Dims.Add(columns);
            t.FloatData.AddRange(Enumerable.Range(0, (int)(rows * columns)).Select(_ => (float)(random.NextDouble() - 0.5)));
            return t;
        }
        ValueInfoProto Value(string name)
        {
            var shape = new TensorShapeProto();
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 1 });
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 16 });
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
        }
        NodeProto Node(string op, string name, params string[] io)
        {
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.AddRange(io[..^1]);
            node.Output.Add(io[^1]);
            return node;
        }
        var model = new ModelProto { IrVersion = 7, Graph = new GraphProto { Name = "mlp" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        model.Graph.Input.Add(Value("X"));
        model.Graph.Output.Add(Value("Y"));
        model.Graph.Initializer.Add(Weight("W1", 16, 32));
        model.Graph.Initializer.Add(Weight("W2", 32, 16));
        model.Graph.Node.Add(Node("MatMul", "mm1", "X", "W1", "H"));
        model.Graph.Node.Add(Node("Relu", "relu", "H", "R"));
        model.Graph.Node.Add(Node("MatMul", "mm2", "R", "W2", "Y"));
        return model;
    }

    private sealed class Row
    {
        public float[] X { get; set; } = Array.Empty<float>();
    }
}
