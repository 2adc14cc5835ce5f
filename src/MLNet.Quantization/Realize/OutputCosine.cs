namespace MLNet.Quantization.Realize;

/// <summary>
/// One output of two runs compared row by row (the reference first): the mean and the worst cosine, the measure of every
/// check and of the tuner. An output that holds one value per row is compared across the rows instead.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// A row's cosine is ⟨f_r, q_r⟩ / (‖f_r‖ ‖q_r‖) over the positions where both are finite (1 for two zero vectors, 0 for
/// one), and the output's mean cosine is their mean over the rows R.
///
/// Where every row holds exactly one value (a probability, a score, a regression: a binary classifier's sigmoid, a
/// voice-activity detector), that cosine is a sign test, ±1, and sees no error at all: int8 could turn 0.9 into 0.1 and
/// every check would read 1. Such an output is compared across the rows:
/// - mean cosine: the cosine of the columns, ⟨f, q⟩ / (‖f‖ ‖q‖) with f = (f_r)_{r∈R} and q = (q_r)_{r∈R};
/// - a row's cosine: 1 − (f_r − q_r)² / (2 · (1/|R|) Σ_j f_j²), the cosine that the column would have, to second order
///   (cos(f, q) ≈ 1 − ‖f − q‖² / (2 ‖f‖²) for q near f), if every row were as far off as row r;
/// - worst cosine: the smaller of the column's cosine and the worst row's.
///
/// So a one-value output is held to the same scale as any other: a relative error e over the rows reads as a cosine of
/// about 1 − e²/2, as it does for a vector.
///
/// An integer or boolean output (<see cref="OutputValues.IsExact"/>: labels, indices, masks) has no direction: it is
/// compared by equality. A row's "cosine" is then the fraction of its values equal to the reference's, the mean is
/// their mean over the rows and the worst the smallest; <see cref="Differing"/> is the fraction of all values that differ.
/// ]]></format>
/// </remarks>
internal sealed class OutputCosine
{
    private readonly bool _exact;
    private double _rowCosines, _worstRow = 1, _squares, _largestSquaredError;
    private long _rows, _values, _differing;
    private bool _oneValue = true;
    private CosineSum _column;

    /// <summary>An output compared by cosine, or by equality when <paramref name="exact"/> (an integer or boolean output).</summary>
    public OutputCosine(bool exact = false) => _exact = exact;

    /// <summary>Whether every row of a float output held one value, so that the output is compared across the rows.</summary>
    public bool OneValuePerRow => !_exact && _oneValue && _rows > 0;

    /// <summary>For an output compared by equality, the fraction of all its values that differ (0 without values).</summary>
    public double Differing => _values == 0 ? 0 : (double)_differing / _values;

    /// <summary>The mean cosine (1 without rows).</summary>
    public double Mean => _rows == 0 ? 1 : OneValuePerRow ? _column.Value : _rowCosines / _rows;

    /// <summary>The worst row's cosine (1 without rows).</summary>
    public double Worst => _rows == 0 ? 1 : OneValuePerRow ? Math.Min(_column.Value, RowCosine(_largestSquaredError, _squares / _rows)) : _worstRow;

    /// <summary>Adds one row: the reference values <paramref name="f"/> against the compared <paramref name="q"/>.</summary>
    public void Add(ReadOnlySpan<float> f, ReadOnlySpan<float> q)
    {
        if (_exact)
        {
            double equal = Equal(f, q, out long differing);
            _rowCosines += equal;
            _worstRow = Math.Min(_worstRow, equal);
            _values += Math.Max(f.Length, q.Length);
            _differing += differing;
            _rows++;
            return;
        }
        var cosine = new CosineSum();
        cosine.Add(f, q);
        _rowCosines += cosine.Value;
        _worstRow = Math.Min(_worstRow, cosine.Value);
        _column.Add(f, q);
        _oneValue &= f.Length == 1;
        if (f.Length == 1 && float.IsFinite(f[0]) && float.IsFinite(q[0]))
        {
            double d = (double)f[0] - q[0];
            _squares += (double)f[0] * f[0];
            _largestSquaredError = Math.Max(_largestSquaredError, d * d);
        }
        _rows++;
    }

    /// <summary>The output compared over <paramref name="rows"/> (indices into <paramref name="f"/> and <paramref name="q"/>).</summary>
    public static OutputCosine Over(IReadOnlyList<float[]> f, IReadOnlyList<float[]> q, IEnumerable<int> rows, bool exact = false)
    {
        var cosine = new OutputCosine(exact);
        foreach (int r in rows) cosine.Add(f[r], q[r]);
        return cosine;
    }

    /// <summary>Each row's cosine, as <see cref="Worst"/> takes it (the remarks): per row, or across them for a one-value output.</summary>
    public static double[] PerRow(IReadOnlyList<float[]> f, IReadOnlyList<float[]> q, bool exact = false)
    {
        if (exact) return f.Select((v, r) => Equal(v, q[r], out _)).ToArray();
        if (f.Count == 0 || f.Any(v => v.Length != 1))
            return f.Select((v, r) => { var c = new CosineSum(); c.Add(v, q[r]); return c.Value; }).ToArray();
        double meanSquare = f.Where(v => float.IsFinite(v[0])).Select(v => (double)v[0] * v[0]).Sum() / f.Count;
        return f.Select((v, r) => float.IsFinite(v[0]) && float.IsFinite(q[r][0])
            ? RowCosine(((double)v[0] - q[r][0]) * ((double)v[0] - q[r][0]), meanSquare) : 1).ToArray();
    }

    // The fraction of equal values (1 for an empty row; a length mismatch counts the missing values as differing).
    private static double Equal(ReadOnlySpan<float> f, ReadOnlySpan<float> q, out long differing)
    {
        int n = Math.Min(f.Length, q.Length);
        differing = Math.Abs(f.Length - q.Length);
        for (int i = 0; i < n; i++) if (f[i] != q[i]) differing++;
        int length = Math.Max(f.Length, q.Length);
        return length == 0 ? 1 : 1 - (double)differing / length;
    }

    // 1 − d² / (2 · mean f²), down to −1 at most; 1 − 0/0 reads 1 and an error on a zero column 0, as the cosine of a zero vector.
    private static double RowCosine(double squaredError, double meanSquare) =>
        meanSquare == 0 ? (squaredError == 0 ? 1 : 0) : Math.Max(-1, 1 - squaredError / (2 * meanSquare));
}
