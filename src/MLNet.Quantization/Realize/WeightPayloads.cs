using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The bytes of a quantized weight's initializers, computed once per <see cref="QuantizedWeight"/> and shared by every
/// model realized from it: its int8 values (the realized model's DequantizeLinear) and the same integers as floats (the
/// simulated model's integer form).
/// </summary>
/// <remarks>
/// A <see cref="ByteString"/> is immutable, so one payload can sit in any number of graphs. Full bias correction
/// realizes the simulated model once per wave (MiniLM: 25 waves) and the tuner once per trial, where converting and
/// copying every weight again took most of each realization (MiniLM: 3.5 → 2.4 s of full bias correction). The payloads
/// live as long as the weight's values: a <see cref="ConditionalWeakTable{TKey, TValue}"/> holds them by the identity of
/// the values array, which nothing changes once quantized.
/// </remarks>
internal static class WeightPayloads
{
    // Keyed by the values array: the weight cache hands out copies of one weight under other names (`with`), which share it.
    private static readonly ConditionalWeakTable<sbyte[], ByteString> Int8 = new();
    private static readonly ConditionalWeakTable<sbyte[], ByteString> Integers = new();

    /// <summary>The weight's int8 values as an initializer named <paramref name="name"/>.</summary>
    public static TensorProto AsInt8(string name, QuantizedWeight w) => Make(name, w.Dims, Tensors.Int8,
        Int8.GetValue(w.Values, x => ByteString.CopyFrom(MemoryMarshal.AsBytes(x.AsSpan()))));

    /// <summary>The weight's int8 values, as floats, as an initializer named <paramref name="name"/>.</summary>
    public static TensorProto AsFloatIntegers(string name, QuantizedWeight w) => Make(name, w.Dims, Tensors.Float,
        Integers.GetValue(w.Values, x =>
        {
            var values = new float[x.Length];
            for (int i = 0; i < values.Length; i++) values[i] = x[i];
            return ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
        }));

    private static TensorProto Make(string name, long[] dims, int dataType, ByteString raw)
    {
        var t = new TensorProto { Name = name, DataType = dataType, RawData = raw };
        t.Dims.AddRange(dims);
        return t;
    }
}
