using SkiaSharp;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Cli.Calibration;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// Issue 16: public models that nobody here wrote, with the default options, every output compared. Fetch them first:
// scripts/fetch-zoo.sh and scripts/fetch-ocr-models.sh.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- zoo [only models whose name contains this] [rounds] [unchecked]
// (unchecked: CheckDeployment off, the model as realized, with the layers where realized and simulated part listed;
// ZOO_FLOAT_DEPTHWISE=1 keeps grouped convolutions float, =16 only those whose group count is not a multiple of 16:
// experiments on their int8 speed)
// For each model: int8 vs fp32 per output (mean cosine over rows, relative error ‖a − b‖ / ‖a‖ over all held-out rows),
// realized vs simulated (Fit's own measurement of the model it returns, relative error of the worst output), speed through
// ML.NET on one thread (median of alternated rounds), and NaN counts.
internal static class ZooHarness
{
    internal sealed record Model(string Name, string File, string Kind, int Calibration, int HeldOut,
        Func<int, int, IEnumerable<Dictionary<string, Array>>> Rows, Dictionary<string, int[]> Shapes);

    public static void Run(string[] args)
    {
        string only = args.Length > 0 ? args[0] : "";
        int rounds = args.Length > 1 ? int.Parse(args[1]) : 5;
        bool check = !(args.Length > 2 && args[2] == "unchecked");
        // "untuned": Tuning = null, the recipe as set.
        bool tune = !(args.Length > 3 && args[3] == "untuned");
        var zoo = Path.Combine(FashionMnist.DataDirectory(AppContext.BaseDirectory), "..", "models");
        Console.WriteLine($"Model zoo, defaults, 1 intra-op thread, CPU {Realize.CpuFeatures.Describe()}");
        Console.WriteLine();
        Console.WriteLine("| model | kind | result | quantized | int8 vs fp32 per output: cosine / relative error | realized vs simulated (worst output, relative error) | NaN | fp32 ms | int8 ms | speed-up | Fit |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var model in Models(zoo).Where(m => m.Name.Contains(only, StringComparison.Ordinal)))
        {
            try
            {
                Measure(model, rounds, check, tune);
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException or ArgumentException or InvalidDataException)
            {
                Console.WriteLine($"| {model.Name} | {model.Kind} | refused: {e.GetType().Name}: {e.Message.Replace('|', '/').Replace('\n', ' ')} | | | | | | | | |");
            }
        }
    }

    // Where the realized int8 model first parts from the simulated one: every quantized activation in graph order, the
    // fraction of its uint8 values more than one step apart, and the largest difference.
    public static void Diagnose(string[] args)
    {
        var model = Find(args[0]);
        var ml = new MLContext(seed: 1);
        var (inputs, rows, view) = CalibrationRows(model);
        using var directory = new TemporaryDirectory();
        string Export(QuantizationMode mode)
        {
            var options = new QuantizingEstimator.Options
            {
                ModelFile = model.File, ShapeDictionary = model.Shapes, Mode = mode, CheckDeployment = false, Tuning = null,
                ExcludeNodes = FloatDepthwise(model.File),
            };
            // ZOO_METHOD=Percentile: the activation calibration method, as in the zoo runs.
            if (Environment.GetEnvironmentVariable("ZOO_METHOD") is { Length: > 0 } method) options.ActivationCalibration = Enum.Parse<CalibrationMethod>(method);
            using var fitted = ml.Transforms.QuantizeCalibrated(options).Fit(view);
            var path = Path.Combine(directory.Path, $"{mode}.onnx");
            fitted.ExportOnnx(path);
            return path;
        }
        var int8 = Onnx.OnnxGraph.Load(Export(QuantizationMode.Int8));
        var simulated = Onnx.OnnxGraph.Load(Export(QuantizationMode.Simulated));
        // ZOO_DUMP_NODE=text: the nodes of both graphs whose name, inputs or outputs contain the text.
        if (Environment.GetEnvironmentVariable("ZOO_DUMP_NODE") is { Length: > 0 } dump)
        {
            foreach (var (label, g) in new[] { ("int8", int8), ("simulated", simulated) })
                foreach (var n in g.Graph.Node.Where(n => n.Name.Contains(dump) || n.Input.Concat(n.Output).Any(t => t.Contains(dump))))
                    Console.WriteLine($"{label}: {n.OpType} '{n.Name}' ({string.Join(", ", n.Input)}) -> ({string.Join(", ", n.Output)}) {string.Join(" ", n.Attribute.Select(a => a.Name + "=" + (a.Ints.Count > 0 ? string.Join(",", a.Ints) : a.I.ToString())))}");
            foreach (var (label, g) in new[] { ("int8", int8), ("simulated", simulated) })
                foreach (var t in g.Graph.Initializer.Where(t => t.Name.Contains(dump)))
                {
                    var values = t.DataType == 1 ? Onnx.Tensors.ReadFloats(t) : Array.Empty<float>();
                    Console.WriteLine($"{label}: initializer '{t.Name}' [{string.Join(",", t.Dims)}] {string.Join(" ", values.Take(6).Select(v => v.ToString("R")))} sum {values.Sum(v => (double)v):R}");
                }
        }
        // int8: QuantizeLinear(x) → q; simulated: Div(x, s) → Round → Add → Clip → q.
        var pairs = new List<(string Tensor, string Int8, string Simulated, string Reader)>();
        foreach (var q in int8.Graph.Node.Where(n => n.OpType == "QuantizeLinear"))
        {
            // A Conv, MatMul or Gemm fused with its quantization: Mul(accumulator, requantization scale) in place of the Div.
            var div = simulated.Consumers(q.Input[0]).FirstOrDefault(n => n.OpType == "Div")
                ?? simulated.Consumers(q.Input[0] + "_accumulated").FirstOrDefault(n => n.OpType == "Mul");
            // A quantized Add simulated as the QLinearAdd kernel computes it: the kernel's value (…_qladd) → Round.
            var producer = simulated.Producer(q.Input[0]);
            if (producer?.OpType == "Relu") producer = simulated.Producer(producer.Input[0]);
            var qladd = div is not null || producer is null ? null
                : simulated.Graph.Node.FirstOrDefault(n => n.OpType == "Round" && n.Input[0] == Onnx.OnnxGraph.Label(producer) + "_qladd");
            var round = qladd ?? (div is null ? null : simulated.Consumers(div.Output[0]).FirstOrDefault());
            var add = round is null ? null : simulated.Consumers(round.Output[0]).FirstOrDefault();
            var clip = add is null ? null : simulated.Consumers(add.Output[0]).FirstOrDefault();
            if (clip?.OpType == "Clip") pairs.Add((q.Input[0], q.Output[0], clip.Output[0], int8.Producer(q.Input[0])?.OpType ?? "input"));
        }
        // ZOO_INT8_LEVEL=BASIC|EXTENDED: the int8 model at that optimization level (default: every optimization).
        using var a = Environment.GetEnvironmentVariable("ZOO_INT8_LEVEL") is { Length: > 0 } level
            ? Unoptimized(int8, pairs.Select(p => p.Int8), Enum.Parse<GraphOptimizationLevel>("ORT_ENABLE_" + level))
            : Realize.Sessions.Create(int8, pairs.Select(p => p.Int8), "int8");
        // ZOO_SIMULATED_UNOPTIMIZED=1: the simulated model runs as written, without ONNX Runtime's float fusions.
        using var b = Environment.GetEnvironmentVariable("ZOO_SIMULATED_UNOPTIMIZED") == "1"
            ? Unoptimized(simulated, pairs.Select(p => p.Simulated))
            : Realize.Sessions.Create(simulated, pairs.Select(p => p.Simulated), "simulated");
        var bad = new long[pairs.Count];
        var differ = new long[pairs.Count];
        var total = new long[pairs.Count];
        var largest = new double[pairs.Count];
        var mean = new double[pairs.Count];
        // ZOO_COMPARE_FLOAT=a,b,...: float tensors present in both graphs, compared directly on the first row.
        if (Environment.GetEnvironmentVariable("ZOO_COMPARE_FLOAT") is { Length: > 0 } compare)
        {
            var tensors = compare.Split(',');
            var levels = (Environment.GetEnvironmentVariable("ZOO_COMPARE_LEVELS") ?? "ALL,ALL").Split(',')
                .Select(l => l == "NONE" ? GraphOptimizationLevel.ORT_DISABLE_ALL : Enum.Parse<GraphOptimizationLevel>("ORT_ENABLE_" + l)).ToArray();
            using var fb = Unoptimized(simulated, tensors, levels[1]);
            using var fa = Unoptimized(int8, tensors, levels[0]);
            if (Environment.GetEnvironmentVariable("ZOO_SAVE_OPTIMIZED") is { Length: > 0 } path)
                foreach (var n in Onnx.OnnxGraph.Load(path).Graph.Node.Where(n => n.Input.Concat(n.Output).Any(t => t.Contains(tensors[0].Split(':')[0]) || n.Name.Contains(tensors[0].Split(':')[0]))))
                    Console.WriteLine($"optimized int8: {n.OpType} {n.Domain} '{n.Name}' ({string.Join(", ", n.Input)}) -> ({string.Join(", ", n.Output)})");
            var row0 = rows.First();
            var vals = inputs.Select((input, k) => OrtValue.CreateTensorValueFromMemory((float[])row0[k], model.Shapes[input.Name].Select(d => (long)d).ToArray())).ToList();
            using var xa = fa.Run(Ort.RunOptions, inputs.Select(i => i.Name).ToArray(), vals, tensors);
            using var xb = fb.Run(Ort.RunOptions, inputs.Select(i => i.Name).ToArray(), vals, tensors);
            for (int k = 0; k < tensors.Length; k++)
            {
                var u = xa[k].GetTensorDataAsSpan<float>();
                var v = xb[k].GetTensorDataAsSpan<float>();
                double worst = 0; int at = 0, n = 0;
                for (int i = 0; i < u.Length; i++) { double d = Math.Abs(u[i] - v[i]); if (d > 0) n++; if (d > worst) { worst = d; at = i; } }
                Console.WriteLine($"{tensors[k]}: {n} of {u.Length} differ, largest {worst:R} at {at} ({u[at]:R} vs {v[at]:R}); shape {string.Join("x", xa[k].GetTensorTypeAndShape().Shape)}");
            }
        }
        foreach (var row in rows.Take(4))
        {
            var values = inputs.Select((input, k) => OrtValue.CreateTensorValueFromMemory((float[])row[k], model.Shapes[input.Name].Select(d => (long)d).ToArray())).ToList();
            var names = inputs.Select(i => i.Name).ToArray();
            using var x = a.Run(Ort.RunOptions, names, values, pairs.Select(p => p.Int8).ToArray());
            using var y = b.Run(Ort.RunOptions, names, values, pairs.Select(p => p.Simulated).ToArray());
            // ZOO_ADD_FORMULAS=1: per quantized Add of two quantized tensors, how many of its uint8 values each candidate
            // formula of the QLinearAdd kernel reproduces from the kernel's own inputs.
            if (Environment.GetEnvironmentVariable("ZOO_ADD_FORMULAS") == "1")
                AddFormulas(int8, pairs.Select(p => p.Tensor).ToList(), k => x[k].GetTensorDataAsSpan<byte>().ToArray());
            for (int k = 0; k < pairs.Count; k++)
            {
                var u = x[k].GetTensorDataAsSpan<byte>();
                var v = y[k].GetTensorDataAsSpan<float>();
                for (int i = 0; i < u.Length; i++)
                {
                    double d = u[i] - v[i];
                    if (Math.Abs(d) > 1) bad[k]++;
                    if (d != 0) differ[k]++;
                    largest[k] = Math.Max(largest[k], Math.Abs(d));
                    mean[k] += d;
                }
                total[k] += u.Length;
            }
            foreach (var v in values) v.Dispose();
        }
        Console.WriteLine("| quantized tensor (graph order) | producer | values that differ | values > 1 step apart | largest | mean signed difference (int8 − simulated) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        for (int k = 0; k < pairs.Count; k++)
            Console.WriteLine($"| {pairs[k].Tensor} | {pairs[k].Reader} | {(double)differ[k] / total[k]:P3} | {(double)bad[k] / total[k]:P2} | {largest[k]} | {mean[k] / total[k]:F3} |");
    }

    private static void AddFormulas(Onnx.OnnxGraph int8, List<string> tensors, Func<int, byte[]> values)
    {
        (float Scale, int ZeroPoint) Parameters(string tensor)
        {
            var q = int8.Consumers(tensor).First(n => n.OpType == "QuantizeLinear");
            var zp = int8.Graph.Initializer.First(t => t.Name == q.Input[2]);
            return (Onnx.Tensors.ReadFloats(int8.Graph.Initializer.First(t => t.Name == q.Input[1]))[0],
                zp.RawData.Length > 0 ? zp.RawData[0] : zp.Int32Data[0]);
        }
        static byte Saturate(double v) => (byte)Math.Clamp(Math.Round(v, MidpointRounding.ToEven), 0, 255);
        static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
        for (int k = 0; k < tensors.Count; k++)
        {
            var add = int8.Producer(tensors[k]);
            if (add?.OpType == "Relu") add = int8.Producer(add.Input[0]);
            if (add?.OpType != "Add") continue;
            string Source(string dequantized) => int8.Producer(dequantized) is { OpType: "DequantizeLinear" } dq
                && int8.Producer(dq.Input[0]) is { OpType: "QuantizeLinear" } q ? q.Input[0] : "";
            int ia = tensors.IndexOf(Source(add.Input[0])), ib = tensors.IndexOf(Source(add.Input[1]));
            if (ia < 0 || ib < 0) continue;
            var (sa, za) = Parameters(tensors[ia]);
            var (sb, zb) = Parameters(tensors[ib]);
            var (sc, zc) = Parameters(tensors[k]);
            byte[] qa = values(ia), qb = values(ib), qc = values(k);
            if (qa.Length != qc.Length || qb.Length != qc.Length) continue;
            float ra = sa / sc, rb = sb / sc;
            var candidates = new (string Name, Func<float, float, float> F)[]
            {
                ("F plain, b inner", (x, y) => Fma(x, ra, Fma(y, rb, zc - (ra * za + rb * zb)))),
                ("F fma(ra,za,rb*zb), b inner", (x, y) => Fma(x, ra, Fma(y, rb, zc - Fma(ra, za, rb * zb)))),
                ("F fma(rb,zb,ra*za), b inner", (x, y) => Fma(x, ra, Fma(y, rb, zc - Fma(rb, zb, ra * za)))),
                ("F plain, a inner", (x, y) => Fma(y, rb, Fma(x, ra, zc - (ra * za + rb * zb)))),
                ("F fma(ra,za,rb*zb), a inner", (x, y) => Fma(y, rb, Fma(x, ra, zc - Fma(ra, za, rb * zb)))),
                ("reference ((a-za)sa+(b-zb)sb)/sc", (x, y) => ((x - za) * sa + (y - zb) * sb) / sc + zc),
            };
            Console.WriteLine($"Add '{Onnx.OnnxGraph.Label(add)}' a={add.Input[0]} (s {sa:R}, z {za}) b={add.Input[1]} (s {sb:R}, z {zb}) c (s {sc:R}, z {zc}):");
            foreach (var (name, f) in candidates)
            {
                int wrong = 0;
                for (int i = 0; i < qc.Length; i++) if (Saturate(f(qa[i], qb[i])) != qc[i]) wrong++;
                Console.WriteLine($"  {name}: {wrong} of {qc.Length} differ");
            }
        }
    }

    // ZOO_FLOAT_DEPTHWISE=1: the grouped convolutions' names, for ExcludeNodes; ZOO_EXCLUDE=a,b: these nodes too (else null).
    private static string[]? FloatDepthwise(string file)
    {
        var named = Environment.GetEnvironmentVariable("ZOO_EXCLUDE") is { Length: > 0 } e ? e.Split(',') : Array.Empty<string>();
        var mode = Environment.GetEnvironmentVariable("ZOO_FLOAT_DEPTHWISE");
        // ZOO_FLOAT_HEADS=1: the Convs, Gemms and MatMuls whose output reaches a model output through shape-only ops
        // and Concat stay float (an experiment on box regressions).
        if (Environment.GetEnvironmentVariable("ZOO_FLOAT_HEADS") == "1")
        {
            var model = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(file)).Graph;
            var producer = model.Node.SelectMany(n => n.Output.Select(o => (o, n))).GroupBy(p => p.o).ToDictionary(g => g.Key, g => g.First().n);
            var heads = new List<string>();
            var pending = new Stack<string>(model.Output.Select(o => o.Name));
            var seen = new HashSet<string>();
            while (pending.Count > 0)
            {
                var tensor = pending.Pop();
                if (!seen.Add(tensor) || !producer.TryGetValue(tensor, out var node)) continue;
                if (node.OpType is "Conv" or "Gemm" or "MatMul") heads.Add(node.Name);
                else if (node.OpType is "Reshape" or "Transpose" or "Concat" or "Flatten" or "Squeeze" or "Unsqueeze" or "Identity" or "Add")
                    foreach (var input in node.Input) pending.Push(input);
            }
            Console.Error.WriteLine($"float heads: {string.Join(", ", heads)}");
            return heads.Concat(named).ToArray();
        }
        if (mode is not ("1" or "16")) return named.Length > 0 ? named : null;
        var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(file));
        // "16": only those whose group count is not a multiple of 16 (ONNX Runtime's symmetric depthwise kernels need one).
        return graph.Graph.Node.Where(n => n.OpType == "Conv" && n.Attribute.Any(a => a.Name == "group" && a.I > 1 && (mode == "1" || a.I % 16 != 0)))
            .Select(n => n.Name).Concat(named).ToArray();
    }

