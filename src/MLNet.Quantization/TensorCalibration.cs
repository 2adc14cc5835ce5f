namespace MLNet.Quantization;

/// <summary>The quantization parameters chosen for one tensor of the model.</summary>
public sealed record TensorCalibration
{
    /// <summary>The tensor's name in the float model (after BatchNormalization folding).</summary>
    public string Tensor { get; init; } = "";

    /// <summary>Whether the tensor is an activation, a weight or a bias.</summary>
    public TensorRole Role { get; init; }

    /// <summary>The node that asked for the tensor to be quantized (for weights and biases, the node that reads them).</summary>
    public string Node { get; init; } = "";

    /// <summary>The op type of <see cref="Node"/>.</summary>
    public string OpType { get; init; } = "";

    /// <summary>
    /// The clipping threshold: the largest |x| the range keeps. Never-negative activations are clipped to
    /// [0, Threshold], symmetric ones to [−Threshold, Threshold]; asymmetric ones to their own [min, max] within it. For
    /// weights, the largest channel's representable magnitude (scale × qmax).
    /// </summary>
    public float Threshold { get; init; }

    /// <summary>
    /// The quantization step: <c>real = (q − ZeroPoint) × Scale</c>. For per-channel weights and biases, the largest
    /// channel scale; <see cref="ChannelScales"/> holds all of them.
    /// </summary>
    public float Scale { get; init; }

    /// <summary>
    /// The zero point: 0 for never-negative activations, 128 for symmetric signed ones, the one that maps 0 exactly for
    /// asymmetric ones, and 0 for weights and biases.
    /// </summary>
    public int ZeroPoint { get; init; }

    /// <summary>The smallest integer of the quantized form (0 for uint8 activations).</summary>
    public int QuantizedMin { get; init; }

    /// <summary>The largest integer of the quantized form (255 for uint8 activations; tables written before it existed read 255).</summary>
    public int QuantizedMax { get; init; } = 255;

    /// <summary>The element type of the quantized tensor: <c>uint8</c>, <c>int8</c> or <c>int32</c>.</summary>
    public string ElementType { get; init; } = "";

    /// <summary>How the threshold was chosen (for example <c>KlDivergence</c>, <c>Max</c>, <c>PowerOfTwo</c>).</summary>
    public string Method { get; init; } = "";

    /// <summary>Per output channel scales of a per-channel weight or bias; empty when the tensor has one scale.</summary>
    public IReadOnlyList<float> ChannelScales { get; init; } = Array.Empty<float>();

    /// <summary>Why the tensor was treated specially (for example a bias kept in float because int32 could not hold it); empty otherwise.</summary>
    public string Note { get; init; } = "";

    /// <summary>For weights, the range their int8 values were kept within (<see cref="MLNet.Quantization.WeightRange"/>); null otherwise.</summary>
    public WeightRange? WeightRange { get; init; }

    /// <summary>
    /// For weights, the largest sum of two same-sign |q| within one output channel: at most 128 means that no pair of uint8 × int8
    /// products can saturate the int16 of x86-64 CPUs without VNNI. 0 for activations, biases and the weights of
    /// depthwise convolutions (their kernels never sum two products in int16).
    /// </summary>
    public int LargestPairSum { get; init; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Role} {Tensor} ({OpType} {Node}): {ElementType} threshold={Threshold:G6} scale={Scale:G6} zp={ZeroPoint} [{Method}]";
}
