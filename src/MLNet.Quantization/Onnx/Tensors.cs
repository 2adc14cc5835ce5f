using Google.Protobuf;
using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>Reads and writes the payload of ONNX <see cref="TensorProto"/>s.</summary>
internal static class Tensors
{
    public const int Float = (int)TensorProto.Types.DataType.Float;
    public const int UInt8 = (int)TensorProto.Types.DataType.Uint8;
    public const int Int8 = (int)TensorProto.Types.DataType.Int8;
    public const int Int32 = (int)TensorProto.Types.DataType.Int32;
    public const int Int64 = (int)TensorProto.Types.DataType.Int64;

    public static long[] Dims(TensorProto t) => t.Dims.ToArray();

    /// <summary>The float values of a float tensor, from <c>float_data</c> or <c>raw_data</c>.</summary>
    public static float[] ReadFloats(TensorProto t)
    {
        if (t.DataType != Float)
            throw new InvalidDataException($"Tensor '{t.Name}' holds {(TensorProto.Types.DataType)t.DataType}, not float.");
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new NotSupportedException($"Tensor '{t.Name}' keeps its data in an external file, which is not supported.");
        if (!t.RawData.IsEmpty)
        {
            var raw = t.RawData.Span;
            var values = new float[raw.Length / sizeof(float)];
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).CopyTo(values);
            return values;
        }
        return t.FloatData.ToArray();
    }

    public static TensorProto FromFloats(string name, long[] dims, float[] values) =>
        Make(name, dims, Float, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    public static TensorProto FromSBytes(string name, long[] dims, sbyte[] values) =>
        Make(name, dims, Int8, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    public static TensorProto FromBytes(string name, long[] dims, byte[] values) => Make(name, dims, UInt8, values);

    public static TensorProto FromInts(string name, long[] dims, int[] values) =>
        Make(name, dims, Int32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    public static TensorProto FromLongs(string name, long[] dims, long[] values) =>
        Make(name, dims, Int64, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    private static TensorProto Make(string name, long[] dims, int dataType, ReadOnlySpan<byte> raw)
    {
        var t = new TensorProto { Name = name, DataType = dataType, RawData = ByteString.CopyFrom(raw) };
        t.Dims.AddRange(dims);
        return t;
    }
}
