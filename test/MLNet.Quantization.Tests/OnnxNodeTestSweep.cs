using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Cli.Calibration;

namespace MLNet.Quantization.Tests;

/// <summary>
/// ONNX's own backend node tests (Debian's <c>libonnx-testdata</c>: one small graph per op and variant, with an input
/// and its expected output) through <c>QuantizeCalibrated</c> with the defaults, as a user would: <c>Fit</c> returns a
/// model or refuses with one of the library's documented exceptions, never an internal one (NullReference,
/// IndexOutOfRange, ONNX Runtime's own), and the model returned gives no NaN or infinity where the float model gives a
/// finite value, every output, of any type, reads through ML.NET, and the transformer's report can be made. Shared by <c>OnnxBackendNodeTests</c> and the benchmark project's <c>onnx-node-tests</c> table.
/// </summary>
/// <remarks>
/// A test holds one row, fed <see cref="Copies"/> times so that some are held back. Node tests feed even weights as
/// inputs, which leaves nothing to quantize; with <c>constants</c>, every input after the first becomes an initializer
/// holding the test's data, so that Conv, Gemm and MatMul read constant weights as in a real model. With <c>int8</c>,
/// <c>MinimumSpeedup</c> is 0, so that the int8 model of a graph too small to gain is returned and checked too. Tests
/// whose inputs ML.NET cannot feed (complex, sequences), or that ONNX Runtime cannot run in float, are skipped; float16 and
/// bfloat16 inputs are fed as float columns, as the library documents.
/// </remarks>
internal static class OnnxNodeTestSweep
{
    /// <summary>Where Debian's libonnx-testdata puts the node tests.</summary>
    public const string DefaultDirectory = "/usr/share/libonnx-testdata/data/node";

    public const int Copies = 10;

    /// <summary>The outcome prefix of an exception that is not one of the library's refusals.</summary>
    public const string Defect = "DEFECT";

    /// <summary>The outcome prefix of a model that introduced a NaN or an infinity.</summary>
    public const string NonFinite = "NaN or infinity introduced";

    // What a refusal may be: the library's own argument and support checks. Anything else escaping Fit is a defect.
    private static readonly HashSet<Type> Refusals = new()
    {
        typeof(ArgumentException), typeof(ArgumentOutOfRangeException), typeof(NotSupportedException),
        typeof(InvalidOperationException), typeof(InvalidDataException),
    };

    /// <summary>The node test folders below <paramref name="root"/> whose name contains <paramref name="only"/>, in order.</summary>
    public static IEnumerable<string> Tests(string root, string only = "") =>
        Directory.GetDirectories(root).Where(d => Path.GetFileName(d).Contains(only, StringComparison.Ordinal)).Order(StringComparer.Ordinal);

    // A failure of the sweep itself (not of Fit) is reported as such, and the sweep goes on.
    private static (string, string) Harnessed(Func<(string, string)> run)
    {
        try
        {
            return run();
        }
        catch (Exception e)
        {
            return ($"skipped: the sweep failed ({e.GetType().Name})", e.Message);
        }
    }

    /// <summary>One node test: its outcome ("int8", "float: …", "refused: …", "skipped: …", <see cref="Defect"/>…) and a detail.</summary>
    public static (string Outcome, string Detail) Run(MLContext ml, string directory, bool constants, bool int8) =>
        Harnessed(() => Try(ml, directory, constants, int8));

