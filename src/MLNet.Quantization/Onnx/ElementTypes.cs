using Microsoft.ML.Data;
using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// The ONNX element types that ML.NET's OnnxTransformer maps to columns, with the ML.NET item type of each, and the
/// values of a <see cref="TensorProto"/> of any of them as an array of that item type's raw type.
/// </summary>
/// <remarks>
/// float16 is not among them (ML.NET refuses it; <see cref="Float16Conversion"/> widens it first), nor bfloat16 or the
/// complex types, which ML.NET has no column for. A string tensor's values are <c>ReadOnlyMemory&lt;char&gt;</c>, ML.NET's text.
/// </remarks>
internal static class ElementTypes
{
    private static readonly Dictionary<TensorProto.Types.DataType, PrimitiveDataViewType> Columns = new()
    {
        [TensorProto.Types.DataType.Float] = NumberDataViewType.Single,
        [TensorProto.Types.DataType.Double] = NumberDataViewType.Double,
        [TensorProto.Types.DataType.Int8] = NumberDataViewType.SByte,
        [TensorProto.Types.DataType.Uint8] = NumberDataViewType.Byte,
        [TensorProto.Types.DataType.Int16] = NumberDataViewType.Int16,
        [TensorProto.Types.DataType.Uint16] = NumberDataViewType.UInt16,
        [TensorProto.Types.DataType.Int32] = NumberDataViewType.Int32,
        [TensorProto.Types.DataType.Uint32] = NumberDataViewType.UInt32,
        [TensorProto.Types.DataType.Int64] = NumberDataViewType.Int64,
        [TensorProto.Types.DataType.Uint64] = NumberDataViewType.UInt64,
        [TensorProto.Types.DataType.Bool] = BooleanDataViewType.Instance,
        [TensorProto.Types.DataType.String] = TextDataViewType.Instance,
    };

    /// <summary>The ML.NET item type of ONNX element type <paramref name="elementType"/>; null where ML.NET has none.</summary>
    public static PrimitiveDataViewType? Column(int elementType) =>
        Columns.GetValueOrDefault((TensorProto.Types.DataType)elementType);

    /// <summary>
    /// The values of <paramref name="tensor"/>, from <c>raw_data</c> or from the typed field that ONNX keeps them in
    /// (<c>int32_data</c> for the types of 32 bits or fewer, <c>uint64_data</c> for uint32 and uint64), as an array of
    /// <see cref="Column"/>'s raw type.
    /// </summary>
    /// <exception cref="NotSupportedException">The type has no ML.NET column, or the data lies in an external file.</exception>
    /// <exception cref="InvalidDataException">The tensor holds fewer or more values than its dimensions say.</exception>
    public static Array Read(TensorProto tensor)
    {
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            throw new NotSupportedException($"Tensor '{tensor.Name}' keeps its data in an external file, which is not supported.");
        var type = (TensorProto.Types.DataType)tensor.DataType;
        Array values = type switch
        {
            TensorProto.Types.DataType.Float => Values(tensor, () => tensor.FloatData),
            TensorProto.Types.DataType.Double => Values(tensor, () => tensor.DoubleData),
            TensorProto.Types.DataType.Int8 => Values(tensor, () => tensor.Int32Data.Select(v => (sbyte)v)),
            TensorProto.Types.DataType.Uint8 => Values(tensor, () => tensor.Int32Data.Select(v => (byte)v)),
            TensorProto.Types.DataType.Int16 => Values(tensor, () => tensor.Int32Data.Select(v => (short)v)),
            TensorProto.Types.DataType.Uint16 => Values(tensor, () => tensor.Int32Data.Select(v => (ushort)v)),
            TensorProto.Types.DataType.Int32 => Values(tensor, () => tensor.Int32Data),
            TensorProto.Types.DataType.Uint32 => Values(tensor, () => tensor.Uint64Data.Select(v => (uint)v)),
            TensorProto.Types.DataType.Int64 => Values(tensor, () => tensor.Int64Data),
            TensorProto.Types.DataType.Uint64 => Values(tensor, () => tensor.Uint64Data),
            TensorProto.Types.DataType.Bool => Values(tensor, () => tensor.Int32Data.Select(v => v != 0)),
            TensorProto.Types.DataType.String => tensor.StringData.Select(s => s.ToStringUtf8().AsMemory()).ToArray(),
            _ => throw new NotSupportedException($"Tensor '{tensor.Name}' is {type}, which ML.NET has no column for."),
        };
        long expected = tensor.Dims.Aggregate(1L, (a, d) => a * d);
        if (values.LongLength != expected)
            throw new InvalidDataException($"Tensor '{tensor.Name}' holds {values.LongLength} values, but its dimensions [{string.Join(",", tensor.Dims)}] need {expected}.");
        return values;
    }

    // raw_data when present (little-endian, as ONNX writes it), else the typed field.
    private static T[] Values<T>(TensorProto tensor, Func<IEnumerable<T>> field) where T : unmanaged =>
        tensor.RawData.IsEmpty ? field().ToArray() : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(tensor.RawData.Span).ToArray();
}
