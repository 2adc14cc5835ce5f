using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Benchmarks;

// The zoo's models as files, for measuring them on another CPU with ONNX Runtime alone (bench/device/zoo_check.py):
// per model the float model, the realized int8 model (options as the zoo's "unchecked untuned" row: the recipe as set),
// the held-out rows, and what this CPU's ONNX Runtime gives for them (int8 outputs, simulated outputs, times), and a
// float model rebuilt from the int8 one (FloatFromInt8) that stands for the float model where that is too large to travel. The
// other CPU then compares its own int8 outputs with these: realized vs simulated there, and int8 here vs int8 there.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- zoo-export DIR [only] [rounds] [rows]
internal static class ZooExport
{
    // Outputs written per model and kind, at most (the rows are cut to fit): the directory travels to the other machine.
    private const long OutputBytes = 3 << 20;

    public static void Run(string[] args)
    {
        string root = Path.GetFullPath(args[0]);
        string only = args.Length > 1 ? args[1] : "";
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 5;
        int maximumRows = args.Length > 3 ? int.Parse(args[3]) : int.MaxValue;
        Directory.CreateDirectory(root);
        Console.WriteLine($"CPU {Realize.CpuFeatures.Describe()}, ONNX Runtime (C#) 1 thread, {rounds} alternated rounds");
        Console.WriteLine();
        Console.WriteLine("| model | rows | int8 vs fp32 (worst output, relative error) | int8 vs simulated | fp32 ms | derived float ms (its error vs fp32) | int8 ms | speed-up |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        // Without a filter: every model but the large ones (ResNet18, ISNet, MiniLM), which travel alone. Each model's
        // directory is named by its place in the zoo, so that separate runs (one process per model) fill one tree.
        var models = ZooHarness.All().Append(MiniLmModel()).Select((m, i) => (Model: m, Index: i)).Where(m => only.Length > 0
            ? m.Model.Name.Contains(only, StringComparison.Ordinal)
            : !m.Model.Name.StartsWith("ISNet", StringComparison.Ordinal) && !m.Model.Name.StartsWith("ResNet18", StringComparison.Ordinal)
                && !m.Model.Name.StartsWith("MiniLM", StringComparison.Ordinal));
        foreach (var (model, index) in models)
        {
            string directory = Path.Combine(root, $"m{index:D2}");
            Directory.CreateDirectory(directory);
            var entry = Export(model, directory, rounds, maximumRows);
            File.WriteAllText(Path.Combine(directory, "entry.json"), JsonSerializer.Serialize(entry, new JsonSerializerOptions { WriteIndented = true }));
        }
    }

    private static object Export(ZooHarness.Model model, string directory, int rounds, int maximumRows)
    {
        var ml = new MLContext(seed: 1);
        var (inputs, _, view) = ZooHarness.CalibrationRows(model);
        // ZOO_METHOD=Percentile, ZOO_SMOOTHQUANT=0.8: a recipe other than the one as set (the tuner's choice, say).
        var method = Environment.GetEnvironmentVariable("ZOO_METHOD") is { Length: > 0 } m ? Enum.Parse<CalibrationMethod>(m) : (CalibrationMethod?)null;
        var alpha = Environment.GetEnvironmentVariable("ZOO_SMOOTHQUANT") is { Length: > 0 } a
            ? double.Parse(a, System.Globalization.CultureInfo.InvariantCulture) : (double?)null;
        // ZOO_DEFAULTS=1: the int8 model as the defaults return it (tuning and the deployment check on) but with
        // MinimumSpeedup = 0, as a user fitting here for a VNNI server would set it; the simulated model stays the recipe as set.
        bool defaults = Environment.GetEnvironmentVariable("ZOO_DEFAULTS") == "1";
        string Fit(QuantizationMode mode, string file)
        {
            bool asDefaults = defaults && mode == QuantizationMode.Int8;
            var options = new QuantizingEstimator.Options
            {
                ModelFile = model.File, ShapeDictionary = model.Shapes, Mode = mode, CheckDeployment = asDefaults, Tuning = asDefaults ? new TuningOptions() : null,
                IntraOpNumThreads = 1, SmoothQuantAlpha = alpha, MinimumSpeedup = asDefaults ? 0 : QuantizationDefaults.MinimumSpeedup,
            };
            if (method is { } chosen) options.ActivationCalibration = chosen;
            // ZOO_WEIGHT_RANGE=Full: the weight range (Full is for VNNI CPUs only: measure its accuracy, not its AVX2 speed).
            if (Environment.GetEnvironmentVariable("ZOO_WEIGHT_RANGE") is { Length: > 0 } range) options.WeightRange = Enum.Parse<WeightRange>(range);
            // ZOO_CLE=1: cross-layer equalization.
            if (Environment.GetEnvironmentVariable("ZOO_CLE") == "1") options.CrossLayerEqualization = true;
            // ZOO_BIAS_CORRECTION=Fast: bias correction.
            if (Environment.GetEnvironmentVariable("ZOO_BIAS_CORRECTION") is { Length: > 0 } bias) options.BiasCorrection = Enum.Parse<BiasCorrection>(bias);
            // ZOO_WEIGHT_SCALE=PowerOfTwo: the weight scale method.
            if (Environment.GetEnvironmentVariable("ZOO_WEIGHT_SCALE") is { Length: > 0 } scale) options.WeightScale = Enum.Parse<WeightScaleMethod>(scale);
            using var fitted = ml.Transforms.QuantizeCalibrated(options).Fit(view);
            if (asDefaults)
                Console.Error.WriteLine($"{model.Name}: {fitted.Deployment?.Summary} Tuning stopped: {fitted.Tuning?.StoppedBecause}; chosen: {fitted.Tuning?.Best?.Recipe}");
            fitted.ExportOnnx(file);
            return file;
        }
        var int8 = Fit(QuantizationMode.Int8, Path.Combine(directory, "int8.onnx"));
        var simulated = Fit(QuantizationMode.Simulated, Path.Combine(directory, "simulated.onnx"));
        var fp32 = Path.Combine(directory, "fp32.onnx");
        var graph = Onnx.OnnxGraph.Load(model.File);
        if (Onnx.Float16Conversion.Convert(graph).Count > 0) File.WriteAllBytes(fp32, graph.ToBytes());
        else File.Copy(model.File, fp32, overwrite: true);

        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var floatSession = new InferenceSession(fp32, options);
        using var int8Session = new InferenceSession(int8, options);
        using var simulatedSession = new InferenceSession(simulated, options);
        var derived = Path.Combine(directory, "derived.onnx");
        File.WriteAllBytes(derived, FloatFromInt8(Onnx.OnnxGraph.Load(int8)).ToBytes());
        using var derivedSession = new InferenceSession(derived, options);
        var outputs = floatSession.OutputMetadata.Keys.ToArray();
        var names = inputs.Select(i => i.Name).ToArray();
        var all = model.Rows(model.Calibration, model.HeldOut).ToList();
        // The rows that fit: outputs of one row, from a first run.
        var firstOutputs = Run(floatSession, names, all[0], model.Shapes, outputs);
        long perRow = firstOutputs.Sum(o => (long)o.Length * 4);
        int rows = (int)Math.Clamp(OutputBytes / Math.Max(1, perRow), 1, Math.Min(all.Count, maximumRows));
        var used = all.Take(rows).ToList();

        foreach (var (input, k) in names.Select((n, k) => (n, k)))
        {
            using var file = File.Create(Path.Combine(directory, $"input{k}.bin"));
            foreach (var row in used) Write(file, row[input]);
        }
        var floats = used.Select(r => Run(floatSession, names, r, model.Shapes, outputs)).ToList();
        var quantized = used.Select(r => Run(int8Session, names, r, model.Shapes, outputs)).ToList();
        var simulatedOutputs = used.Select(r => Run(simulatedSession, names, r, model.Shapes, outputs)).ToList();
        var derivedOutputs = used.Select(r => Run(derivedSession, names, r, model.Shapes, outputs)).ToList();
        for (int k = 0; k < outputs.Length; k++)
        {
            foreach (var (kind, values) in new[] { ("fp32", floats), ("int8", quantized), ("simulated", simulatedOutputs) })
            {
                using var file = File.Create(Path.Combine(directory, $"{kind}_output{k}.bin"));
                foreach (var row in values) Write(file, row[k]);
            }
        }
        // Only the float and int8 models travel: the simulated one's outputs are above.
        File.Delete(simulated);

        var floatTimes = new List<double>();
        var int8Times = new List<double>();
        var derivedTimes = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            floatTimes.Add(Time(floatSession, names, used, model.Shapes, outputs));
            derivedTimes.Add(Time(derivedSession, names, used, model.Shapes, outputs));
            int8Times.Add(Time(int8Session, names, used, model.Shapes, outputs));
        }
        double f = ZooHarness.Median(floatTimes), q = ZooHarness.Median(int8Times), g = ZooHarness.Median(derivedTimes);
        double Worst(List<float[][]> reference, List<float[][]> other) => Enumerable.Range(0, outputs.Length).Max(k => ZooHarness.Relative(reference, other, k));
        double derivedError = Worst(floats, derivedOutputs), error = Worst(floats, quantized), agreement = Worst(simulatedOutputs, quantized);
        Console.WriteLine($"| {model.Name} | {rows} | {error:F4} | {agreement:F4} | {f:F3} | {g:F3} ({derivedError:F4}) | {q:F3} | {f / q:F2}x |");
        return new
        {
            name = model.Name + (defaults ? " (defaults, MinimumSpeedup 0)" : "") + (method is null && alpha is null ? "" : $" ({method?.ToString() ?? "default method"}{(alpha is null ? "" : $", SmoothQuant {alpha}")})"),
            cpu = Realize.CpuFeatures.Describe(),
            directory = Path.GetFileName(directory),
            rows,
            inputs = names.Select((n, k) => new
            {
                name = n,
                type = used[0][n] is long[] ? "int64" : "float32",
                shape = model.Shapes[n],
            }).ToArray(),
            outputs,
            here = new { fp32Ms = f, derivedMs = g, int8Ms = q, int8VsFp32 = error, int8VsSimulated = agreement, derivedVsFp32 = derivedError },
        };
    }

