using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tune;

/// <summary>
/// The held-back rows on which every trial is scored: the float model's outputs on them, computed once, and each
/// trial's realized model run over the same rows exactly as ML.NET runs it (no extra outputs, every QDQ pair fused).
/// The outputs kept fit <see cref="Budget"/> bytes, so memory does not grow with the data.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// A segmenter's full-resolution maps take tens of MB a row. Where the rows outgrow the budget, each output scored by
/// its cosine alone (not a classifier's, an embedding's or an integer output, whose scores need every value) and
/// holding at least 2·`MinimumSampledValues` values is kept on every s-th value, s = 2, 4, 8… (the same positions on
/// every row and in every trial), s doubling until every row fits or those outputs reach `MinimumSampledValues`
/// values. The cosine of a row over a regular sample of n values estimates the cosine over all of them to within
/// about 1/√n of the spread of the per-value products, so every held-back row scores the trials instead of the first
/// ones. Only where sampling cannot make the rows fit are the later rows left out, and
/// <see cref="TuningResult.HeldBackRows"/> says so. Sampled outputs are not a reference the checks can compare the
/// deployed model with value for value, so <see cref="Reference"/> is then empty and the checks run the float model.
/// ]]></format>
/// </remarks>
internal sealed class TrialMeasurement
{
    /// <summary>Bytes of float outputs kept (the quantized outputs of one trial take as much again).</summary>
    public const long Budget = 64L << 20;

    /// <summary>The fewest values per row that a sampled output keeps: 4,096, a cosine to within about 1.6% of the spread.</summary>
    public const int MinimumSampledValues = 4096;

    /// <summary>The progress pass of the trials' runs (3: measuring the quantized model).</summary>
    private const int ProgressPass = 3;

    private readonly QuantizationContext _root;
    private readonly string[] _outputs;
    private readonly List<float[][]> _float = new();
    private readonly bool[] _compared;
    private readonly bool[] _exact;

    /// <summary>Per output, every how many values are kept: 1 for all of them, 0 where an output cannot be sampled.</summary>
    private readonly int[] _strides;

    /// <param name="root">The loaded float model, its data and settings.</param>
    /// <param name="budget">Bytes of float outputs kept (<see cref="Budget"/>; smaller in tests).</param>
    public TrialMeasurement(QuantizationContext root, long budget = Budget)
    {
        _root = root;
        _outputs = root.Model.Graph.Output.Select(o => o.Name).ToArray();
        using var session = Sessions.Create(root.Model, Array.Empty<string>(), $"the float model '{root.Settings.ModelFile}'", root.Settings.Realization.IntraOpNumThreads ?? RowReader.SessionThreads);
        using var runOptions = new RunOptions();
        long bytes = 0;
        bool full = false;
        var shapes = new long[_outputs.Length][];
        _compared = new bool[_outputs.Length];
        _exact = new bool[_outputs.Length];
        _strides = new int[_outputs.Length];
        var inputAxes = new HashSet<long>();
        HeldBack = RowReader.ForEachInOrder(session, root.Data, root.Settings, ProgressPass, root.Settings.Rows.IsMeasurementRow,
            (names, values) => Volatile.Read(ref full) ? null : session.Run(runOptions, names, values, _outputs),
            (_, _, values, results) =>
            {
                if (results is null || full) return;
                if (_float.Count == 0)
                {
                    foreach (var value in values) inputAxes.UnionWith(value.GetTensorTypeAndShape().Shape.Skip(1));
                    var counts = new long[results.Count];
                    for (int k = 0; k < results.Count; k++)
                    {
                        if (!OutputValues.IsTensor(results[k]))
                        {
                            shapes[k] = Array.Empty<long>(); // a sequence or a map: not compared
                            continue;
                        }
                        var info = results[k].GetTensorTypeAndShape();
                        _compared[k] = OutputValues.IsCompared(info.ElementDataType);
                        _exact[k] = OutputValues.IsExact(info.ElementDataType);
                        shapes[k] = info.Shape;
                        counts[k] = info.ElementCount;
                    }
                    var scorings = root.Settings.Tuning is { Metric: null } tuning
                        ? TuningScores.Scorings(root.Model, tuning.Objective, shapes.Select(d => d ?? Array.Empty<long>()).ToArray(), _exact, inputAxes: inputAxes)
                        : null;
                    for (int k = 0; k < results.Count; k++)
                        _strides[k] = scorings is not null && scorings[k] == OutputScoring.Cosine && _compared[k]
                            && counts[k] >= 2L * MinimumSampledValues ? 1 : 0;
                }
                var row = Read(results, shapes, _strides);
                bytes += Bytes(row);
                _float.Add(row);
                while (bytes > budget && Halve()) bytes = _float.Sum(Bytes);
                if (bytes <= budget) return;
                if (_float.Count > 1) _float.RemoveAt(_float.Count - 1); // the first row is kept whatever its size
                Volatile.Write(ref full, true);
            }, results => results is null ? 0 : RowReader.Bytes(results));
        Shapes = shapes.Select(s => s ?? Array.Empty<long>()).ToArray();
        InputAxes = inputAxes;
    }

