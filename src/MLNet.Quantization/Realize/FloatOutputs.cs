using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The float model's outputs on the measurement rows (<see cref="OutputValues.Read"/>: null for outputs that are not compared), kept for the fallback's
/// rounds up to <see cref="DefaultBudget"/> bytes. Past the budget they are all dropped and each round runs the float
/// model again, so that memory stays bounded whatever the number of rows.
/// </summary>
internal sealed class FloatOutputs
{
    /// <summary>256 MB of outputs: 1,300 rows of all-MiniLM-L6-v2's 128 × 384 token states.</summary>
    public const long DefaultBudget = 256L << 20;

    private readonly List<float[]?[]> _rows = new();
    private readonly long _budget;
    private long _bytes;

    public FloatOutputs(long budget = DefaultBudget) => _budget = budget;

    /// <summary>Whether every row measured is kept.</summary>
    public bool Complete { get; private set; } = true;

    public float[]?[] this[int row] => _rows[row];

    /// <summary>Every row kept, in order: all the rows measured when <see cref="Complete"/>, else none.</summary>
    public IReadOnlyList<float[]?[]> Rows => _rows;

    /// <summary>Keeps the first <paramref name="count"/> outputs of one row.</summary>
    public void Add(IReadOnlyList<OrtValue> outputs, int count)
    {
        if (!Complete) return;
        var row = new float[]?[count];
        for (int k = 0; k < count; k++)
            if (OutputValues.Read(outputs[k]) is { } values)
            {
                row[k] = values;
                _bytes += values.Length * sizeof(float);
            }
        if (_bytes > _budget)
        {
            _rows.Clear();
            Complete = false;
            return;
        }
        _rows.Add(row);
    }
}