    // all-MiniLM-L6-v2 (NuGet) on WordNet glosses padded to 128 tokens (export only: the zoo table has its own harness).
    private static ZooHarness.Model MiniLmModel()
    {
        var ml = new MLContext(seed: 1);
        var (texts, _) = Samples.WordNetGlosses.Read(AppContext.BaseDirectory);
        IEnumerable<Dictionary<string, Array>> Rows(int skip, int count)
        {
            var text = ml.Data.LoadFromEnumerable(texts.Skip(skip).Take(count).Select(t => new Samples.MiniLm.TextRow { Text = t }));
            var tokens = Samples.MiniLm.Tokenize(ml, padToMaxTokens: true).Fit(text).Transform(text);
            return ml.Data.CreateEnumerable<Samples.MiniLm.Tokens>(tokens, reuseRowObject: false).Select(t => new Dictionary<string, Array>
            {
                ["input_ids"] = t.input_ids, ["attention_mask"] = t.attention_mask, ["token_type_ids"] = t.token_type_ids,
            }).ToList();
        }
        return new ZooHarness.Model("MiniLM (NuGet)", Samples.MiniLm.ModelFile, "transformer encoder, MatMul", 64, 16, Rows,
            new() { ["input_ids"] = new[] { 1, 128 }, ["attention_mask"] = new[] { 1, 128 }, ["token_type_ids"] = new[] { 1, 128 } });
    }

