namespace MLNet.Quantization;

/// <summary>What the tuner maximizes, label-free, on the held-back rows (see <see cref="TuningOptions"/>).</summary>
public enum TuningObjective
{
    /// <summary>
    /// Chosen per output from the graph: top-1 agreement for an output that a Softmax or LogSoftmax computes (a
    /// classifier), nearest-neighbour agreement for one vector per row (an embedding: one axis besides the batch, or
    /// a [batch, sequence, width] sequence of vectors as long as an input's axis, as a token model gives, mean-pooled)
    /// when at least 8 rows are held back (on fewer, a row's nearest other row is one of a handful), the mean cosine
    /// otherwise (a detector's anchors, a segmenter's maps); integer and boolean outputs by the fraction of values
    /// equal. The worst output decides.
    /// </summary>
    Auto,

    /// <summary>
    /// The mean over rows of the cosine between the float and the quantized output (the worst output decides); for an
    /// output of one value per row, the cosine of the column over the rows, since one value's cosine is only its sign.
    /// </summary>
    OutputCosine,

    /// <summary>The fraction of positions whose arg-max over the last axis is the float model's (the worst output decides).</summary>
    TopOneAgreement,

    /// <summary>
    /// The fraction of rows whose nearest other row (by cosine of the row's vector, mean-pooled over any sequence axis)
    /// is the same for the quantized model as for the float model.
    /// </summary>
    NeighbourAgreement,
}
