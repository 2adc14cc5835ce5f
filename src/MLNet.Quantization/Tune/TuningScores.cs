using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tune;

/// <summary>How one output is scored (see <see cref="TuningObjective"/>).</summary>
internal enum OutputScoring
{
    Cosine,
    TopOne,
    Neighbour,

    /// <summary>An integer or boolean output: the fraction of values equal, whatever the objective.</summary>
    Equality,
}

/// <summary>
/// A trial's score: the objective, then the mean and the worst per-row cosine as tie-breaks. <see cref="Resolution"/>
/// is the objective's step: one row's weight when it counts rows (top-1 or nearest-neighbour agreement), else 0.
/// <see cref="Rows"/> holds, for a counted objective, each row's part of it (of the output that decides it, <see cref="Output"/>).
/// </summary>
/// <remarks>
/// Two counted objectives tie when they differ by no more than the noise of their paired difference, and the cosines,
/// to which every row contributes, decide instead. With d_r = a_r − b_r the two trials' parts of row r on the same n
/// rows, d̄ their mean and s² = (1/n) Σ (d_r − d̄)², the difference is noise while |a − b| ≤ max(step, 2·s/√n): a
/// paired z-test at about 95% (for agreement, where a row is a success or not, McNemar's test). On 40 held-back rows,
/// 2 rows gained and none lost (5 points) is within it (2·√(0.05·0.95/40) = 0.069); 4 gained and none lost is not.
/// Without the rows (a user metric, or outputs that decide differently in the two trials), one step apart ties, as one
/// row is sampling noise. So a candidate that agrees on a row or two fewer but whose outputs are much closer to the
/// float model's is preferred. The order is not transitive (a ties b, b ties c, a may beat c); the tuner compares a
/// candidate with the leader and with every recipe that was the best so far.
/// </remarks>
internal readonly record struct TrialScore(double Value, double MeanCosine, double WorstCosine, double Resolution = 0)
{
    /// <summary>Each row's part of a counted objective, in the order of the rows scored; null for another objective.</summary>
    public double[]? Rows { get; init; }

    /// <summary>The output whose rows <see cref="Rows"/> holds.</summary>
    public int Output { get; init; }

    /// <summary>Negative, zero or positive as <paramref name="a"/> scores below, as or above <paramref name="b"/>.</summary>
    public static int Compare(TrialScore a, TrialScore b)
    {
        double band = Math.Max(a.Resolution, b.Resolution);
        if (a.Rows is { } x && b.Rows is { } y && a.Output == b.Output && x.Length == y.Length && x.Length > 1)
            band = Math.Max(band, 2 * PairedStandardError(x, y));
        if (Math.Abs(a.Value - b.Value) > band * (1 + 1e-9)) return a.Value.CompareTo(b.Value);
        int c = a.MeanCosine.CompareTo(b.MeanCosine);
        if (c != 0) return c;
        c = a.WorstCosine.CompareTo(b.WorstCosine);
        return c != 0 ? c : a.Value.CompareTo(b.Value);
    }

    /// <summary>s/√n for the paired differences x_r − y_r (s their population deviation); rows where either is NaN left out.</summary>
    internal static double PairedStandardError(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        var d = x.Zip(y, (u, v) => u - v).Where(v => !double.IsNaN(v)).ToList();
        if (d.Count == 0) return 0;
        double mean = d.Average();
        return Math.Sqrt(d.Sum(v => (v - mean) * (v - mean)) / d.Count / d.Count);
    }

    public static bool operator >(TrialScore a, TrialScore b) => Compare(a, b) > 0;

    public static bool operator <(TrialScore a, TrialScore b) => Compare(a, b) < 0;

    public static bool operator >=(TrialScore a, TrialScore b) => Compare(a, b) >= 0;

    public static bool operator <=(TrialScore a, TrialScore b) => Compare(a, b) <= 0;
}

/// <summary>
/// The tuner's label-free objectives, as pure functions of the float and quantized outputs of the held-back rows
/// (per row, per output, the values flattened; <c>shapes</c> the outputs' dimensions, batch first).
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// For rows R and an output with values f_r (float) and q_r (quantized) on row r:
/// - cosine: (1/|R|) Σ_r ⟨f_r, q_r⟩ / (‖f_r‖ ‖q_r‖), over the positions where both are finite; for an output of one
///   value per row, the cosine of the columns (f_r)_r and (q_r)_r instead (`OutputCosine`: a row's cosine is a sign test);
/// - top-1 agreement: the fraction of positions p (each run of the last axis) of the rows R where
///   argmax f_r[p, ·] = argmax q_r[p, ·];
/// - equality, for an integer or boolean output (labels, indices, masks) whatever the objective: the mean over R of the
///   fraction of the row's values equal;
/// - nearest-neighbour agreement: with v_r the row's vector (mean over every axis but the last when the output is a
///   sequence of vectors), the fraction of r ∈ R for which argmax_{j ≠ r} cos(v_r, v_j) is the same index j for the
///   float and the quantized vectors, j ranging over every held-back row.
/// The objective is the smallest of the outputs' values: every output must be right. The worst per-row cosine is the
/// smallest over rows of the smallest over outputs.
/// ]]></format>
/// </remarks>
internal static class TuningScores
{
    /// <summary>Shape-only ops that a classifier's Softmax may sit behind.</summary>
    private static readonly HashSet<string> ShapeOnly = new(StringComparer.Ordinal)
    {
        "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Cast",
    };

