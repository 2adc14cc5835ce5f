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
/// Only the first rows whose outputs fit <see cref="Budget"/> bytes are kept, so memory does not grow with the data.
/// </summary>
internal sealed class TrialMeasurement
{
    /// <summary>Bytes of float outputs kept (the quantized outputs of one trial take as much again).</summary>
    public const long Budget = 64L << 20;

    /// <summary>The progress pass of the trials' runs (3: measuring the quantized model).</summary>
    private const int ProgressPass = 3;

    private readonly QuantizationContext _root;
    private readonly string[] _outputs;
    private readonly List<float[][]> _float = new();
    private readonly bool[] _compared;
    private readonly bool[] _exact;

    public TrialMeasurement(QuantizationContext root)
    {
        _root = root;
        _outputs = root.Model.Graph.Output.Select(o => o.Name).ToArray();
        using var session = Sessions.Create(root.Model, Array.Empty<string>(), $"the float model '{root.Settings.ModelFile}'", root.Settings.Realization.IntraOpNumThreads ?? RowReader.SessionThreads);
        using var runOptions = new RunOptions();
        long bytes = 0;
        var shapes = new long[_outputs.Length][];
        _compared = new bool[_outputs.Length];
        _exact = new bool[_outputs.Length];
        var inputAxes = new HashSet<long>();
        HeldBack = RowReader.ForEachInOrder(session, root.Data, root.Settings, ProgressPass, root.Settings.Rows.IsMeasurementRow,
            (names, values) => Volatile.Read(ref bytes) > Budget ? null : session.Run(runOptions, names, values, _outputs),
            (_, _, values, results) =>
            {
                if (results is null || bytes > Budget) return;
                if (_float.Count == 0)
                {
                    foreach (var value in values) inputAxes.UnionWith(value.GetTensorTypeAndShape().Shape.Skip(1));
                    for (int k = 0; k < results.Count; k++)
                    {
                        var type = results[k].GetTensorTypeAndShape().ElementDataType;
                        _compared[k] = OutputValues.IsCompared(type);
                        _exact[k] = OutputValues.IsExact(type);
                    }
                }
                var row = Read(results, shapes);
                Volatile.Write(ref bytes, bytes + row.Sum(v => (long)v.Length * sizeof(float)));
                if (bytes <= Budget || _float.Count == 0) _float.Add(row);
            }, results => results is null ? 0 : RowReader.Bytes(results));
        Shapes = shapes.Select(s => s ?? Array.Empty<long>()).ToArray();
        InputAxes = inputAxes;
    }

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

    /// <summary>Per kept row, per output, the float model's values, null for an output that is not compared (the checks' reference).</summary>
    public IReadOnlyList<float[]?[]> Reference => _float.Select(row => row.Select((v, k) => _compared[k] ? v : null).ToArray()).ToList();

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
            (_, _, _, results) => rows.Add(Read(results, shapes)), RowReader.Bytes, _float.Count);
        return rows;
    }

    private static float[][] Read(IReadOnlyList<OrtValue> results, long[]?[] shapes)
    {
        var row = new float[results.Count][];
        for (int k = 0; k < results.Count; k++)
        {
            var info = results[k].GetTensorTypeAndShape();
            shapes[k] ??= info.Shape;
            row[k] = OutputValues.Read(results[k]) ?? Array.Empty<float>();
        }
        return row;
    }
}
