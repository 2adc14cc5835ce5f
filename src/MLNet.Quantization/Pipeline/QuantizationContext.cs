using Microsoft.ML;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// What the passes of one <c>Fit</c> share: the indexed float graph, the plan, the statistics and the parameters, and
/// what realization made of them. Each pass reads what earlier passes left and sets its own part; reading a part
/// that no earlier pass set is a bug in the list of passes, reported as such.
/// </summary>
internal sealed class QuantizationContext
{
    private QuantizationPlan? _plan;
    private CalibrationStatistics? _statistics;
    private QuantizationParameters? _parameters;
    private OnnxGraph? _realized;

    public QuantizationContext(QuantizationSettings settings, IDataView data, OnnxGraph model, Exclusions exclusions,
        string fingerprint, IReadOnlyDictionary<string, string> inputShapes)
    {
        Settings = settings;
        Data = data;
        Model = model;
        Exclusions = exclusions;
        Fingerprint = fingerprint;
        InputShapes = inputShapes;
    }

    public QuantizationSettings Settings { get; }

    /// <summary>The rows of <c>Fit</c>.</summary>
    public IDataView Data { get; }

    /// <summary>
    /// The float model: prepared (BatchNormalization folded, opset 13), then rewritten by the passes that keep its
    /// function (cross-layer equalization, SmoothQuant). Every measurement compares against it.
    /// </summary>
    public OnnxGraph Model { get; }

    /// <summary>
    /// The model as the user gave it (float16 widened to float32, nothing else changed): what a model that stays float
    /// returns, so that it runs exactly as the user's own.
    /// </summary>
    public OnnxGraph? Source { get; init; }

    /// <summary>The nodes and op types the user keeps in float.</summary>
    public Exclusions Exclusions { get; }

    /// <summary>The model file's fingerprint and the inputs' types and shapes, as statistics record them.</summary>
    public string Fingerprint { get; }

    public IReadOnlyDictionary<string, string> InputShapes { get; }

    public QuantizationPlan Plan { get => Require(_plan, "plan"); set => _plan = value; }

    public CalibrationStatistics Statistics { get => Require(_statistics, "statistics"); set => _statistics = value; }

    public QuantizationParameters Parameters { get => Require(_parameters, "parameters"); set => _parameters = value; }

    /// <summary>The quantized model in the mode of the settings.</summary>
    public OnnxGraph Realized { get => Require(_realized, "realized model"); set => _realized = value; }

    /// <summary>Each quantized tensor's dequantized name in <see cref="Realized"/>.</summary>
    public IReadOnlyDictionary<string, string> Dequantized { get; set; } = new Dictionary<string, string>();

    /// <summary>What preparation changed of the model's interface (float16 inputs and outputs made float32).</summary>
    public IReadOnlyList<string> Conversions { get; init; } = Array.Empty<string>();

    /// <summary>
    /// Graph outputs added during <c>Fit</c> to stand for outputs that cannot be compared (a ZipMap's sequence): each
    /// with the output it stands for (<see cref="Onnx.StandInOutputs"/>).
    /// </summary>
    public IReadOnlyDictionary<string, string> StandIns { get; init; } = new Dictionary<string, string>();

    /// <summary>The nodes the fallback kept in float.</summary>
    public IReadOnlyList<string> FloatNodes { get; set; } = Array.Empty<string>();

    /// <summary>The realized-vs-simulated agreement (int8 only).</summary>
    public RealizationAgreement? Agreement { get; set; }

    /// <summary>
    /// The float model's outputs on the first measurement rows, in order (null for an output that is not float), when the
    /// tuner kept them: the checks compare with these instead of running the float model again on every row.
    /// </summary>
    public IReadOnlyList<float[]?[]>? FloatOutputs { get; set; }

    /// <summary>What the deployment check measured (null when it is off or had no rows).</summary>
    public DeploymentCheck? Deployment { get; set; }

    /// <summary>
    /// The recipe as set, realized (the tuner's first trial), when the tuner chose another recipe: <c>Fit</c> checks it
    /// too when the deployment check returns the chosen recipe in float for lack of speed.
    /// </summary>
    public QuantizationContext? RecipeAsSet { get; set; }

    /// <summary>What the tuner tried and chose (null when tuning is off).</summary>
    public TuningResult? Tuning { get; set; }

    /// <summary>
    /// A context for <paramref name="settings"/> that starts where this one stands: the same data, plan, statistics,
    /// parameters and realized model. The float model is copied when <paramref name="cloneModel"/> is set (for a step
    /// that rewrites it), and shared otherwise: the passes after the equalization steps only read it.
    /// </summary>
    public QuantizationContext Fork(QuantizationSettings settings, bool cloneModel) =>
        new(settings, Data, cloneModel ? Model.Clone() : Model, Exclusions, Fingerprint, InputShapes)
        {
            Source = Source, Conversions = Conversions, StandIns = StandIns, _plan = _plan, _statistics = _statistics, _parameters = _parameters,
            _realized = _realized, Dequantized = Dequantized, FloatNodes = FloatNodes, Agreement = Agreement, Timings = Timings,
            ModelVersion = ModelVersion, Collected = Collected, CollectedActivations = CollectedActivations, WeightCache = WeightCache,
            ValuesKeptFrom = ValuesKeptFrom, Foreseen = Foreseen,
        };

    /// <summary>
    /// Stands for the float model's content: copied by <see cref="Fork"/> (a copy of the model holds the same graph), and
    /// renewed by <see cref="ModelChanged"/> once a step has rewritten it.
    /// </summary>
    public object ModelVersion { get; private set; } = new();