    /// <summary>
    /// The fewest held-back rows on which <see cref="TuningObjective.Auto"/> scores an embedding by nearest-neighbour
    /// agreement: on fewer, each row's nearest other row is one of a handful, one row moves the score by more than 12.5
    /// points, and the mean cosine is the objective instead.
    /// </summary>
    public const int MinimumNeighbourRows = 8;

    /// <summary>
    /// How each output is scored under <paramref name="objective"/>; <paramref name="shapes"/> from the first row,
    /// <paramref name="exact"/> per output whether it holds integers or booleans (scored by equality), <paramref name="rows"/>
    /// the held-back rows, <paramref name="inputAxes"/> the lengths of the inputs' axes besides the batch on the first row.
    /// </summary>
    public static OutputScoring[] Scorings(OnnxGraph model, TuningObjective objective, IReadOnlyList<long[]> shapes, IReadOnlyList<bool>? exact = null,
        int rows = int.MaxValue, IReadOnlySet<long>? inputAxes = null) =>
        model.Graph.Output.Select((output, k) => exact is not null && exact[k] ? OutputScoring.Equality : objective switch
        {
            TuningObjective.OutputCosine => OutputScoring.Cosine,
            TuningObjective.TopOneAgreement => OutputScoring.TopOne,
            TuningObjective.NeighbourAgreement => OutputScoring.Neighbour,
            _ => IsClassifier(model, output.Name) && shapes[k].LastOrDefault() >= 2 ? OutputScoring.TopOne
                : IsEmbedding(shapes[k], inputAxes) && rows >= MinimumNeighbourRows ? OutputScoring.Neighbour : OutputScoring.Cosine,
        }).ToArray();

    /// <summary>Whether a Softmax or LogSoftmax computes <paramref name="tensor"/>, through shape-only ops.</summary>
    public static bool IsClassifier(OnnxGraph model, string tensor)
    {
        for (var node = model.Producer(tensor); node is not null; node = node.Input.Count > 0 ? model.Producer(node.Input[0]) : null)
        {
            if (node.OpType is "Softmax" or "LogSoftmax") return true;
            if (!ShapeOnly.Contains(node.OpType)) return false;
        }
        return false;
    }

    /// <summary>
    /// One vector per row (one axis of at least 16 besides the batch), or a sequence of them as a token model gives it:
    /// [batch, sequence, width ≥ 16] with the sequence as long as an axis of an input (<paramref name="inputAxes"/>:
    /// tokens in, one vector per token out).
    /// </summary>
    /// <remarks>
    /// A detector's [batch, anchors, box] (BlazeFace's 896 × 16) and a segmenter's [batch, 1, height, width] map are
    /// not embeddings: which other row is nearest by their pooled values says nothing about boxes or masks, and the
    /// mean cosine scores them.
    /// </remarks>
    public static bool IsEmbedding(long[] shape, IReadOnlySet<long>? inputAxes)
    {
        var axes = shape.Skip(1).Where(d => d != 1).ToList();
        return (axes.Count == 1 && axes[0] >= 16)
            || (shape.Length == 3 && shape[1] > 1 && shape[2] >= 16 && inputAxes is not null && inputAxes.Contains(shape[1]));
    }

    /// <summary>The objective over <paramref name="rows"/> (indices into the row lists).</summary>
    public static double Objective(IReadOnlyList<OutputScoring> scorings, IReadOnlyList<long[]> shapes,
        IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, IReadOnlyList<int> rows) =>
        Deciding(scorings, shapes, floatRows, quantizedRows, rows).Value;

    /// <summary>
    /// The objective over <paramref name="rows"/>, the output that decides it (the lowest; −1 for none), and where that
    /// output counts rows (top-1 or nearest-neighbour agreement), each row's part of it: the fraction of the row's
    /// positions whose top-1 agrees, or 1 where the row's nearest neighbour agrees and 0 where not.
    /// </summary>
    public static (double Value, int Output, double[]? Rows) Deciding(IReadOnlyList<OutputScoring> scorings, IReadOnlyList<long[]> shapes,
        IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, IReadOnlyList<int> rows)
    {
        (double Value, int Output, double[]? Rows) worst = (double.PositiveInfinity, -1, null);
        for (int k = 0; k < scorings.Count; k++)
        {
            if (floatRows.Count == 0 || floatRows[0][k].Length == 0) continue;
            int classes = (int)Math.Max(1, shapes[k].LastOrDefault());
            var (value, parts) = scorings[k] switch
            {
                OutputScoring.TopOne => TopOne(floatRows, quantizedRows, k, classes, rows),
                OutputScoring.Neighbour => Neighbours(floatRows, quantizedRows, k, shapes[k], rows),
                OutputScoring.Equality => (Cosine(floatRows, quantizedRows, k, rows, exact: true), null),
                _ => (Cosine(floatRows, quantizedRows, k, rows), (double[]?)null),
            };
            if (value < worst.Value) worst = (value, k, parts);
        }
        return double.IsPositiveInfinity(worst.Value) ? (1, -1, null) : worst;
    }

