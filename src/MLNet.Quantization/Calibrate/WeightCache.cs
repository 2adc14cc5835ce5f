using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// The int8 weights that calibration has already made, by the weight's stored bytes and the settings that shape them:
/// the tuner's trials recalibrate the same weights many times (each calibration method, each bias correction), and
/// quantizing MiniLM's 10.6 million weights per channel costs about as much as a statistics stream.
/// </summary>
/// <remarks>
/// The key is the tensor's <c>raw_data</c> (an immutable <see cref="ByteString"/>, which a copy of the model shares),
/// held weakly: an entry lives only as long as some model still holds those bytes, so the weights of a dropped
/// SmoothQuant candidate go with it. Tensors stored as typed fields are not cached.
/// </remarks>
internal sealed class WeightCache
{
    private readonly ConditionalWeakTable<ByteString, Dictionary<Key, (QuantizedWeight Weight, int LargestPairSum)>> _entries = new();

    private readonly record struct Key(string Dims, int? Axis, bool PerChannel, WeightScaleMethod Scale, WeightRounding Rounding, WeightFormat Format);

    /// <summary>The quantized weight of <paramref name="raw"/> under these settings and format, made by <paramref name="quantize"/> once.</summary>
    public (QuantizedWeight Weight, int LargestPairSum) GetOrAdd(ByteString? raw, string tensor, long[] dims, int? axis, WeightSettings settings,
        WeightFormat format, Func<(QuantizedWeight, int)> quantize)
    {
        if (raw is null || raw.IsEmpty) return quantize();
        var key = new Key(string.Join(",", dims), axis, settings.PerChannel, settings.Scale, settings.Rounding, format);
        var byKey = _entries.GetValue(raw, _ => new Dictionary<Key, (QuantizedWeight, int)>());
        lock (byKey)
        {
            if (!byKey.TryGetValue(key, out var entry))
                byKey[key] = entry = quantize();
            return entry.Weight.Tensor == tensor ? entry : (entry.Weight with { Tensor = tensor }, entry.LargestPairSum);
        }
    }
}
