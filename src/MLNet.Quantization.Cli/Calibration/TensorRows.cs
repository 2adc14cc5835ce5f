using Microsoft.ML;
using Microsoft.ML.Data;
using Onnx;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>
/// A folder laid out like ONNX's test data: <c>test_data_set_*/input_*.pb</c>, one serialized TensorProto per model
/// input (matched by the tensor's name, else by the file's index). Float and int64 inputs.
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
            builder.AddColumn(input.Name, new VectorDataViewType(input.ElementType == TensorProto.Types.DataType.Int64
                ? NumberDataViewType.Int64 : NumberDataViewType.Single, dims));
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

    private static Array Values(TensorProto t, ModelInput input, string set)
    {
        long count = t.Dims.Aggregate(1L, (a, d) => a * d);
        var type = (TensorProto.Types.DataType)t.DataType;
        if (input.ElementType == TensorProto.Types.DataType.Float && type == TensorProto.Types.DataType.Float)
        {
            var values = t.RawData.IsEmpty ? t.FloatData.ToArray() : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
            return values.Length == count ? values : throw new UsageException($"The tensor for input '{input.Name}' in '{set}' holds {values.Length} values, not {count}.");
        }
        if (input.ElementType == TensorProto.Types.DataType.Int64 && type == TensorProto.Types.DataType.Int64)
        {
            var values = t.RawData.IsEmpty ? t.Int64Data.ToArray() : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();
            return values.Length == count ? values : throw new UsageException($"The tensor for input '{input.Name}' in '{set}' holds {values.Length} values, not {count}.");
        }
        throw new UsageException($"The tensor for input '{input.Name}' in '{set}' is {type}; the model takes {input.ElementType} (float and int64 inputs are supported).");
    }
}
