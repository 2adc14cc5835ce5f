using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;

namespace MLNet.Quantization;

/// <summary>
/// The fitted result of <see cref="QuantizingEstimator"/>: the quantized ONNX model, run by ML.NET's own
/// <see cref="OnnxTransformer"/>. Saving writes that <see cref="OnnxTransformer"/>, so a saved model loads in any ML.NET
/// application, with or without this library; the calibration table travels in the ONNX model's metadata.
/// </summary>
public sealed class QuantizingTransformer : ITransformer, IDisposable
{
    private readonly byte[] _model;
    private readonly OnnxTransformer _inner;
    private readonly TemporaryModelFile _modelFile;
    private bool _disposed;
    private readonly Lazy<CalibrationReport> _report;

    /// <summary>Seconds each pass of <c>Fit</c> took, in order (for the benchmarks).</summary>
    internal IReadOnlyList<(string Pass, double Seconds)> FitTimings { get; init; } = Array.Empty<(string, double)>();

    internal QuantizingTransformer(TransformsCatalog catalog, Onnx.OnnxGraph realized, CalibrationTable calibration,
        CalibrationStatistics statistics, Lazy<CalibrationReport> report, RealizationAgreement? agreement, QuantizationSettings settings,
        IDataView fitData)
    {
        Agreement = agreement;
        _model = realized.ToBytes();
        Calibration = calibration;
        Statistics = statistics;
        _report = report;
        Mode = settings.Realization.Mode;
        var shapes = settings.ShapeDictionary?.ToDictionary(kv => kv.Key, kv => kv.Value);
        // ML.NET's ApplyOnnxModel(Stream) writes a temp file that nobody deletes; this transformer owns its file instead.
        _modelFile = new TemporaryModelFile(_model);
        try
        {
            _inner = catalog.ApplyOnnxModel(new OnnxOptions
            {
                ModelFile = _modelFile.Path,
                OutputColumns = settings.OutputColumnNames?.ToArray()
                    ?? realized.Graph.Output.Select(v => v.Name).Where(n => !IsSlotNamesOutput(n)).ToArray(),
                InputColumns = settings.InputColumnNames?.ToArray() ?? realized.RealInputs().Select(v => v.Name).ToArray(),
                ShapeDictionary = shapes,
                IntraOpNumThreads = settings.Realization.IntraOpNumThreads,
            }).Fit(fitData);
        }
        catch (Exception e)
        {
            _modelFile.Dispose();
            if (e is ArgumentException or InvalidOperationException or InvalidDataException) throw;
            throw new InvalidOperationException(
                $"ML.NET's OnnxTransformer cannot load the quantized form of '{settings.ModelFile}': {e.GetType().Name}: {e.Message}", e);
        }
    }

    // ML.NET's ONNX exporter keeps a column's slot names in a node 'mlnet.<column>.SlotNames' whose output
    // 'mlnet.<column>.unusedOutput' is a graph output; its OnnxTransformer hides such outputs, and refuses them as columns.
    private static bool IsSlotNamesOutput(string name) =>
        name.StartsWith("mlnet.", StringComparison.Ordinal) && name.EndsWith(".unusedOutput", StringComparison.Ordinal);

    /// <summary>The per-tensor thresholds, scales and zero points chosen at <c>Fit</c>.</summary>
    public CalibrationTable Calibration { get; }

    /// <summary>
    /// The ranges and histograms calibration gathered: save them, merge shards, or fit again with another method
    /// through <see cref="QuantizingEstimator.Options.Statistics"/> without reading the data.
    /// </summary>
    public CalibrationStatistics Statistics { get; }

    /// <summary>
    /// The per-layer report: thresholds, clipping, KL divergence, SQNR of the simulated model against the float model on
    /// calibration rows, histograms, and the layers ranked by error. Measured on first access (one pass over at most 64
    /// calibration rows, or the held-back rows when <c>MinimumOutputCosine</c> was set).
    /// </summary>
    public CalibrationReport Report => _report.Value;

    /// <summary>
    /// How closely the realized int8 model, run as ML.NET runs it on the fitting machine's CPU, matches the simulated
    /// model on the measured calibration rows; see <see cref="RealizationAgreement.Explanation"/> when it falls below
    /// 0.999. Null in <see cref="QuantizationMode.Simulated"/> mode, when <c>Fit</c> had no rows to measure on
    /// (a fit from saved statistics), and when the deployment check returned the float model.
    /// </summary>
    public RealizationAgreement? Agreement { get; }

    /// <summary>
    /// What <c>Fit</c> measured of this model as ML.NET runs it on the fitting CPU: every output against the float model,
    /// the speed of both, the nodes kept in float and why, and whether the float model was returned because int8 was not
    /// faster (<see cref="DeploymentCheck.KeptFloat"/>). Null when <c>CheckDeployment</c> was off or <c>Fit</c> had no
    /// rows to measure on (a fit from saved statistics).
    /// </summary>
    public DeploymentCheck? Deployment { get; init; }

    /// <summary>
    /// What the tuner of <c>Fit</c> tried and chose (see <see cref="QuantizingEstimator.Options.Tuning"/>): the trials
    /// table, the recipe returned and why the search stopped. Null when tuning was off.
    /// </summary>
    public TuningResult? Tuning { get; init; }

    /// <summary>Whether the model runs realized int8 or simulated quantization.</summary>
    public QuantizationMode Mode { get; }

    /// <summary>The size in bytes of the quantized ONNX model.</summary>
    public long ModelSize => _model.LongLength;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => ((ITransformer)Inner).IsRowToRowMapper;

    private OnnxTransformer Inner => _disposed
        ? throw new ObjectDisposedException(nameof(QuantizingTransformer), "The quantized model was disposed: its ONNX Runtime session is released.")
        : _inner;

    /// <summary>Writes the quantized ONNX model to <paramref name="path"/>; on failure no partial file is left.</summary>
    /// <param name="path">The file to write. An existing file is replaced.</param>
    public void ExportOnnx(string path) => AtomicFile.Write(path, stream => stream.Write(_model));

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Inner.GetOutputSchema(inputSchema);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => ((ITransformer)Inner).GetRowToRowMapper(inputSchema);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Inner.Transform(input);

    /// <summary>Saves the wrapped <see cref="OnnxTransformer"/>, which holds the quantized model.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)Inner).Save(ctx);

    /// <summary>
    /// Releases the ONNX Runtime session and deletes the temporary model file. Afterwards <c>Transform</c>, saving and
    /// new prediction engines throw <see cref="ObjectDisposedException"/>; <see cref="ExportOnnx"/>, the table, the
    /// report and the statistics stay available. Data views returned by <c>Transform</c> before must not be read after.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _inner.Dispose();
        _modelFile.Dispose();
    }
}