    /// <summary>
    /// Marks the float model as rewritten, so that statistics collected on it before are not reused; with
    /// <paramref name="keepsValues"/>, the rewrite kept the value of every tensor it did not add (see
    /// <see cref="ValuesKeptFrom"/>).
    /// </summary>
    public void ModelChanged(bool keepsValues = false)
    {
        var before = ModelVersion;
        ModelVersion = new object();
        if (keepsValues) ValuesKeptFrom[ModelVersion] = before;
    }

    /// <summary>
    /// For a float model version made by a rewrite that keeps tensor values (SmoothQuant), the version it was made from:
    /// activation statistics collected there hold here for every tensor both have. Shared by every <see cref="Fork"/>.
    /// </summary>
    public Dictionary<object, object> ValuesKeptFrom { get; private init; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The activation statistics, collected on these rows, of the nearest earlier model version whose tensors keep their
    /// values in this one; null if there are none (or, where <paramref name="histograms"/>, none with histograms).
    /// </summary>
    public CalibrationStatistics? StatisticsOfKeptValues(bool histograms)
    {
        foreach (var before in VersionsWithKeptValues())
            if (CollectedActivations.TryGetValue((before, Settings.Rows), out var statistics) && (!histograms || statistics.HasHistograms))
                return statistics;
        return null;
    }

    /// <summary>
    /// The rows' extremes of <paramref name="tensor"/> that a step collected on these rows of an earlier model version whose
    /// tensors keep their values in this one (see <see cref="ScaledStatistics"/>); null if none did.
    /// </summary>
    public RowExtremes? RowExtremesOfKeptValues(string tensor)
    {
        foreach (var before in VersionsWithKeptValues())
            foreach (var (key, values) in Collected)
                if (ReferenceEquals(key.Version, before) && key.Rows == Settings.Rows && values.RowExtremesOf(tensor) is { } extremes)
                    return extremes;
        return null;
    }

    // The earlier model versions whose tensors keep their values in this one, nearest first (see ValuesKeptFrom).
    private IEnumerable<object> VersionsWithKeptValues()
    {
        for (var version = ModelVersion; ValuesKeptFrom.TryGetValue(version, out var before); version = before)
            yield return before;
    }

    /// <summary>
    /// The statistics that steps collected on the float model, by its <see cref="ModelVersion"/>, the rows read and the
    /// points: shared by every <see cref="Fork"/>, so that the tuner's candidates of one step (SmoothQuant's α values)
    /// stream the rows once between them.
    /// </summary>
    public Dictionary<(object Version, RowSettings Rows, string Points), StatisticValues> Collected { get; private init; } = new();

    /// <summary>
    /// The activation statistics last collected on each float model (by its <see cref="ModelVersion"/>) and rows, shared
    /// by every <see cref="Fork"/>: a later collection on the same model that needs histograms takes its bins from them.
    /// </summary>
    public Dictionary<(object Version, RowSettings Rows), CalibrationStatistics> CollectedActivations { get; private init; } = new();

    /// <summary>
    /// Sets of statistic points (without probes), one per step, that later steps will read of a float model version on all calibration rows:
    /// the activation statistics stream of that version reduces them too and files them in <see cref="Collected"/>, so
    /// that the step that reads them streams nothing (the tuner's SmoothQuant trials, after a first trial without it).
    /// Shared by every <see cref="Fork"/>.
    /// </summary>
    public Dictionary<object, List<IReadOnlyList<StatisticPoint>>> Foreseen { get; private init; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The <see cref="Foreseen"/> point sets of this model version not yet in <see cref="Collected"/>, each with the key
    /// it is filed under (<see cref="QuantizationPipeline.CollectionKey"/>, all rows): what this version's activation
    /// stream reduces besides.
    /// </summary>
    public IReadOnlyList<(IReadOnlyList<StatisticPoint> Points, (object Version, RowSettings Rows, string Points) Key)> PendingForeseen() =>
        Foreseen.GetValueOrDefault(ModelVersion, new())
            .Select(points => (Points: points, Key: QuantizationPipeline.CollectionKey(this, points, long.MaxValue)))
            .Where(f => f.Key is { } k && !Collected.ContainsKey(k)).Select(f => (f.Points, f.Key!.Value)).ToList();

    /// <summary>
    /// Drops what the steps collected for later steps to reuse (<see cref="Collected"/>, <see cref="CollectedActivations"/>,
    /// <see cref="Foreseen"/>), in every <see cref="Fork"/> that shares it: once the tuner has chosen, no recipe runs again,
    /// and the checks collect nothing (<see cref="Tune.Tuner.ReleaseTrialMemory"/>). On MiniLM these are the histograms of each SmoothQuant candidate, the rows'
    /// extremes and bias correction's statistics. <see cref="Statistics"/>, which the report reads, stays.
    /// </summary>
    public void ForgetCollected()
    {
        Collected.Clear();
        CollectedActivations.Clear();
        Foreseen.Clear();
    }

    /// <summary>The int8 weights already made, shared by every <see cref="Fork"/>: the tuner's trials recalibrate the same weights.</summary>
    public WeightCache WeightCache { get; private init; } = new();

    /// <summary>
    /// Seconds each pass took, statistics included, in order (for the benchmarks): one list for the whole fit, shared by
    /// every <see cref="Fork"/>, so that the tuner's trials and the checks after them all land in it.
    /// </summary>
    public List<(string Pass, double Seconds)> Timings { get; private init; } = new();

    private static T Require<T>(T? value, string what) where T : class =>
        value ?? throw new InvalidOperationException($"No pass has made the {what} yet: the list of passes is out of order.");
}
