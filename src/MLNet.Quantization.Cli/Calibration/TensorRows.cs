using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>
/// A folder laid out like ONNX's test data: <c>test_data_set_*/input_*.pb</c>, one serialized TensorProto per model
/// input (matched by the tensor's name, else by the file's index). Inputs of every type ML.NET's OnnxTransformer feeds:
/// float, double, integers of 8 to 64 bits, bool and string.
/// </summary>
internal static class TensorRows
{
    public static IReadOnlyList<string> Sets(string folder)
    {
        var sets = Directory.EnumerateDirectories(folder, "test_data_set_*").OrderBy(d => d, StringComparer.Ordinal).ToList();
        if (sets.Count == 0)
            throw new UsageException($"'{folder}' holds no test_data_set_* folders of input_*.pb tensors.");
        return sets;
    }

    public static IDataView View(IReadOnlyList<ModelInput> inputs, IReadOnlyList<string> sets, out Dictionary<string, int[]> shapes)
    {
        var first = Read(inputs, sets[0]);
        shapes = inputs.ToDictionary(i => i.Name, i => first[i.Name].Dims.Select(d => checked((int)d)).ToArray());
        var builder = new DataViewSchema.Builder();
        foreach (var input in inputs)
        {
            var dims = shapes[input.Name];
            if (input.Dims.Length != dims.Length || input.Dims.Zip(dims).Any(p => p.First > 0 && p.First != p.Second))
                throw new UsageException(
                    $"The tensor for input '{input.Name}' in '{sets[0]}' has shape [{string.Join(",", dims)}]; the model takes [{string.Join(",", input.Dims)}].");
            builder.AddColumn(input.Name, new VectorDataViewType(Column(input), dims));
        }
        var expected = shapes;
        return new RowsDataView(builder.ToSchema(), () => sets.Select(set =>
        {
            var tensors = Read(inputs, set);
            return inputs.Select(i =>
            {
                var t = tensors[i.Name];
                if (!t.Dims.Select(d => (int)d).SequenceEqual(expected[i.Name]))
                    throw new UsageException($"The tensor for input '{i.Name}' in '{set}' has shape [{string.Join(",", t.Dims)}], unlike the first set's.");
                return Values(t, i, set);
            }).ToArray();
        }));
    }

    private static Dictionary<string, TensorProto> Read(IReadOnlyList<ModelInput> inputs, string set)
    {
        var files = Directory.EnumerateFiles(set, "input_*.pb").OrderBy(f => Index(f)).ToList();
        var byName = new Dictionary<string, TensorProto>();
        for (int k = 0; k < files.Count; k++)
        {
            TensorProto tensor;
            try
            {
                tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(files[k]));
            }
            catch (Google.Protobuf.InvalidProtocolBufferException e)
            {
                throw new UsageException($"'{files[k]}' is not a serialized ONNX TensorProto: {e.Message}");
            }
            string name = inputs.Any(i => i.Name == tensor.Name) ? tensor.Name : k < inputs.Count ? inputs[k].Name : tensor.Name;
            byName[name] = tensor;
        }
        var missing = inputs.FirstOrDefault(i => !byName.ContainsKey(i.Name));
        if (missing is not null)
            throw new UsageException($"'{set}' has no tensor for model input '{missing.Name}'.");
        return byName;
    }

    private static int Index(string file) =>
        int.TryParse(Path.GetFileNameWithoutExtension(file).Split('_').Last(), out var i) ? i : int.MaxValue;

    /// <summary>The ML.NET item type of <paramref name="input"/>'s column.</summary>
    public static PrimitiveDataViewType Column(ModelInput input) => ElementTypes.Column((int)input.ElementType)
        ?? throw new UsageException($"Model input '{input.Name}' takes {input.ElementType}, which ML.NET cannot feed.");

    private static Array Values(TensorProto t, ModelInput input, string set)
    {
        var type = (TensorProto.Types.DataType)t.DataType;
        if (type != input.ElementType)
            throw new UsageException($"The tensor for input '{input.Name}' in '{set}' is {type}; the model takes {input.ElementType}.");
        try
        {
            return ElementTypes.Read(t);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
            throw new UsageException($"The tensor for input '{input.Name}' in '{set}': {e.Message}");
        }
    }
}