    private static InferenceSession Unoptimized(Onnx.OnnxGraph graph, IEnumerable<string> outputs, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_DISABLE_ALL)
    {
        var probe = graph.Clone();
        foreach (var name in outputs.Where(n => !probe.IsGraphOutput(n)).Distinct())
            probe.Graph.Output.Add(new global::Onnx.ValueInfoProto { Name = name });
        using var options = new SessionOptions { GraphOptimizationLevel = level };
        // ZOO_SAVE_OPTIMIZED=path: ONNX Runtime writes the optimized graph there (the last session made wins).
        if (Environment.GetEnvironmentVariable("ZOO_SAVE_OPTIMIZED") is { Length: > 0 } saved) options.OptimizedModelFilePath = saved;
        return new InferenceSession(probe.ToBytes(), options);
    }

    internal sealed class TemporaryDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("zoo-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    private static void Measure(Model model, int rounds, bool check, bool tune)
    {
        var ml = new MLContext(seed: 1);
        var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(model.File));
        var initializers = graph.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var inputs = graph.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        // ZOO_OUTPUTS=a,b: only these outputs, as OutputColumnNames of both models (default: every output).
        var outputs = Environment.GetEnvironmentVariable("ZOO_OUTPUTS") is { Length: > 0 } only ? only.Split(',')
            : graph.Graph.Output.Select(o => o.Name).ToArray();
        var builder = new DataViewSchema.Builder();
        foreach (var input in inputs)
        {
            var dims = model.Shapes.TryGetValue(input.Name, out var d) ? d
                : input.Type.TensorType.Shape.Dim.Select(x => (int)x.DimValue).ToArray();
            int size = Math.Max(1, dims.Aggregate(1, (a, b) => a * b));
            builder.AddColumn(input.Name, new VectorDataViewType(
                input.Type.TensorType.ElemType == (int)global::Onnx.TensorProto.Types.DataType.Int64 ? NumberDataViewType.Int64 : NumberDataViewType.Single, size));
        }
        var schema = builder.ToSchema();
        // The rows are made once (some come from running other models), so that timing reads only the model.
        IDataView View(int skip, int count)
        {
            var rows = model.Rows(skip, count).Select(r => inputs.Select(i => r[i.Name]).ToArray()).ToList();
            return new RowsDataView(schema, () => rows);
        }
        // ZOO_CALIBRATION_FROM=n, ZOO_HELD_OUT_FROM=m: the first calibration and held-out rows (default 0 and the row after
        // the calibration rows); with m inside the calibration rows, the held-out rows are ones the model was calibrated
        // on, which separates an error of range (held-out values outside the calibrated ranges) from one of resolution.
        int calibrationFrom = Environment.GetEnvironmentVariable("ZOO_CALIBRATION_FROM") is { Length: > 0 } cf ? int.Parse(cf) : 0;
        int heldOutFrom = Environment.GetEnvironmentVariable("ZOO_HELD_OUT_FROM") is { Length: > 0 } hf ? int.Parse(hf) : calibrationFrom + model.Calibration;
        var calibration = View(calibrationFrom, model.Calibration);
        var heldOut = View(heldOutFrom, model.HeldOut);
        var names = inputs.Select(i => i.Name).ToArray();
        // ZOO_FLOAT_DEPTHWISE=1: grouped convolutions stay float (an experiment on their int8 speed).
        var depthwise = FloatDepthwise(model.File);
        // ZOO_MAX_ERROR=0.05: the deployment check's bound on each output's relative error (default QuantizationDefaults').
        var maximumError = Environment.GetEnvironmentVariable("ZOO_MAX_ERROR") is { Length: > 0 } e
            ? double.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : QuantizationDefaults.MaximumOutputError;
        // ZOO_METHOD=MeanSquaredError: the activation calibration method (pins the tuner's knob); default: the option's default.
        var method = Environment.GetEnvironmentVariable("ZOO_METHOD") is { Length: > 0 } m ? Enum.Parse<CalibrationMethod>(m) : (CalibrationMethod?)null;
        // ZOO_WEIGHT_RANGE=Full: the weights' number format (default: pair-bounded, safe on CPUs without VNNI).
        var weightRange = Environment.GetEnvironmentVariable("ZOO_WEIGHT_RANGE") is { Length: > 0 } w
            ? Enum.Parse<WeightRange>(w) : QuantizationDefaults.WeightRange;
        QuantizingTransformer Fit(QuantizationMode mode)
        {
            var options = new QuantizingEstimator.Options
            {
                MaximumOutputError = maximumError, WeightRange = weightRange,
                ModelFile = model.File, ShapeDictionary = model.Shapes, IntraOpNumThreads = 1, Mode = mode,
                InputColumnNames = names, OutputColumnNames = outputs, CheckDeployment = check, ExcludeNodes = depthwise is { Length: > 0 } ? depthwise : null,
                Tuning = tune ? new TuningOptions() : null,
            };
            // ZOO_MIN_SPEEDUP=1.15: the deployment check's MinimumSpeedup (default QuantizationDefaults').
            if (Environment.GetEnvironmentVariable("ZOO_MIN_SPEEDUP") is { Length: > 0 } speedup)
                options.MinimumSpeedup = double.Parse(speedup, System.Globalization.CultureInfo.InvariantCulture);
            if (method is { } chosen) options.ActivationCalibration = chosen;
            // ZOO_WEIGHT_ROUNDING=Nearest: how weights are rounded (pins the tuner's knob); default: the option's default.
            if (Environment.GetEnvironmentVariable("ZOO_WEIGHT_ROUNDING") is { Length: > 0 } r) options.WeightRounding = Enum.Parse<WeightRounding>(r);
            // ZOO_BIAS_CORRECTION=Fast: the bias correction (pins the tuner's knob); default: the option's default.
            if (Environment.GetEnvironmentVariable("ZOO_BIAS_CORRECTION") is { Length: > 0 } b) options.BiasCorrection = Enum.Parse<BiasCorrection>(b);
            return ml.Transforms.QuantizeCalibrated(options).Fit(calibration);
        }
        var clock = Stopwatch.StartNew();
        using var int8 = Fit(QuantizationMode.Int8);
        double fitSeconds = clock.Elapsed.TotalSeconds;
        if (int8.Tuning is { } tuning) Console.Error.WriteLine($"{model.Name}: {tuning.Summary}\n{tuning.ToCsv()}");
        if (int8.Deployment is { } checkedModel)
            Console.Error.WriteLine($"{model.Name}: {checkedModel.Summary}\n  reasons: " + string.Join("\n  ", checkedModel.FloatNodes.Values.Distinct()));
        Console.Error.WriteLine($"{model.Name}: Fit passes (s): " + string.Join(", ", int8.FitTimings.Select(t => $"{t.Pass} {t.Seconds:F1}")));
        // ZOO_REPORT=dir: the int8 fit's report (per-tensor SQNR and added noise) as dir/<model>.csv.
        if (Environment.GetEnvironmentVariable("ZOO_REPORT") is { Length: > 0 } reportDirectory)
            int8.Report.WriteCsv(Path.Combine(reportDirectory, string.Concat(model.Name.Split(Path.GetInvalidFileNameChars())) + ".csv"));
        // Realized vs simulated is Fit's own measurement of the model it returns (int8.Agreement, on its measurement rows):
        // a second fit in simulated mode, tuned and checked on its own, may keep other layers in float, and would differ
        // by more than the arithmetic.
        // ML.NET cannot run a float16 model at all: its float32 form (exact) is the baseline.
        var floatFile = model.File;
        var source = Onnx.OnnxGraph.Load(model.File);
        if (Onnx.Float16Conversion.Convert(source).Count > 0)
        {
            floatFile = Path.Combine(Path.GetTempPath(), Path.GetFileNameWithoutExtension(model.File) + "-float32.onnx");
            File.WriteAllBytes(floatFile, source.ToBytes());
        }
        var fp32 = ml.Transforms.ApplyOnnxModel(new OnnxOptions
        {
            ModelFile = floatFile, ShapeDictionary = model.Shapes, InputColumns = names, OutputColumns = outputs,
            IntraOpNumThreads = 1, InterOpNumThreads = 1,
        }).Fit(calibration);
        var reference = Score(fp32, heldOut, outputs);
        var quantized = Score(int8, heldOut, outputs);
        // Per output: int8 vs fp32 (cosine, relative error) and realized vs simulated (relative error, Fit's).
        var cosines = Enumerable.Range(0, outputs.Length).Select(k => Cosine(reference.Values, quantized.Values, k)).ToArray();
        var errors = Enumerable.Range(0, outputs.Length).Select(k => Relative(reference.Values, quantized.Values, k)).ToArray();
        var departures = Enumerable.Range(0, outputs.Length)
            .Select(k => int8.Agreement?.Outputs.FirstOrDefault(o => o.Name == outputs[k])?.RelativeError ?? double.NaN).ToArray();
        var perOutput = Enumerable.Range(0, outputs.Length).Select(k => $"{cosines[k]:F3} / {errors[k]:F3}");
        // Realized vs simulated means nothing where the int8 fit returned a float model.
        string agreementText = int8.Deployment?.KeptFloat == true ? "- (float returned)"
            : !int8.Calibration.Any(c => c.Role == TensorRole.Weight || c.Role == TensorRole.Activation) ? "- (nothing quantized)"
            : int8.Agreement is { } measuredAgreement ? measuredAgreement.WorstRelativeError.ToString("F4")
            : "- (not measured)";
        long nan = quantized.Values.Sum(row => row.Sum(o => o.Count(v => !float.IsFinite(v))))
            - reference.Values.Sum(row => row.Sum(o => o.Count(v => !float.IsFinite(v))));
        var floatTimes = new List<double>();
        var int8Times = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            floatTimes.Add(Time(fp32, heldOut, outputs));
            int8Times.Add(Time(int8, heldOut, outputs));
        }
        double f = Median(floatTimes), q = Median(int8Times);
        // ZOO_RAW_TIMING=1: the same two models timed outside ML.NET on the held-out rows (stderr): through plain ONNX
        // Runtime sessions, and through the sessions Fit's deployment check opens.
        if (Environment.GetEnvironmentVariable("ZOO_RAW_TIMING") == "1")
            RawTiming(model, floatFile, int8, model.Rows(heldOutFrom, model.HeldOut).ToList(), rounds);
        string verdict = int8.Deployment is { } deployment
            ? $"{(deployment.KeptFloat ? "kept float" : deployment.QuantizedNothing ? "float (nothing quantized)" : "int8")}, " +
              $"{deployment.FloatNodes.Count} nodes float ({string.Join(", ", deployment.FloatNodes.Values.Select(Reason).Distinct())}); " +
              $"Fit timed {deployment.Speedup:F2}x"
            : "unchecked";
        if (!check && int8.Agreement is { Agrees: false } a)
            Console.Error.WriteLine($"{model.Name}: {a}\n  " + string.Join("\n  ", a.Layers.Select(l => $"{l.Tensor} ({l.OpType} {l.Node}): {l.MismatchFraction:P2} differ, mean {l.MeanStepDifference:F3} steps")));
        if (outputs.Length > 4)
            Console.Error.WriteLine($"{model.Name}, every output, int8 vs fp32 (cosine / relative error) and int8 vs simulated: " + string.Join("; ",
                Enumerable.Range(0, outputs.Length).Select(k => $"{outputs[k]} {cosines[k]:F3} / {errors[k]:F3}, {departures[k]:F3}")));
        var shown = outputs.Length > 4 ? perOutput.Take(4).Append($"… ({outputs.Length} outputs, the worst {errors.Max():F3})") : perOutput;
        Console.WriteLine($"| {model.Name} | {model.Kind} | {verdict} | {int8.Calibration.Count(c => c.Role == TensorRole.Activation)} activations, {int8.Calibration.Count(c => c.Role == TensorRole.Weight)} weights | " +
            $"{string.Join("; ", shown)} | {agreementText} | {nan} | {f:F3} | {q:F3} | {f / q:F2}x | {fitSeconds:F1} s |");
    }

    // Times the float and the int8 model on the given rows, alternating, with plain sessions and with Fit's sessions.
    private static void RawTiming(Model model, string floatFile, QuantizingTransformer int8, List<Dictionary<string, Array>> rows, int rounds)
    {
        using var directory = new TemporaryDirectory();
        var int8File = Path.Combine(directory.Path, "int8.onnx");
        int8.ExportOnnx(int8File);
        var feeds = rows.Select(row => row.Select(kv => OrtValue.CreateTensorValueFromMemory((float[])kv.Value,
            (model.Shapes.TryGetValue(kv.Key, out var shape) ? shape : new[] { 1, kv.Value.Length }).Select(d => (long)d).ToArray()))
            .ToArray()).ToList();
        var names = rows[0].Keys.ToArray();
        using var plainOptions = new SessionOptions { IntraOpNumThreads = 1 };
        InferenceSession Plain(string file) => new(file, plainOptions);
        InferenceSession Fits(string file) => Realize.Sessions.Create(Onnx.OnnxGraph.Load(file), Array.Empty<string>(), file, 1);
        foreach (var (label, open) in new (string, Func<string, InferenceSession>)[] { ("plain sessions", Plain), ("Fit's sessions", Fits) })
        {
            using var fp = open(floatFile);
            using var q = open(int8File);
            using var options = new RunOptions();
            double Round(InferenceSession session)
            {
                var outputs = session.OutputNames.ToArray(); // once, outside the timed runs
                var clock = Stopwatch.StartNew();
                int runs = 0;
                do
                {
                    foreach (var feed in feeds) { using var result = session.Run(options, names, feed, outputs); runs++; }
                }
                while (clock.Elapsed.TotalMilliseconds < MinimumRoundMs);
                return clock.Elapsed.TotalMilliseconds / runs;
            }
            Round(fp); Round(q); // warm-up
            var fs = new List<double>();
            var qs = new List<double>();
            for (int r = 0; r < rounds; r++) { fs.Add(Round(fp)); qs.Add(Round(q)); }
            Console.Error.WriteLine($"{model.Name}, {label}: fp32 {Median(fs):F3} ms, int8 {Median(qs):F3} ms, {Median(fs) / Median(qs):F2}x");
        }
        foreach (var feed in feeds) foreach (var v in feed) v.Dispose();
    }

    private static string Reason(string reason) => reason.StartsWith("computes the input", StringComparison.Ordinal) ? "domain rule"
        : reason.StartsWith("the int8 kernels", StringComparison.Ordinal) ? "realized ≠ simulated" : "fallback";

    internal static double Median(List<double> values) => values.OrderBy(v => v).ElementAt(values.Count / 2);

    /// <summary>
    /// One round's time per row: the held-out rows scored again until the round lasts <see cref="MinimumRoundMs"/>, so
    /// that a model of 0.05 ms per row is timed over thousands of rows (as a user scoring a stream would run it), not
    /// over 8 rows whose cursor costs more than the model.
    /// </summary>
    private static double Time(ITransformer model, IDataView data, string[] outputs)
    {
        double ms = 0;
        int rows = 0;
        do
        {
            var (values, perRow) = Score(model, data, outputs);
            ms += perRow * values.Count;
            rows += values.Count;
        }
        while (ms < MinimumRoundMs && rows > 0); // no rows: nothing to time, and no endless loop
        return ms / Math.Max(1, rows);
    }

    internal const double MinimumRoundMs = 200;

    // Every output of every row, as float arrays (ML.NET's columns), and the time per row.
    private static (List<float[][]> Values, double Ms) Score(ITransformer model, IDataView data, string[] outputs)
    {
        var scored = model.Transform(data);
        var columns = outputs.Select(o => scored.Schema[o.EndsWith(".output", StringComparison.Ordinal) ? o[..^7] : o]).ToArray();
        var rows = new List<float[][]>();
        var watch = Stopwatch.StartNew();
        using (var cursor = scored.GetRowCursor(columns))
        {
            var getters = columns.Select(c => cursor.GetGetter<VBuffer<float>>(c)).ToArray();
            while (cursor.MoveNext())
            {
                var row = new float[getters.Length][];
                for (int k = 0; k < getters.Length; k++)
                {
                    VBuffer<float> value = default;
                    getters[k](ref value);
                    row[k] = value.DenseValues().ToArray();
                }
                rows.Add(row);
            }
        }
        return (rows, watch.Elapsed.TotalMilliseconds / Math.Max(1, rows.Count));
    }

    private static double Cosine(List<float[][]> a, List<float[][]> b, int k) => a.Zip(b, (x, y) => Report.Cosine(x[k], y[k])).Average();

    // ‖a − b‖ / ‖a‖ over every held-out row of output k (finite values only).
    internal static double Relative(List<float[][]> a, List<float[][]> b, int k)
    {
        double e = 0, s = 0;
        foreach (var (x, y) in a.Zip(b))
            for (int i = 0; i < x[k].Length; i++)
            {
                if (!float.IsFinite(x[k][i]) || !float.IsFinite(y[k][i])) continue;
                double d = x[k][i] - y[k][i];
                e += d * d;
                s += (double)x[k][i] * x[k][i];
            }
        return s == 0 ? (e == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(e / s);
    }

    /// <summary>A model's inputs (float or int64) and its calibration rows, as arrays in input order and as a data view.</summary>
    internal static (List<global::Onnx.ValueInfoProto> Inputs, List<Array[]> Rows, IDataView View) CalibrationRows(Model model)
    {
        var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(model.File));
        var initializers = graph.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var inputs = graph.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        var builder = new DataViewSchema.Builder();
        foreach (var input in inputs)
            builder.AddColumn(input.Name, new VectorDataViewType(
                input.Type.TensorType.ElemType == (int)global::Onnx.TensorProto.Types.DataType.Int64 ? NumberDataViewType.Int64 : NumberDataViewType.Single,
                model.Shapes[input.Name].Aggregate(1, (a, b) => a * b)));
        var rows = model.Rows(0, model.Calibration).Select(r => inputs.Select(i => r[i.Name]).ToArray()).ToList();
        return (inputs, rows, new RowsDataView(builder.ToSchema(), () => rows));
    }

    /// <summary>The first zoo model whose name contains <paramref name="name"/>.</summary>
    internal static Model Find(string name) =>
        All().First(m => m.Name.Contains(name, StringComparison.Ordinal));

    /// <summary>Every zoo model, in the zoo table's order.</summary>
    internal static IEnumerable<Model> All() => Models(Path.Combine(FashionMnist.DataDirectory(AppContext.BaseDirectory), "..", "models"));

    private static IEnumerable<Model> Models(string root)
    {
        string zoo = Path.Combine(root, "zoo"), ocr = Path.Combine(root, "ocr");
        var fashion = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var (images, _) = FashionMnist.Read(fashion, "train-subset", count: 200);
        // Bright photos: Fashion-MNIST inverted (white backgrounds), which its black ones would hide.
        byte[] Image(int i) => i % 2 == 0 ? images[i] : images[i].Select(p => (byte)(255 - p)).ToArray();
        float[] Picture(int i, int height, int width, float[] mean, float[] deviation, float scale = 1 / 255f, bool channelsLast = false)
        {
            var image = Image(i);
            var result = new float[3 * height * width];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                    {
                        float v = (image[y * 28 / height * 28 + x * 28 / width] * (0.8f + 0.1f * c) * scale - mean[c]) / deviation[c];
                        result[channelsLast ? (y * width + x) * 3 + c : (c * height + y) * width + x] = v;
                    }
            return result;
        }
        float[] imageNetMean = { 0.485f, 0.456f, 0.406f }, imageNetStd = { 0.229f, 0.224f, 0.225f };
        // Text-like images for the OCR models (Fashion-MNIST holds no text, so a detector's map stays ≈ 0 on it): dark
        // strokes in lines of glyphs on a light, slightly noisy page, normalized as PaddleOCR does.
        float[] Text(int seed, int height, int width)
        {
            var random = new Random(seed);
            var page = new float[height * width];
            float paper = 200 + random.Next(55), ink = random.Next(80);
            for (int i = 0; i < page.Length; i++) page[i] = paper + (float)(random.NextDouble() * 20 - 10);
            for (int y = random.Next(Math.Max(1, height / 8)); y < height - 8;)
            {
                int size = Math.Min(height - y - 1, 8 + random.Next(Math.Max(1, height / 6)));
                for (int x = random.Next(Math.Max(1, width / 10)); x < width - size;)
                {
                    int glyph = size / 2 + random.Next(size / 2 + 1);
                    for (int stroke = 0; stroke < 3; stroke++)
                    {
                        bool vertical = random.Next(2) == 0;
                        int x0 = x + random.Next(Math.Max(1, glyph - 2)), y0 = y + random.Next(Math.Max(1, size - 2));
                        int length = vertical ? size - (y0 - y) : glyph - (x0 - x);
                        for (int t = 0; t < length; t++)
                            for (int thick = 0; thick < 2; thick++)
                            {
                                int px = vertical ? x0 + thick : x0 + t, py = vertical ? y0 + t : y0 + thick;
                                if (px < width && py < height) page[py * width + px] = ink;
                            }
                    }
                    x += glyph + 2 + (random.Next(6) == 0 ? size : 0);
                }
                y += size + 4 + random.Next(Math.Max(1, height / 4));
            }
            var result = new float[3 * height * width];
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < page.Length; i++) result[c * page.Length + i] = (page[i] / 255f - imageNetMean[c]) / imageNetStd[c];
            return result;
        }
        IEnumerable<Dictionary<string, Array>> Texts(string input, int skip, int count, int h, int w) =>
            Enumerable.Range(skip, count).Select(i => new Dictionary<string, Array> { [input] = Text(i, h, w) });
        IEnumerable<Dictionary<string, Array>> Pictures(string input, int skip, int count, int h, int w, float[] mean, float[] std) =>
            Enumerable.Range(skip, count).Select(i => new Dictionary<string, Array> { [input] = Picture(i, h, w, mean, std) });

        yield return new Model("ResNet18 (NuGet)", ResNet18Model.ResNet18, "classifier backbone, BN, opset 8", 32, 16,
            (skip, count) => Enumerable.Range(skip, count).Select(i => new Dictionary<string, Array>
            {
                ["Input247"] = Picture(i, 224, 224, new[] { 103.9f, 116.8f, 123.7f }, new[] { 1f, 1f, 1f }, scale: 1),
            }), new() { ["Input247"] = new[] { 1, 3, 224, 224 } });
        yield return new Model("PaddleOCR v4 detector", Path.Combine(ocr, "ch_PP-OCRv4_det_infer.onnx"), "detector, depthwise, HardSigmoid, Resize, Constant weights",
            16, 8, (s, c) => Texts("x", s, c, 224, 224), new() { ["x"] = new[] { 1, 3, 224, 224 } });
        yield return new Model("PaddleOCR v4 recognizer", Path.Combine(ocr, "ch_PP-OCRv4_rec_infer.onnx"), "CNN + attention, Softmax output, opset 9",
            16, 8, (s, c) => Texts("x", s, c, 48, 320), new() { ["x"] = new[] { 1, 3, 48, 320 } });
        yield return new Model("PaddleOCR v2 direction classifier", Path.Combine(ocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "tiny classifier, depthwise",
            16, 8, (s, c) => Texts("x", s, c, 48, 192), new() { ["x"] = new[] { 1, 3, 48, 192 } });
        // 12 calibration rows of natural photos, as issue 16 calibrated its models (on fewer than 5 no row is held back and
        // nothing is tuned): crops of the photos, planar RGB in [-0.5, 0.5] as imgly's background removal feeds it.
        // ZOO_ISNET_FASHION=1: Fashion-MNIST pictures scaled up to 1024 × 1024 instead (the rows of the sessions before).
        bool fashionPictures = Environment.GetEnvironmentVariable("ZOO_ISNET_FASHION") == "1";
        yield return new Model("ISNet fp16 (imgly medium)", Path.Combine(zoo, "isnet_fp16.onnx"), "fp16 weights, segmenter, 12 outputs, Resize",
            12, 2, (s, c) => fashionPictures ? Pictures("input", s, c, 1024, 1024, new[] { 0.5f, 0.5f, 0.5f }, new[] { 1f, 1f, 1f })
                : Enumerable.Range(s, c).Select(i => new Dictionary<string, Array> { ["input"] = Planar(Photo(i, 1024), v => v / 255f - 0.5f) }),
            new() { ["input"] = new[] { 1, 3, 1024, 1024 } });
        yield return new Model("ISNet dynamic int8 (imgly small)", Path.Combine(zoo, "isnet_dynamic_int8.onnx"), "already quantized (ConvInteger)",
            2, 1, (s, c) => Pictures("input", s, c, 1024, 1024, new[] { 0.5f, 0.5f, 0.5f }, new[] { 1f, 1f, 1f }), new() { ["input"] = new[] { 1, 3, 1024, 1024 } });

        // BlazeFace (MediaPipe, tf2onnx): channels-last RGB in [-1, 1], crops of natural photos (two with a face).
        foreach (var (file, size) in new[] { ("blazeface_front_128.onnx", 128), ("blazeface_back_256.onnx", 256) })
            yield return new Model($"BlazeFace {size}×{size}", Path.Combine(zoo, file), "face detector, channels-last, depthwise, Pad as Concat, 4 outputs",
                16, 8, (s, c) => Enumerable.Range(s, c).Select(i => new Dictionary<string, Array>
                {
                    ["input:0"] = Photo(i, size).Select(v => v / 127.5f - 1).ToArray(),
                }), new() { ["input:0"] = new[] { 1, size, size, 3 } });
        // M-LSD: channels-last RGBA, RGB in [0, 255] and alpha 1 (the model normalizes), crops of natural photos.
        foreach (var (file, size, name) in new[] { ("mlsd_tiny_320.onnx", 320, "tiny"), ("mlsd_tiny_512.onnx", 512, "tiny") })
            yield return new Model($"M-LSD {name} {size}×{size}", Path.Combine(zoo, file), "line-segment detector, MobileNetV2, ReLU6 as Clip, Pad, Resize, 2 outputs",
                16, 8, (s, c) => Enumerable.Range(s, c).Select(i => new Dictionary<string, Array>
                {
                    ["input_image_with_alpha:0"] = WithAlpha(Photo(i, size)),
                }), new() { ["input_image_with_alpha:0"] = new[] { 1, size, size, 4 } });

        // openWakeWord: audio → log-mel (melspectrogram) → 96-d embeddings (embedding_model) → wake-word heads. The
        // rows of each stage are the float outputs of the stage before, on synthetic speech-like audio.
        var mel = Path.Combine(zoo, "oww_melspectrogram.onnx");
        var embedding = Path.Combine(zoo, "oww_embedding_model.onnx");
        yield return new Model("openWakeWord melspectrogram", mel, "log-mel front-end: STFT as Conv, Pow, Log, Clip",
            16, 8, (s, c) => Enumerable.Range(s, c).Select(i => new Dictionary<string, Array> { ["input"] = Audio(i, 16000, 6000) }),
            new() { ["input"] = new[] { 1, 16000 } });
        yield return new Model("openWakeWord embedding", embedding, "channels-last conv net, LeakyRelu, Max",
            16, 8, (s, c) => Enumerable.Range(s, c).Select(i => new Dictionary<string, Array> { ["input_1"] = MelWindows(mel, i, 1)[0] }),
            new() { ["input_1"] = new[] { 1, 76, 32, 1 } });
        foreach (var (head, frames) in new[] { ("hey_jarvis_v0.1", 16), ("alexa_v0.1", 16), ("timer_v0.1", 34) })
        {
            var file = Path.Combine(zoo, $"oww_{head}.onnx");
            string input = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(file)).Graph.Input[0].Name;
            yield return new Model($"openWakeWord {head}", file, head.StartsWith("timer") ? "MLP head, Softmax" : "MLP head, sigmoid probability",
                16, 8, (s, c) => Enumerable.Range(s, c).Select(i => new Dictionary<string, Array> { [input] = Embeddings(mel, embedding, i, frames) }),
                new() { [input] = new[] { 1, frames, 96 } });
        }

        // Silero VAD: 512-sample chunks with the recurrent state the float model carries between them, sr = 16000.
        foreach (var version in new[] { "v5", "v6" })
        {
            var file = Path.Combine(zoo, $"silero_vad_{version}.onnx");
            yield return new Model($"Silero VAD {version}", file, "recurrent (LSTM in If), state input, STFT as Conv",
                16, 8, (s, c) => VadRows(file, s, c), new() { ["input"] = new[] { 1, 512 }, ["state"] = new[] { 2, 1, 128 }, ["sr"] = Array.Empty<int>() });
        }
    }

    // Natural photos (scripts/fetch-photos.sh: scikit-image's sample photos from Debian), each row a square crop of one
    // of them (a random place, 50–100% of its shorter side, mirrored every other pass over the photos), resized to
    // size × size, channels-last RGB in [0, 255].
    private static float[] Photo(int seed, int size)
    {
        var files = Directory.GetFiles(Path.Combine(FashionMnist.DataDirectory(AppContext.BaseDirectory), "..", "photos", "full")).Order(StringComparer.Ordinal).ToArray();
        if (files.Length == 0) throw new InvalidOperationException("No photos: run scripts/fetch-photos.sh.");
        var random = new Random(seed);
        using var photo = SKBitmap.Decode(files[seed % files.Length]);
        int side = (int)(Math.Min(photo.Width, photo.Height) * (0.5 + 0.5 * random.NextDouble()));
        int left = random.Next(photo.Width - side + 1), top = random.Next(photo.Height - side + 1);
        using var target = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(target))
        {
            if (seed / files.Length % 2 == 1) canvas.Scale(-1, 1, size / 2f, 0);
            using var image = SKImage.FromBitmap(photo);
            canvas.DrawImage(image, new SKRect(left, top, left + side, top + side), new SKRect(0, 0, size, size), new SKSamplingOptions(SKFilterMode.Linear));
        }
        var result = new float[size * size * 3];
        var pixels = target.Pixels;
        for (int i = 0; i < pixels.Length; i++)
        {
            result[i * 3] = pixels[i].Red;
            result[i * 3 + 1] = pixels[i].Green;
            result[i * 3 + 2] = pixels[i].Blue;
        }
        return result;
    }

    // Channels-last RGB to planar (channels first), each value through normalize.
    private static float[] Planar(float[] rgb, Func<float, float> normalize)
    {
        int pixels = rgb.Length / 3;
        var planar = new float[rgb.Length];
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < 3; c++) planar[c * pixels + i] = normalize(rgb[i * 3 + c]);
        return planar;
    }

    private static float[] WithAlpha(float[] rgb)
    {
        var result = new float[rgb.Length / 3 * 4];
        for (int i = 0; i < rgb.Length / 3; i++)
        {
            result[i * 4] = rgb[i * 3];
            result[i * 4 + 1] = rgb[i * 3 + 1];
            result[i * 4 + 2] = rgb[i * 3 + 2];
            result[i * 4 + 3] = 1;
        }
        return result;
    }

    // Speech-like audio: a few harmonics with a gliding pitch under a syllable envelope, plus noise (int16 scale × amplitude).
    private static float[] Audio(int seed, int samples, float amplitude)
    {
        var random = new Random(seed);
        double pitch = 100 + random.NextDouble() * 150, glide = random.NextDouble() * 60 - 30, rate = 3 + random.NextDouble() * 3;
        var result = new float[samples];
        for (int t = 0; t < samples; t++)
        {
            double time = t / 16000.0, f = pitch + glide * time, envelope = Math.Max(0, Math.Sin(Math.PI * rate * time));
            double v = 0;
            for (int h = 1; h <= 6; h++) v += Math.Sin(2 * Math.PI * f * h * time) / h;
            result[t] = (float)(amplitude * (0.5 * envelope * v + 0.02 * (random.NextDouble() * 2 - 1)));
        }
        return result;
    }

    private static readonly Dictionary<string, InferenceSession> FloatSessions = new();

    private static InferenceSession Session(string file)
    {
        if (!FloatSessions.TryGetValue(file, out var session)) FloatSessions[file] = session = new InferenceSession(file);
        return session;
    }

    // openWakeWord's feature windows: log-mel frames / 10 + 2, 76 frames each, every 8 frames.
    private static float[][] MelWindows(string mel, int seed, int windows)
    {
        var audio = Audio(seed, 16000 * (76 + 8 * (windows - 1) + 10) / 100 + 480, 6000);
        using var input = OrtValue.CreateTensorValueFromMemory(audio, new long[] { 1, audio.Length });
        using var output = Session(mel).Run(Ort.RunOptions, new[] { "input" }, new[] { input }, new[] { "output" });
        var values = output[0].GetTensorDataAsSpan<float>().ToArray();
        int frames = values.Length / 32;
        return Enumerable.Range(0, windows).Select(w =>
        {
            var window = new float[76 * 32];
            for (int i = 0; i < window.Length; i++) window[i] = values[Math.Min(w * 8 * 32 + i, (frames - 1) * 32 + i % 32)] / 10 + 2;
            return window;
        }).ToArray();
    }

    private static float[] Embeddings(string mel, string embedding, int seed, int frames)
    {
        var windows = MelWindows(mel, seed, frames);
        var batch = windows.SelectMany(w => w).ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(batch, new long[] { frames, 76, 32, 1 });
        using var output = Session(embedding).Run(Ort.RunOptions, new[] { "input_1" }, new[] { input }, new[] { "conv2d_19" });
        return output[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static IEnumerable<Dictionary<string, Array>> VadRows(string file, int skip, int count)
    {
        var audio = Audio(7, 512 * (skip + count), 0.3f);
        var state = new float[2 * 128];
        var session = Session(file);
        for (int i = 0; i < skip + count; i++)
        {
            var chunk = audio.AsSpan(512 * i, 512).ToArray();
            if (i >= skip)
                yield return new Dictionary<string, Array> { ["input"] = chunk, ["state"] = state.ToArray(), ["sr"] = new long[] { 16000 } };
            using var x = OrtValue.CreateTensorValueFromMemory(chunk, new long[] { 1, 512 });
            using var h = OrtValue.CreateTensorValueFromMemory(state.ToArray(), new long[] { 2, 1, 128 });
            using var sr = OrtValue.CreateTensorValueFromMemory(new long[] { 16000 }, Array.Empty<long>());
            using var outputs = session.Run(Ort.RunOptions, new[] { "input", "state", "sr" }, new[] { x, h, sr }, new[] { "output", "stateN" });
            state = outputs[1].GetTensorDataAsSpan<float>().ToArray();
        }
    }
}
