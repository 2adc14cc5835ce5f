namespace MLNet.Quantization;

/// <summary>How a weight's values are rounded to the int8 grid once its scale is chosen.</summary>
public enum WeightRounding
{
    /// <summary>Each weight to its nearest step (ties to even): the smallest error per weight.</summary>
    Nearest = 0,

    /// <summary>
    /// Rounding whose errors cancel where a layer adds them up: in each output channel, some weights round the other way,
    /// so that the rounding errors of each convolution kernel (one input channel's window) and of the whole channel sum
    /// to within about half a step. A layer's output error is the sum of its weights' errors times their inputs, and
    /// neighbouring inputs of an image or a sequence are alike: balanced errors cancel there, where errors rounded one
    /// by one add up. Data-free; each weight still lies within one step of its value (SQuant, Guo et al., ICLR 2022).
    /// </summary>
    Balanced = 1,
}
