using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Samples;
using Onnx;

namespace MLNet.Quantization.Benchmarks;

// The weight-range variants of issue 9, measured where the CPU's kernels decide: on bright images (inverted
// Fashion-MNIST) for ResNet18 and on WordNet glosses for all-MiniLM-L6-v2.
//   cpu export DIR [calibrationRows]: fits every variant (int8 and simulated) on this machine and writes the models
//     and the scoring inputs to DIR;
//   cpu score DIR [threads]: runs them all in raw ONNX Runtime and prints the agreement table (and ms/row).
// `score` can run under `qemu-x86_64 -cpu max`, whose x86-64 has AVX2 but neither AVX-512 nor VNNI: ONNX Runtime then
// takes its vpmaddubsw kernels, as on an AVX2-only CPU (the harness checks that it saturates first). Timings under
// emulation mean nothing; the cosines are those of an AVX2 CPU.
internal static class SaturationHarness
{
    private const int ScoredRows = 100;

    private sealed record Variant(string Name, WeightRange Range, bool FirstLayerSevenBit = false);

    private static readonly Variant[] Variants =
    {
        new("full 8-bit weights (before)", WeightRange.Full),
        new("7-bit weights (reduce_range)", WeightRange.SevenBit),
        new("pair-bounded weights (default)", WeightRange.PairBounded),
        new("7-bit first layer only (NNCF overflow fix, per tensor)", WeightRange.Full, FirstLayerSevenBit: true),
    };

    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("Usage: cpu export DIR [calibrationRows] | cpu score DIR [threads]");
        if (args[0] == "export") Export(args[1], args.Length > 2 ? int.Parse(args[2]) : 200);
        else Score(args[1], args.Length > 2 ? int.Parse(args[2]) : 1, args.Length > 3 ? int.Parse(args[3]) : ScoredRows, args.Length > 4 ? args[4] : "all");
    }

    private static void Export(string directory, int calibrationRows)
    {
        Directory.CreateDirectory(directory);
        var ml = new MLContext(seed: 1);

        // ResNet18 on bright images: Fashion-MNIST inverted, white backgrounds.
        var data = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var preprocess = ml.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess);
        float[][] Preprocessed(string split, int count, bool invert)
        {
            var (images, labels) = FashionMnist.Read(data, split, 0, count);
            if (invert) images = images.Select(i => i.Select(p => (byte)(255 - p)).ToArray()).ToArray();
            var raw = FashionMnist.ToDataView(ml, images, labels);
            return preprocess.Fit(raw).Transform(raw).GetColumn<float[]>("PreprocessedInput").ToArray();
        }
        var calibration = ml.Data.LoadFromEnumerable(Preprocessed("train-subset", calibrationRows, invert: true)
            .Select(v => new ResNet18Harness.Input { Input247 = v }).ToArray());
        WriteFloats(Path.Combine(directory, "resnet18-bright.inputs"), Preprocessed("test-subset", ScoredRows, invert: true));
        WriteFloats(Path.Combine(directory, "resnet18-dark.inputs"), Preprocessed("test-subset", ScoredRows, invert: false));
        File.Copy(ResNet18Model.ResNet18, Path.Combine(directory, "resnet18.fp32.onnx"), overwrite: true);
        var firstConv = ModelProto.Parser.ParseFrom(File.ReadAllBytes(ResNet18Model.ResNet18)).Graph.Node.First(n => n.OpType == "Conv").Name;
        foreach (var (variant, index) in Variants.Select((v, i) => (v, i)))
            foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
            {
                var clock = Stopwatch.StartNew();
                using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
                {
                    ModelFile = ResNet18Model.ResNet18, Mode = mode, WeightRange = variant.Range,
                    CustomCalibration = variant.FirstLayerSevenBit
                        ? s => s.Role == TensorRole.Weight && s.Node == firstConv ? new Calibration.TensorRange((float)-s.AbsMax * 2, (float)s.AbsMax * 2) : null
                        : null,
                }).Fit(calibration);
                model.ExportOnnx(Path.Combine(directory, $"resnet18.v{index}.{mode}.onnx"));
                Console.WriteLine($"ResNet18 {variant.Name} {mode}: fitted in {clock.Elapsed.TotalSeconds:F1} s" +
                    (mode == QuantizationMode.Int8 ? $", agreement at Fit {model.Agreement}{Layers(model.Agreement)}" : ""));
            }

        // MiniLM on WordNet glosses (unpadded, at most 128 tokens).
        var (texts, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        IDataView Tokens(IEnumerable<string> rows)
        {
            var text = ml.Data.LoadFromEnumerable(rows.Select(t => new MiniLm.TextRow { Text = t }));
            var tokens = MiniLm.Tokenize(ml).Fit(text).Transform(text);
            return ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<MiniLm.Tokens>(tokens, reuseRowObject: false).ToArray());
        }
        var textCalibration = Tokens(texts.Take(calibrationRows));
        var scored = ml.Data.CreateEnumerable<MiniLm.Tokens>(Tokens(texts.Skip(calibrationRows).Take(ScoredRows)), reuseRowObject: false).ToArray();
        WriteLongs(Path.Combine(directory, "minilm.inputs"), scored.Select(t => t.input_ids).ToArray());
        File.Copy(MiniLm.ModelFile, Path.Combine(directory, "minilm.fp32.onnx"), overwrite: true);
        foreach (var (variant, index) in Variants.Select((v, i) => (v, i)).Where(v => !v.v.FirstLayerSevenBit))
            foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
            {
                using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
                {
                    ModelFile = MiniLm.ModelFile, OutputColumnNames = new[] { MiniLm.Output }, Mode = mode, WeightRange = variant.Range,
                }).Fit(textCalibration);
                model.ExportOnnx(Path.Combine(directory, $"minilm.v{index}.{mode}.onnx"));
                Console.WriteLine($"MiniLM {variant.Name} {mode}" + (mode == QuantizationMode.Int8 ? $": agreement at Fit {model.Agreement}{Layers(model.Agreement)}" : ""));
            }
    }

    private static string Layers(RealizationAgreement? agreement) => agreement is null || agreement.Agrees ? ""
        : "; parts first at " + string.Join(", ", agreement.Layers.Take(3).Select(l => $"{l.Tensor} ({l.OpType}, {l.MismatchFraction:P1} of values)"));

    private static void Score(string directory, int threads, int rows, string models)
    {
        Console.WriteLine($"CPU as ONNX Runtime sees it: {Realize.CpuFeatures.Describe()}; saturation probe (255 × 127 × 64 = 2,072,640): {SaturationProbe()}");
        InferenceSession Session(string file) => new(file, new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 });

        var bright = ReadFloats(Path.Combine(directory, "resnet18-bright.inputs")).Take(rows).ToArray();
        var dark = ReadFloats(Path.Combine(directory, "resnet18-dark.inputs")).Take(rows).ToArray();
        float[] RunImage(InferenceSession s, float[] input)
        {
            using var value = OrtValue.CreateTensorValueFromMemory(input, new long[] { 1, 3, 224, 224 });
            using var outputs = s.Run(Ort.RunOptions, new[] { ResNet18Model.Input }, new[] { value }, new[] { ResNet18Model.Output });
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        var ids = ReadLongs(Path.Combine(directory, "minilm.inputs")).Take(rows).ToArray();
        float[] RunText(InferenceSession s, long[] tokens)
        {
            var shape = new long[] { 1, tokens.Length };
            using var a = OrtValue.CreateTensorValueFromMemory(tokens, shape);
            using var b = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, tokens.Length).ToArray(), shape);
            using var c = OrtValue.CreateTensorValueFromMemory(new long[tokens.Length], shape);
            using var outputs = s.Run(Ort.RunOptions, new[] { "input_ids", "attention_mask", "token_type_ids" }, new[] { a, b, c }, new[] { MiniLm.Output });
            var states = outputs[0].GetTensorDataAsSpan<float>();
            var pooled = new float[MiniLm.Dimensions];
            for (int t = 0; t < tokens.Length; t++)
                for (int d = 0; d < MiniLm.Dimensions; d++) pooled[d] += states[t * MiniLm.Dimensions + d] / tokens.Length;
            return pooled;
        }

        Console.WriteLine();
        Console.WriteLine("| model | weights | int8 vs fp32 cosine (mean / worst) | int8 vs simulated (mean / worst) | simulated vs fp32 (mean) | int8 ms/row | fp32 ms/row | speed-up |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        // fp32 and simulated outputs are float arithmetic, the same on every CPU: a run that finds them cached (by an
        // earlier native run) reads them, so that an emulated run spends its time on the int8 models only.
        (float[][] Outputs, double MsPerRow) Cached<T>(string file, string set, T[] inputs, Func<InferenceSession, T, float[]> run)
        {
            var cache = Path.Combine(directory, $"{Path.GetFileNameWithoutExtension(file)}.{set}.{inputs.Length}.outputs");
            if (File.Exists(cache)) return (ReadFloats(cache), double.NaN);
            using var session = Session(file);
            var result = Outputs(session, inputs, run);
            WriteFloats(cache, result.Outputs);
            return result;
        }
        void Table<T>(string title, string prefix, T[] inputs, Func<InferenceSession, T, float[]> run)
        {
            string set = title.Contains("bright") ? "bright" : "plain";
            var (reference, fp32Ms) = Cached(Path.Combine(directory, $"{prefix}.fp32.onnx"), set, inputs, run);
            foreach (var (variant, index) in Variants.Select((v, i) => (v, i)))
            {
                var int8File = Path.Combine(directory, $"{prefix}.v{index}.Int8.onnx");
                if (!File.Exists(int8File)) continue;
                using var int8 = Session(int8File);
                var (q, int8Ms) = Outputs(int8, inputs, run);
                var (sim, _) = Cached(Path.Combine(directory, $"{prefix}.v{index}.Simulated.onnx"), set, inputs, run);
                var toFloat = reference.Zip(q, Report.Cosine).ToArray();
                var toSim = sim.Zip(q, Report.Cosine).ToArray();
                var simToFloat = reference.Zip(sim, Report.Cosine).ToArray();
                Console.WriteLine($"| {title} | {variant.Name} | {toFloat.Average():F4} / {toFloat.Min():F4} | {toSim.Average():F5} / {toSim.Min():F5} | " +
                    $"{simToFloat.Average():F4} | {int8Ms:F2} | {fp32Ms:F2} | {fp32Ms / int8Ms:F2}x |");
            }
        }
        if (models is "all" or "resnet18")
        {
            Table($"ResNet18, {bright.Length} bright (inverted) Fashion-MNIST images", "resnet18", bright, RunImage);
            Table($"ResNet18, {dark.Length} Fashion-MNIST images", "resnet18", dark, RunImage);
        }
        if (models is "all" or "minilm")
            Table($"all-MiniLM-L6-v2, {ids.Length} glosses, mean-pooled", "minilm", ids, RunText);
    }

    // Runs every input once to warm up, then again timed.
    private static (float[][] Outputs, double MsPerRow) Outputs<T>(InferenceSession session, T[] inputs, Func<InferenceSession, T, float[]> run)
    {
        run(session, inputs[0]);
        var watch = Stopwatch.StartNew();
        var outputs = inputs.Select(i => run(session, i)).ToArray();
        return (outputs, watch.Elapsed.TotalMilliseconds / inputs.Length);
    }

    // MatMulInteger of 64 uint8 255s by 64 int8 127s: exact with VNNI, 32 × 32,767 where vpmaddubsw saturates.
    private static string SaturationProbe()
    {
        const int K = 64;
        var model = new ModelProto { IrVersion = 7, Graph = new GraphProto { Name = "probe" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var weight = new TensorProto { Name = "B", DataType = 3, RawData = Google.Protobuf.ByteString.CopyFrom(Enumerable.Repeat((byte)127, K).ToArray()) };
        weight.Dims.Add(K);
        weight.Dims.Add(1);
        model.Graph.Initializer.Add(weight);
        var node = new NodeProto { OpType = "MatMulInteger", Name = "mm" };
        node.Input.Add("A");
        node.Input.Add("B");
        node.Output.Add("Y");
        model.Graph.Node.Add(node);
        model.Graph.Input.Add(Value("A", 2, 1, K));
        model.Graph.Output.Add(Value("Y", 6, 1, 1));
        using var session = new InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(model));
        using var a = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat((byte)255, K).ToArray(), new long[] { 1, K });
        using var y = session.Run(Ort.RunOptions, new[] { "A" }, new[] { a }, new[] { "Y" });
        int result = y[0].GetTensorDataAsSpan<int>()[0];
        return result == 255 * 127 * K ? $"{result:N0}, exact" : $"{result:N0}, SATURATED";

        static ValueInfoProto Value(string name, int type, params long[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type, Shape = shape } } };
        }
    }

    private static void WriteFloats(string path, float[][] rows) => Write(path, rows);

    private static float[][] ReadFloats(string path) => Read<float>(path);

    private static void WriteLongs(string path, long[][] rows) => Write(path, rows);

    private static long[][] ReadLongs(string path) => Read<long>(path);

    // Rows of one element type: a count, then each row's length and raw values.
    private static void Write<T>(string path, T[][] rows) where T : unmanaged
    {
        using var writer = new BinaryWriter(File.Create(path));
        writer.Write(rows.Length);
        foreach (var row in rows)
        {
            writer.Write(row.Length);
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.AsSpan()));
        }
    }

    private static T[][] Read<T>(string path) where T : unmanaged
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        return Enumerable.Range(0, reader.ReadInt32()).Select(_ =>
        {
            var row = new T[reader.ReadInt32()];
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.AsSpan()));
            return row;
        }).ToArray();
    }
}
