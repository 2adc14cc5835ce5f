namespace MLNet.Quantization;

/// <summary>
/// The held-back rows as a user metric (<see cref="TuningOptions.Metric"/>) sees them: per row, each model output's
/// values flattened, for the float model and for the quantized model of one trial. Integer and boolean outputs (labels,
/// indices, masks) hold their values as float (exact up to 2²⁴); outputs of other types (strings) hold an empty array.
/// </summary>
public sealed class TuningOutputs
{
    internal TuningOutputs(IReadOnlyList<string> outputNames, IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows)
    {
        OutputNames = outputNames;
        Float = floatRows;
        Quantized = quantizedRows;
    }

    /// <summary>The model's outputs, in the order of each row's arrays.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>Per held-back row, per output, the float model's values.</summary>
    public IReadOnlyList<float[][]> Float { get; }

    /// <summary>Per held-back row, per output, the quantized model's values (the float model's own in the reference call).</summary>
    public IReadOnlyList<float[][]> Quantized { get; }
}