    private static long Bytes(float[][] row) => row.Sum(v => (long)v.Length * sizeof(float));

    /// <summary>Doubles the stride of every output that can take it, on the rows kept; false when none can.</summary>
    private bool Halve()
    {
        bool halved = false;
        for (int k = 0; k < _strides.Length; k++)
        {
            if (_strides[k] == 0 || _float[0][k].Length < 2 * MinimumSampledValues) continue;
            _strides[k] *= 2;
            foreach (var row in _float) row[k] = Sample(row[k], 2);
            halved = true;
        }
        return halved;
    }

    /// <summary>Every <paramref name="stride"/>-th value of <paramref name="values"/>, from the first.</summary>
    private static float[] Sample(ReadOnlySpan<float> values, int stride)
    {
        var sampled = new float[(values.Length + stride - 1) / stride];
        for (int i = 0; i < sampled.Length; i++) sampled[i] = values[i * stride];
        return sampled;
    }

    /// <summary>
    /// Every how many values the most sampled output was kept: 1 when every value of every output was. Outputs of fewer
    /// than 2·<see cref="MinimumSampledValues"/> values, and those whose score needs every value, are always kept whole.
    /// </summary>
    public int SampledEvery => _strides.DefaultIfEmpty(1).Max() is var s && s > 1 ? s : 1;

    /// <summary>
    /// The held-back rows read; more than <see cref="Float"/>'s when the float outputs of the later ones did not fit
    /// <see cref="Budget"/>.
    /// </summary>
    public long HeldBack { get; }

    /// <summary>The lengths of the inputs' axes besides the batch, on the first row (a token model's sequence length).</summary>
    public IReadOnlySet<long> InputAxes { get; }

    /// <summary>The model's outputs.</summary>
    public IReadOnlyList<string> Outputs => _outputs;

    /// <summary>Per kept row, per output, the float model's values (<see cref="OutputValues.Read"/>; empty for an output not compared).</summary>
    public IReadOnlyList<float[][]> Float => _float;

    /// <summary>
    /// Per kept row, per output, the float model's values, null for an output that is not compared (the checks'
    /// reference); empty when outputs were sampled, since the checks compare every value.
    /// </summary>
    public IReadOnlyList<float[]?[]> Reference => SampledEvery > 1 ? Array.Empty<float[]?[]>()
        : _float.Select(row => row.Select((v, k) => _compared[k] ? v : null).ToArray()).ToList();

    /// <summary>Per output, whether it holds integers or booleans, compared by equality (<see cref="OutputValues.IsExact"/>).</summary>
    public IReadOnlyList<bool> Exact => _exact;

    /// <summary>Each output's dimensions on the first row.</summary>
    public IReadOnlyList<long[]> Shapes { get; }

    /// <summary>Runs <paramref name="realized"/> over the kept rows; per row, per output, its values.</summary>
    public List<float[][]> Run(OnnxGraph realized)
    {
        using var session = Sessions.Create(realized, Array.Empty<string>(), "a tuning trial's quantized model", _root.Settings.Realization.IntraOpNumThreads ?? RowReader.SessionThreads);
        using var runOptions = new RunOptions();
        var rows = new List<float[][]>(_float.Count);
        var shapes = new long[_outputs.Length][];
        RowReader.ForEachInOrder(session, _root.Data, _root.Settings, ProgressPass, _root.Settings.Rows.IsMeasurementRow,
            (names, values) => session.Run(runOptions, names, values, _outputs),
            (_, _, _, results) => rows.Add(Read(results, shapes, _strides)), RowReader.Bytes, _float.Count);
        return rows;
    }

    private static float[][] Read(IReadOnlyList<OrtValue> results, long[]?[] shapes, int[] strides)
    {
        var row = new float[results.Count][];
        for (int k = 0; k < results.Count; k++)
        {
            shapes[k] ??= OutputValues.IsTensor(results[k]) ? results[k].GetTensorTypeAndShape().Shape : Array.Empty<long>();
            row[k] = !OutputValues.TryRead(results[k], out var values, out _) ? Array.Empty<float>()
                : strides[k] > 1 ? Sample(values, strides[k]) : values.ToArray();
        }
        return row;
    }
}
