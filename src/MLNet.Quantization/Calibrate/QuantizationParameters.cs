namespace MLNet.Quantization.Calibration;

/// <summary>
/// The number format of quantized activations, as data: integers in [<see cref="QMin"/>, <see cref="QMax"/>] stored
/// as <see cref="ElementType"/> (an ONNX TensorProto data type). Only uint8 fuses well on x86, so it is the one used.
/// </summary>
internal sealed record ActivationFormat(int QMin, int QMax, int ElementType, string Name)
{
    public static readonly ActivationFormat UInt8 = new(0, 255, Onnx.Tensors.UInt8, "uint8");

    /// <summary>Steps between the smallest and the largest value.</summary>
    public int Levels => QMax - QMin;

    /// <summary>The zero point of a symmetric signed range: 128 for uint8.</summary>
    public int SymmetricZeroPoint => (QMin + QMax + 1) / 2;
}

/// <summary>An activation's parameters: <c>q = clamp(round(x / Scale) + ZeroPoint, QMin, QMax)</c> in <see cref="Format"/>.</summary>
internal sealed record ActivationParameters(float Scale, int ZeroPoint, ActivationFormat Format)
{
    /// <summary>The largest value represented: (QMax − ZeroPoint) × Scale.</summary>
    public float Max => (Format.QMax - ZeroPoint) * Scale;

    /// <summary>Whether zero is the bottom of the range, so that the quantization clamps like a Relu.</summary>
    public bool ClampsAtZero => ZeroPoint == Format.QMin;
}

/// <summary>An int8 weight with one scale (<see cref="Axis"/> = null) or one per channel along <see cref="Axis"/>.</summary>
internal sealed record QuantizedWeight(string Tensor, long[] Dims, sbyte[] Values, float[] Scales, int? Axis)
{
    public float[] Dequantize()
    {
        var result = new float[Values.Length];
        int channels = Scales.Length, inner = InnerSize();
        for (int i = 0; i < Values.Length; i++)
            result[i] = Values[i] * Scales[channels == 1 ? 0 : (i / inner) % channels];
        return result;
    }

    /// <summary>Number of consecutive elements that share a channel.</summary>
    public int InnerSize()
    {
        if (Axis is null) return Values.Length;
        long inner = 1;
        for (int d = Axis.Value + 1; d < Dims.Length; d++) inner *= Dims[d];
        return (int)inner;
    }
}

/// <summary>An int32 bias with scale = input scale × weight scale (per channel when the weight is).</summary>
internal sealed record QuantizedBias(string Tensor, long[] Dims, int[] Values, float[] Scales)
{
    public float[] Dequantize() => Values.Select((v, i) => v * Scales[Scales.Length == 1 ? 0 : i]).ToArray();
}

/// <summary>
/// A float bias that bias correction moved: <paramref name="Tensor"/> (read by <paramref name="Node"/>) takes
/// <paramref name="Values"/> in the realized model, where it stays float (the constant of the Add after a MatMul).
/// Quantized biases are corrected in <see cref="QuantizationParameters.Biases"/> instead.
/// </summary>
internal sealed record CorrectedBias(string Node, string Tensor, float[] Values);

/// <summary>Everything the realize stage needs, keyed by tensor name, plus the public table.</summary>
internal sealed record QuantizationParameters(
    IReadOnlyDictionary<string, ActivationParameters> Activations,
    IReadOnlyDictionary<string, QuantizedWeight> Weights,
    IReadOnlyDictionary<(string Node, string Tensor), QuantizedBias> Biases,
    CalibrationTable Table)
{
    /// <summary>Float biases moved by bias correction, by tensor.</summary>
    public IReadOnlyDictionary<string, CorrectedBias> FloatBiases { get; init; } = new Dictionary<string, CorrectedBias>();

    /// <summary>
    /// The parameters of the tensors that <paramref name="plan"/> still quantizes, with nothing recomputed; tensors the
    /// plan marks without parameters leave the plan (the fallback's rounds, which only drop layers).
    /// </summary>
    public QuantizationParameters Restrict(Annotate.QuantizationPlan plan)
    {
        plan.KeepActivations(Activations.ContainsKey);
        plan.Weights.RemoveAll(w => !Weights.ContainsKey(w.Tensor));
        var activations = plan.Activations.Select(a => a.Tensor).ToHashSet();
        var weights = plan.Weights.Select(w => w.Tensor).ToHashSet();
        var weightNodes = plan.Weights.Select(w => w.Node).ToHashSet();
        var biases = plan.Biases.Select(b => (b.Node, b.Tensor)).ToHashSet();
        return new QuantizationParameters(
            Activations.Where(kv => activations.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value),
            Weights.Where(kv => weights.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value),
            Biases.Where(kv => biases.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value),
            new CalibrationTable(Table.Where(e => e.Role switch
            {
                TensorRole.Activation => activations.Contains(e.Tensor),
                TensorRole.Weight => weights.Contains(e.Tensor),
                _ => biases.Contains((e.Node, e.Tensor)),
            })))
        {
            FloatBiases = FloatBiases.Where(kv => weightNodes.Contains(kv.Value.Node)).ToDictionary(kv => kv.Key, kv => kv.Value),
        };
    }
}
