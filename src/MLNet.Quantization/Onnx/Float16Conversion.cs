using Google.Protobuf;
using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// Preparation of float16 models: every float16 tensor becomes float32 (initializers, Constant values, the types of
/// values, inputs and outputs, the targets of Cast and the dtypes of generators), in the main graph and in every
/// subgraph. Calibration then runs in float32, and the quantized model takes and gives float32 where the original had
/// float16, because ML.NET cannot feed or read Float16 columns; <see cref="Convert"/> says which inputs and outputs changed.
/// </summary>
/// <remarks>
/// float16 → float32 is exact (every half is a float), so the converted model computes what the original computes,
/// except that intermediate results are no longer rounded to 11 significant bits.
/// </remarks>
internal static class Float16Conversion
{
    private const int Half = (int)TensorProto.Types.DataType.Float16;

    /// <summary>
    /// Converts <paramref name="graph"/> in place; returns one line per graph input or output whose type changed, and
    /// one for the weights, empty when the model held no float16.
    /// </summary>
    public static IReadOnlyList<string> Convert(OnnxGraph graph)
    {
        var notes = new List<string>();
        var inputs = graph.Graph.Input.Where(v => IsHalf(v.Type)).Select(v => v.Name).ToList();
        var outputs = graph.Graph.Output.Where(v => IsHalf(v.Type)).Select(v => v.Name).ToList();
        int tensors = ConvertGraph(graph.Graph);
        if (tensors == 0 && inputs.Count == 0 && outputs.Count == 0) return notes;
        var initializers = graph.Graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        notes.AddRange(inputs.Where(i => !initializers.Contains(i)).Select(i => $"input '{i}' is float32 in the quantized model (float16 in the original: ML.NET cannot feed Float16)"));
        notes.AddRange(outputs.Select(o => $"output '{o}' is float32 in the quantized model (float16 in the original: ML.NET cannot read Float16)"));
        if (tensors > 0) notes.Add($"{tensors} float16 constants were widened to float32 for calibration (exact)");
        graph.Invalidate();
        return notes;
    }

    private static int ConvertGraph(GraphProto graph)
    {
        int count = 0;
        foreach (var tensor in graph.Initializer) count += ConvertTensor(tensor);
        foreach (var value in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo)) ConvertType(value.Type);
        foreach (var node in graph.Node)
            foreach (var attribute in node.Attribute)
            {
                if (attribute.T is { } t) count += ConvertTensor(t);
                foreach (var each in attribute.Tensors) count += ConvertTensor(each);
                if (attribute.G is { } g) count += ConvertGraph(g);
                foreach (var sub in attribute.Graphs) count += ConvertGraph(sub);
                if (attribute.Type == AttributeProto.Types.AttributeType.Int && attribute.I == Half
                    && (attribute.Name == "to" && node.OpType == "Cast" || attribute.Name == "dtype"))
                    attribute.I = Tensors.Float;
            }
        return count;
    }

    private static bool IsHalf(TypeProto? type) => type?.TensorType is { ElemType: Half };

    private static void ConvertType(TypeProto? type)
    {
        if (type is null) return;
        if (type.TensorType is { ElemType: Half } tensor) tensor.ElemType = Tensors.Float;
        ConvertType(type.SequenceType?.ElemType);
        ConvertType(type.OptionalType?.ElemType);
        ConvertType(type.MapType?.ValueType);
    }

    // float16 values live in int32_data (one per element, low 16 bits) or in raw_data (2 bytes each, little-endian).
    private static int ConvertTensor(TensorProto tensor)
    {
        if (tensor.DataType != Half) return 0;
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            throw new NotSupportedException($"Float16 tensor '{tensor.Name}' keeps its data in an external file, which is not supported.");
        float[] values;
        if (!tensor.RawData.IsEmpty)
        {
            var raw = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(tensor.RawData.Span);
            values = new float[raw.Length];
            for (int i = 0; i < raw.Length; i++) values[i] = (float)BitConverter.UInt16BitsToHalf(raw[i]);
        }
        else
        {
            values = tensor.Int32Data.Select(v => (float)BitConverter.UInt16BitsToHalf((ushort)v)).ToArray();
        }
        tensor.Int32Data.Clear();
        tensor.DataType = Tensors.Float;
        tensor.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return 1;
    }
}