    /// <summary>
    /// Per row, the smallest cosine over the float outputs (<see cref="Realize.OutputCosine.PerRow"/>: for an output of one
    /// value per row, the row's error on the column's scale).
    /// </summary>
    public static double[] RowCosines(IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, IReadOnlyList<bool>? exact = null)
    {
        var cosines = Enumerable.Repeat(1.0, floatRows.Count).ToArray();
        for (int k = 0; k < (floatRows.Count == 0 ? 0 : floatRows[0].Length); k++)
        {
            var kept = Enumerable.Range(0, floatRows.Count).Where(r => floatRows[r][k].Length > 0).ToList();
            var perRow = Realize.OutputCosine.PerRow(kept.Select(r => floatRows[r][k]).ToList(), kept.Select(r => quantizedRows[r][k]).ToList(),
                exact is not null && exact[k]);
            for (int i = 0; i < kept.Count; i++) cosines[kept[i]] = Math.Min(cosines[kept[i]], perRow[i]);
        }
        return cosines;
    }

    /// <summary>Output <paramref name="k"/>'s mean cosine over <paramref name="rows"/> (<see cref="Realize.OutputCosine"/>; by equality when <paramref name="exact"/>).</summary>
    private static double Cosine(IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, int k, IReadOnlyList<int> rows, bool exact = false) =>
        Realize.OutputCosine.Over(floatRows.Select(row => row[k]).ToList(), quantizedRows.Select(row => row[k]).ToList(), rows, exact).Mean;

    /// <summary>The cosine over the positions where both are finite; 1 for two zero vectors.</summary>
    public static double Cosine(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        var sum = new Realize.CosineSum();
        sum.Add(x, y);
        return sum.Value;
    }

    // The agreeing positions (runs of the last axis) over all positions of the rows, and each row's fraction (NaN for a
    // row without positions).
    private static (double, double[]?) TopOne(IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, int k, int classes, IReadOnlyList<int> rows)
    {
        long agree = 0, total = 0;
        var parts = new double[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            var f = floatRows[rows[i]][k];
            var q = quantizedRows[rows[i]][k];
            long rowAgree = 0, rowTotal = 0;
            for (int start = 0; start + classes <= f.Length; start += classes, rowTotal++)
                if (ArgMax(f.AsSpan(start, classes)) == ArgMax(q.AsSpan(start, classes))) rowAgree++;
            parts[i] = rowTotal == 0 ? double.NaN : (double)rowAgree / rowTotal;
            agree += rowAgree;
            total += rowTotal;
        }
        return (total == 0 ? 1 : (double)agree / total, parts);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best] || float.IsNaN(values[best])) best = i;
        return best;
    }

    // The fraction of rows whose float and quantized vectors have the same nearest other row, and each row's 1 or 0.
    private static (double, double[]?) Neighbours(IReadOnlyList<float[][]> floatRows, IReadOnlyList<float[][]> quantizedRows, int k, long[] shape, IReadOnlyList<int> rows)
    {
        if (floatRows.Count < 3) return (Cosine(floatRows, quantizedRows, k, rows), null);
        var f = floatRows.Select(row => Vector(row[k], shape)).ToList();
        var q = quantizedRows.Select(row => Vector(row[k], shape)).ToList();
        var parts = rows.Select(r => Nearest(f, r) == Nearest(q, r) ? 1.0 : 0.0).ToArray();
        return (parts.Sum() / rows.Count, parts);
    }

    // The row's vector: mean-pooled over the sequence axis when the output is a sequence of vectors, else flattened.
    private static float[] Vector(float[] values, long[] shape)
    {
        var axes = shape.Skip(1).Where(d => d != 1).ToList();
        if (axes.Count != 2) return values;
        int width = (int)shape[^1];
        var mean = new float[width];
        int positions = values.Length / width;
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < width; i++) mean[i] += values[p * width + i] / positions;
        return mean;
    }

    private static int Nearest(IReadOnlyList<float[]> vectors, int row)
    {
        int best = -1;
        double bestCosine = double.NegativeInfinity;
        for (int j = 0; j < vectors.Count; j++)
        {
            if (j == row) continue;
            double c = Cosine(vectors[row], vectors[j]);
            if (c > bestCosine) (best, bestCosine) = (j, c);
        }
        return best;
    }
}
