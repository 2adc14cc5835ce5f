namespace MLNet.Quantization.Annotate;

/// <summary>
/// An activation tensor to be quantized. <see cref="ShareScaleWith"/> names a tensor whose parameters it reuses;
/// <see cref="ReadersClamp"/>, where its readers clamp it, the values they can tell apart (see <see cref="ReaderClamps"/>).
/// </summary>
internal sealed record ActivationMark(string Tensor, string Node, string OpType, string? ShareScaleWith = null, ClampBounds? ReadersClamp = null);

/// <summary>
/// A constant weight read by <see cref="Node"/> at input <see cref="InputIndex"/>, quantized per channel along
/// <see cref="Axis"/>, or with one scale for the whole tensor where it is null. <see cref="UnpairedProducts"/>: the x86
/// kernels that run the node widen each uint8 × int8 product to int32 on its own (depthwise convolutions) instead of
/// summing pairs of them in int16, so the weight format's pair bound does not apply.
/// </summary>
internal sealed record WeightMark(string Tensor, string Node, string OpType, int InputIndex, int? Axis, bool UnpairedProducts = false);

/// <summary>A constant bias whose scale is the product of the scales of <see cref="Activation"/> and <see cref="Weight"/>.</summary>
internal sealed record BiasMark(string Tensor, string Node, string OpType, int InputIndex, string Activation, string Weight);

/// <summary>
/// The result of annotation: which tensors are quantized and in which role. Op handlers only add marks; the realize
/// stage does all graph surgery.
/// </summary>
internal sealed class QuantizationPlan
{
    public List<ActivationMark> Activations { get; } = new();

    public List<WeightMark> Weights { get; } = new();

    public List<BiasMark> Biases { get; } = new();

    /// <summary>
    /// Outputs of Relus (and Clips from 0) that the realize stage removes: their uint8 quantization with zero point 0
    /// clamps exactly as they do, and lets ONNX Runtime fuse the producer with its QuantizeLinear.
    /// </summary>
    public HashSet<string> FusedRelus { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Activations that their producer quantizes as its output: every reader gets the dequantized value, so that the
    /// producer's only reader is its QuantizeLinear and ONNX Runtime can fuse them.
    /// </summary>
    public HashSet<string> QuantizedOutputs { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// For activations produced by float ops: the nodes that read them quantized. Other readers (a residual Add, a
    /// LayerNorm) keep reading the float tensor, free of quantization error.
    /// </summary>
    public Dictionary<string, HashSet<string>> QuantizedReaders { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Quantizable nodes that <see cref="FloatRules"/> keeps in float, with the reason (the nodes that compute the input
    /// of a domain-limited op).
    /// </summary>
    public Dictionary<string, string> FloatByRule { get; } = new(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="reader"/> reads the quantized form of <paramref name="tensor"/>.</summary>
    public bool ReadsQuantized(string tensor, string reader) =>
        QuantizedOutputs.Contains(tensor) || (QuantizedReaders.TryGetValue(tensor, out var readers) && readers.Contains(reader));

    /// <summary>The activations whose readers clamp them, with the values those readers can tell apart.</summary>
    public Dictionary<string, ClampBounds> ReaderClamps() =>
        Activations.Where(a => a.ReadersClamp is not null).ToDictionary(a => a.Tensor, a => a.ReadersClamp!.Value, StringComparer.Ordinal);

    public ActivationMark? FindActivation(string tensor) => Activations.FirstOrDefault(a => a.Tensor == tensor);

    /// <summary>Keeps the activations that <paramref name="statistics"/> describe, and those that share their scale.</summary>
    public void KeepCalibrated(IReadOnlyDictionary<string, Calibration.TensorStatistics> statistics) =>
        KeepActivations(t => statistics.ContainsKey(t) || FindActivation(t)?.ShareScaleWith is not null);

    /// <summary>Drops activations that turned out not to be float tensors, and the biases that depended on them.</summary>
    public void KeepActivations(Func<string, bool> keep)
    {
        Activations.RemoveAll(a => !keep(a.Tensor) || (a.ShareScaleWith is not null && !keep(a.ShareScaleWith)));
        var kept = new HashSet<string>(Activations.Select(a => a.Tensor));
        Biases.RemoveAll(b => !kept.Contains(b.Activation));
        FusedRelus.RemoveWhere(r => !kept.Contains(r));
    }
}
