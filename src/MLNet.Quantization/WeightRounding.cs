namespace MLNet.Quantization;

/// <summary>How a weight's values are rounded to the int8 grid once its scale is chosen.</summary>
public enum WeightRounding
{
    /// <summary>Each weight to its nearest step (ties to even): the smallest error per weight.</summary>
    Nearest = 0,

    /// <summary>
    /// For convolutions, rounding whose errors cancel where the layer adds them up: in each output channel, some weights
    /// round the other way, so that the rounding errors of each kernel (one input channel's window) and of the whole
    /// channel sum to within about half a step. A convolution's output error is the sum of its weights' errors times
    /// the inputs of a window, and neighbouring inputs of an image or a signal are alike: balanced errors cancel there,
    /// where errors rounded one by one add up. Data-free; each weight still lies within one step of its value (SQuant,
    /// Guo et al., ICLR 2022). Other weights (MatMul, Gemm) round to nearest: their inputs have no window, and where
    /// balancing them was measured (all-MiniLM-L6-v2, the wake-word heads) it did not pay.
    /// </summary>
    Balanced = 1,
}
