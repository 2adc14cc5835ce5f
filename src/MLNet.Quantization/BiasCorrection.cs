namespace MLNet.Quantization;

/// <summary>Whether the quantized layers' output means are corrected towards the float model's.</summary>
public enum BiasCorrection
{
    /// <summary>No correction: biases are quantized as they are.</summary>
    None = 0,

    /// <summary>
    /// Fast bias correction (NNCF's default): for each quantized Conv, Gemm and MatMul (with a bias it may move), the
    /// layer is computed a second time from its quantized input and int8 weights, beside the float layer, on the
    /// calibration rows; the per-channel difference of their output means is added to the bias. One extra stream over
    /// the rows; layers see float inputs, so errors upstream are not compensated.
    /// </summary>
    Fast = 1,

    /// <summary>
    /// Layer by layer, with the quantized layers before each one in place: the model is simulated in waves by depth
    /// (one stream over the first 128 calibration rows per wave), and each layer's bias absorbs the mean error that
    /// reaches it from upstream too. About as many streams as the network is deep in quantized layers.
    /// </summary>
    Full = 2,
}
