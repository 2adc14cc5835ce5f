using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNet.Quantization.Realize;

/// <summary>
/// A model output's values as the checks and the tuner compare them: float and double outputs by cosine, integer and
/// boolean outputs (a segmenter's ArgMax mask, a detector's class indices, a classifier's label) by equality, value by
/// value (<see cref="OutputCosine"/>). Other types (strings, float16) are not compared, and neither are outputs that are
/// not tensors (a classifier's ZipMap probabilities: a sequence of maps).
/// </summary>
internal static class OutputValues
{
    /// <summary>Whether an output of this type is compared by equality rather than by cosine.</summary>
    public static bool IsExact(TensorElementType type) => type is TensorElementType.Int64 or TensorElementType.Int32
        or TensorElementType.Int16 or TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.UInt16
        or TensorElementType.UInt32 or TensorElementType.UInt64 or TensorElementType.Bool;

    /// <summary>Whether an output of this type is compared at all.</summary>
    public static bool IsCompared(TensorElementType type) => type is TensorElementType.Float or TensorElementType.Double || IsExact(type);

    /// <summary>
    /// The values of <paramref name="value"/> as float (integers exactly up to 2²⁴ in magnitude: labels, indices and
    /// counts), or null for a type that is not compared.
    /// </summary>
    public static float[]? Read(OrtValue value) => IsTensor(value) ? Converted(value, value.GetTensorTypeAndShape().ElementDataType) : null;

    /// <summary>Whether <paramref name="value"/> is a tensor, not a sequence or a map.</summary>
    public static bool IsTensor(OrtValue value) => value.OnnxType == OnnxValueType.ONNX_TYPE_TENSOR;

    /// <summary>
    /// The values of <paramref name="value"/> as <see cref="Read"/> gives them, a float tensor's in place (no copy), and
    /// whether they are compared by equality; false for a type that is not compared.
    /// </summary>
    public static bool TryRead(OrtValue value, out ReadOnlySpan<float> values, out bool exact)
    {
        if (!IsTensor(value))
        {
            values = default;
            exact = false;
            return false;
        }
        var type = value.GetTensorTypeAndShape().ElementDataType;
        exact = IsExact(type);
        values = type == TensorElementType.Float ? value.GetTensorDataAsSpan<float>() : Converted(value, type);
        return IsCompared(type);
    }

    private static float[]? Converted(OrtValue value, TensorElementType type) => type switch
    {
        TensorElementType.Float => value.GetTensorDataAsSpan<float>().ToArray(),
        TensorElementType.Double => Convert(value.GetTensorDataAsSpan<double>(), v => (float)v),
        TensorElementType.Int64 => Convert(value.GetTensorDataAsSpan<long>(), v => v),
        TensorElementType.Int32 => Convert(value.GetTensorDataAsSpan<int>(), v => v),
        TensorElementType.Int16 => Convert(value.GetTensorDataAsSpan<short>(), v => v),
        TensorElementType.Int8 => Convert(value.GetTensorDataAsSpan<sbyte>(), v => v),
        TensorElementType.UInt8 => Convert(value.GetTensorDataAsSpan<byte>(), v => v),
        TensorElementType.UInt16 => Convert(value.GetTensorDataAsSpan<ushort>(), v => v),
        TensorElementType.UInt32 => Convert(value.GetTensorDataAsSpan<uint>(), v => v),
        TensorElementType.UInt64 => Convert(value.GetTensorDataAsSpan<ulong>(), v => v),
        TensorElementType.Bool => Convert(value.GetTensorDataAsSpan<bool>(), v => v ? 1f : 0f),
        _ => null,
    };

    private static float[] Convert<T>(ReadOnlySpan<T> values, Func<T, float> convert)
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = convert(values[i]);
        return result;
    }
}