    private static (string Outcome, string Detail) Try(MLContext ml, string directory, bool constants, bool int8)
    {
        var modelFile = Path.Combine(directory, "model.onnx");
        var data = Path.Combine(directory, "test_data_set_0");
        if (!File.Exists(modelFile) || !Directory.Exists(data)) return ("skipped: no model or data set", "");
        global::Onnx.ModelProto model;
        try
        {
            model = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelFile));
        }
        catch (Exception e)
        {
            return ("skipped: the model does not parse", e.Message);
        }
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var inputs = model.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        using var temporary = new TemporaryFile();
        if (constants)
        {
            if (inputs.Count < 2) return ("skipped: one input, nothing to make constant", "");
            for (int k = 1; k < inputs.Count; k++)
            {
                var file = Path.Combine(data, $"input_{k}.pb");
                if (!File.Exists(file)) return ("skipped: an input has no data", inputs[k].Name);
                var tensor = global::Onnx.TensorProto.Parser.ParseFrom(File.ReadAllBytes(file));
                tensor.Name = inputs[k].Name;
                model.Graph.Initializer.Add(tensor);
                model.Graph.Input.Remove(inputs[k]);
            }
            inputs = inputs.Take(1).ToList();
            modelFile = temporary.Path;
            File.WriteAllBytes(modelFile, Google.Protobuf.MessageExtensions.ToByteArray(model));
        }
        var values = new List<Array>();
        var native = new Dictionary<int, Array>(); // an input's values as ONNX Runtime takes them, where they differ from the column's
        var shapes = new Dictionary<string, int[]>();
        var builder = new DataViewSchema.Builder();
        for (int k = 0; k < inputs.Count; k++)
        {
            var file = Path.Combine(data, $"input_{k}.pb");
            if (!File.Exists(file)) return ("skipped: an input has no data", inputs[k].Name);
            if (inputs[k].Type?.TensorType is null) return ("skipped: an input is not a tensor (a sequence, map or optional)", inputs[k].Name);
            var tensor = global::Onnx.TensorProto.Parser.ParseFrom(File.ReadAllBytes(file));
            var dims = tensor.Dims.Select(d => (int)d).ToArray();
            long elements = tensor.Dims.Aggregate(1L, (a, b) => a * b);
            if (elements <= 0 || tensor.Dims.Any(d => d < 0)) return ("skipped: an empty input", inputs[k].Name);
            if (elements > int.MaxValue) return ("skipped: an input too large for one ML.NET vector", inputs[k].Name);
            int size = (int)elements;
            if (Halves(tensor) is { } halves)
            {
                // A float16 (or bfloat16) input: the quantized model takes float32 (the library widens float16, and
                // refuses bfloat16 by name), so the column is float; ONNX Runtime's reference takes the 16-bit values.
                values.Add(halves.Floats);
                native[k] = halves.Native;
                builder.AddColumn(inputs[k].Name, new VectorDataViewType(NumberDataViewType.Single, size));
            }
            else if (MLNet.Quantization.Onnx.ElementTypes.Column(tensor.DataType) is { } item)
            {
                values.Add(MLNet.Quantization.Onnx.ElementTypes.Read(tensor));
                builder.AddColumn(inputs[k].Name, new VectorDataViewType(item, size));
            }
            else
                return ("skipped: an input has a type ML.NET cannot feed", $"{inputs[k].Name}: {(global::Onnx.TensorProto.Types.DataType)tensor.DataType}");
            shapes[inputs[k].Name] = dims;
        }
        if (inputs.Count == 0) return ("skipped: no input", "");
        // The float model as ONNX Runtime runs it, on this input: the reference, and the test of whether it runs at all.
        float[]?[] reference;
        string[] outputs = model.Graph.Output.Select(o => o.Name).ToArray();
        try
        {
            using var session = new InferenceSession(modelFile);
            var feeds = inputs.Select((input, k) => Feed(native.GetValueOrDefault(k) ?? values[k], shapes[input.Name].Select(d => (long)d).ToArray())).ToList();
            try
            {
                // Kept alive for the native run: a RunOptions that only the call holds can be finalized during it (a segfault).
                using var runOptions = new RunOptions();
                using var results = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), feeds, outputs);
                reference = results.Select(r => r.GetTensorTypeAndShape().ElementDataType switch
                {
                    Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => r.GetTensorDataAsSpan<float>().ToArray(),
                    // The quantized model gives float32 where the original gives float16.
                    Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16 => r.GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray(),
                    _ => null,
                }).ToArray();
            }
            finally
            {
                foreach (var feed in feeds) feed.Dispose();
            }
        }
        catch (Exception e)
        {
            return ("skipped: ONNX Runtime cannot run the float model", e.Message.Split('\n')[0]);
        }
        var rows = Enumerable.Repeat(values.ToArray(), Copies).ToList();
        var view = new RowsDataView(builder.ToSchema(), () => rows);
        QuantizingTransformer? fitted = null;
        try
        {
            fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
            {
                ModelFile = modelFile, ShapeDictionary = shapes, MinimumSpeedup = int8 ? 0 : QuantizationDefaults.MinimumSpeedup,
            }).Fit(view);
            var deployment = fitted.Deployment;
            long introduced = deployment?.Outputs.Sum(o => o.NonFiniteIntroduced) ?? 0;
            // The returned model through ML.NET, against the float model's outputs.
            var scored = fitted.Transform(view);
            // Every output, of whatever type (string, bool, integers…), is a column that ML.NET reads on every row.
            var missing = outputs.FirstOrDefault(o => scored.Schema.GetColumnOrNull(o) is null);
            if (missing is not null) return ($"{Defect}: an output is missing", missing);
            var preview = scored.Preview(Copies + 1);
            if (preview.RowView.Length != Copies) return ($"{Defect}: rows lost", $"{preview.RowView.Length} of {Copies} rows scored");
            // The report (the CLI's summary reads it) measures the model returned.
            if (double.IsNaN(fitted.Report.OutputCosine) && fitted.Report.Rows > 0) return ($"{Defect}: the report's output cosine is NaN", "");
            for (int k = 0; k < outputs.Length; k++)
            {
                if (reference[k] is not { } expected || scored.Schema.GetColumnOrNull(outputs[k]) is not { } column
                    || column.Type is not VectorDataViewType { ItemType: NumberDataViewType n } || n != NumberDataViewType.Single)
                    continue;
                // Every row read, none left to a cursor abandoned part-way: ML.NET's parallel cursor workers could still be
                // running the session when the transformer is disposed below.
                foreach (var row in scored.GetColumn<float[]>(column).ToList().Take(1))
                    introduced += row.Zip(expected).Count(p => !float.IsFinite(p.First) && float.IsFinite(p.Second));
            }
            string kind = deployment is null ? "int8 (unchecked)" : deployment.QuantizedNothing ? "float: nothing to quantize"
                : deployment.KeptFloat ? "float: kept by the check" : "int8";
            if (introduced > 0) return ($"{NonFinite} ({kind})", $"{introduced} values");
            return (kind, kind == "int8" ? $"{fitted.Calibration.Count} tensors; worst relative error {deployment!.Outputs.Select(o => o.RelativeError).DefaultIfEmpty(0).Max():F3}"
                : deployment?.Summary ?? "");
        }
        catch (Exception e) when (Refusals.Contains(e.GetType()) && !e.Message.Contains("[ErrorCode:", StringComparison.Ordinal))
        {
            return ($"refused: {e.GetType().Name}", e.Message.Split('\n')[0]);
        }
        catch (Exception e)
        {
            return ($"{Defect}: {e.GetType().Name}", e.Message.Split('\n')[0]);
        }
        finally
        {
            fitted?.Dispose();
        }
    }

    // A float16 or bfloat16 tensor's values, as floats and as ONNX Runtime's 16-bit type; null for other types.
    private static (float[] Floats, Array Native)? Halves(global::Onnx.TensorProto tensor)
    {
        var type = (global::Onnx.TensorProto.Types.DataType)tensor.DataType;
        if (type is not (global::Onnx.TensorProto.Types.DataType.Float16 or global::Onnx.TensorProto.Types.DataType.Bfloat16)) return null;
        var bits = tensor.RawData.IsEmpty ? tensor.Int32Data.Select(v => (ushort)v).ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(tensor.RawData.Span).ToArray();
        if (type == global::Onnx.TensorProto.Types.DataType.Float16)
        {
            var halves = bits.Select(b => new Float16(b)).ToArray();
            return (halves.Select(h => (float)h).ToArray(), halves);
        }
        var brains = bits.Select(b => new BFloat16(b)).ToArray();
        return (brains.Select(h => (float)h).ToArray(), brains);
    }

    // An ONNX Runtime tensor over a test input's values, of any type ML.NET feeds.
    private static OrtValue Feed(Array values, long[] shape)
    {
        switch (values)
        {
            case float[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case double[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case sbyte[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case byte[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case short[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case ushort[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case int[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case uint[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case long[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case ulong[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case bool[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case Float16[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case BFloat16[] a: return OrtValue.CreateTensorValueFromMemory(a, shape);
            case ReadOnlyMemory<char>[] a:
                var tensor = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
                for (int i = 0; i < a.Length; i++) tensor.StringTensorSetElementAt(a[i].Span, i);
                return tensor;
            default: throw new NotSupportedException($"No ONNX Runtime tensor for {values.GetType().Name}.");
        }
    }

    private sealed class TemporaryFile : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"onnx-node-test-{Guid.NewGuid():N}.onnx");

        public void Dispose() => File.Delete(Path);
    }
}