    /// <summary>
    /// A float model of the int8 model's own graph, for timing the float model where it is too large to travel: each
    /// weight's DequantizeLinear becomes its float values (the int8 rounding kept: no kernel's time depends on it) and
    /// each activation's DequantizeLinear after a QuantizeLinear becomes an Identity of the float tensor, which ONNX
    /// Runtime removes, or a Relu where the uint8 zero point is 0 (the range held a Relu that the realizer dropped).
    /// </summary>
    internal static Onnx.OnnxGraph FloatFromInt8(Onnx.OnnxGraph int8)
    {
        var graph = int8.Clone();
        foreach (var dq in graph.Graph.Node.Where(n => n.OpType == "DequantizeLinear").ToList())
        {
            var producer = graph.Producer(dq.Input[0]);
            if (producer?.OpType == "QuantizeLinear")
            {
                // A zero point of 0 in uint8 clamps at 0: the realizer drops a Relu that the range holds, so it comes back.
                var zero = dq.Input.Count > 2 ? graph.FindInitializer(dq.Input[2]) : null;
                bool clamps = zero is { DataType: Onnx.Tensors.UInt8 } && zero.RawData.Span.ToArray().All(b => b == 0);
                var identity = Onnx.OnnxGraph.MakeNode(clamps ? "Relu" : "Identity", dq.Name + "_float", new[] { producer.Input[0] }, new[] { dq.Output[0] });
                graph.RemoveNode(dq);
                graph.AddNode(identity);
            }
            else if (graph.FindInitializer(dq.Input[0]) is { } values)
            {
                var dims = values.Dims.ToArray();
                double[] raw = values.DataType switch
                {
                    Onnx.Tensors.Int8 => values.RawData.Span.ToArray().Select(b => (double)(sbyte)b).ToArray(),
                    Onnx.Tensors.Int32 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(values.RawData.Span).ToArray().Select(v => (double)v).ToArray(),
                    _ => throw new NotSupportedException($"{dq.Name}: {values.DataType}"),
                };
                var scales = Onnx.Tensors.ReadFloats(graph.FindInitializer(dq.Input[1])!);
                int axis = (int)(dq.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 1);
                if (axis < 0) axis += dims.Length;
                long inner = scales.Length == 1 ? 1 : dims.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
                var floats = new float[raw.Length];
                for (int i = 0; i < raw.Length; i++)
                    floats[i] = (float)(raw[i] * scales[scales.Length == 1 ? 0 : (int)(i / inner % scales.Length)]); // zero points are 0
                graph.RemoveNode(dq);
                graph.AddInitializer(Onnx.Tensors.FromFloats(dq.Output[0], dims, floats));
            }
        }
        foreach (var q in graph.Graph.Node.Where(n => n.OpType == "QuantizeLinear" && graph.Consumers(n.Output[0]).Count == 0).ToList())
            graph.RemoveNode(q);
        graph.SortTopologically();
        Onnx.GraphPreparation.RemoveUnusedInitializers(graph);
        return graph;
    }

    private static float[][] Run(InferenceSession session, string[] names, Dictionary<string, Array> row, Dictionary<string, int[]> shapes, string[] outputs)
    {
        var values = names.Select(n => row[n] is long[] l
            ? OrtValue.CreateTensorValueFromMemory(l, shapes[n].Select(d => (long)d).ToArray())
            : OrtValue.CreateTensorValueFromMemory((float[])row[n], shapes[n].Select(d => (long)d).ToArray())).ToList();
        try
        {
            using var results = session.Run(Ort.RunOptions, names, values, outputs);
            return results.Select(r => r.GetTensorDataAsSpan<float>().ToArray()).ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    // One round: the rows scored again until the round lasts ZooHarness.MinimumRoundMs; milliseconds per row.
    private static double Time(InferenceSession session, string[] names, List<Dictionary<string, Array>> rows, Dictionary<string, int[]> shapes, string[] outputs)
    {
        var watch = Stopwatch.StartNew();
        int count = 0;
        do
        {
            foreach (var row in rows) Run(session, names, row, shapes, outputs);
            count += rows.Count;
        }
        while (watch.Elapsed.TotalMilliseconds < ZooHarness.MinimumRoundMs);
        return watch.Elapsed.TotalMilliseconds / count;
    }

    private static void Write(Stream stream, Array values)
    {
        var bytes = new byte[Buffer.ByteLength(values)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        stream.Write(bytes);
    }
}
