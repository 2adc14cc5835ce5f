namespace MLNet.Quantization;

public sealed partial class QuantizingEstimator
{
    /// <summary>The settings of <see cref="QuantizingEstimator"/>. They are validated and frozen when <c>Fit</c> starts.</summary>
    public sealed class Options
    {
        /// <summary>The float ONNX model to quantize. Required.</summary>
        public string ModelFile { get; set; } = "";

        /// <summary>The model inputs to feed, which are also the names of the input columns. Null: all of the model's inputs.</summary>
        public string[]? InputColumnNames { get; set; }

        /// <summary>
        /// The model outputs to produce, which are also the names of the output columns. Null: all of the model's outputs.
        /// Only these are quantized for, compared by the tuner and the checks, and computed: the quantized model drops
        /// the nodes that compute only the other outputs.
        /// </summary>
        public string[]? OutputColumnNames { get; set; }

        /// <summary>Realized int8 (the default) or simulated quantization.</summary>
        public QuantizationMode Mode { get; set; } = QuantizationDefaults.Mode;

        /// <summary>How activation thresholds are chosen. Default: <see cref="CalibrationMethod.Max"/>, the best on the models measured in docs/benchmarks.md.</summary>
        /// <remarks>Setting it pins the method: <see cref="Tuning"/> then leaves it as set.</remarks>
        public CalibrationMethod ActivationCalibration { get => _method; set { _method = value; Pin(nameof(ActivationCalibration)); } }

        /// <summary>
        /// A threshold search of your own (any <see cref="Calibration.IThresholdSearch"/>: a pure function from a histogram
        /// to a range) for every activation; it replaces <see cref="ActivationCalibration"/>. Null (the default): the
        /// method's own search.
        /// </summary>
        public Calibration.IThresholdSearch? ActivationSearch { get; set; }

        /// <summary>How weight scales are chosen. Default: <see cref="WeightScaleMethod.Max"/>.</summary>
        public WeightScaleMethod WeightScale { get; set; } = QuantizationDefaults.WeightScale;

        /// <summary>
        /// The int8 values weights may take. Default <see cref="WeightRange.PairBounded"/>: per output channel the two
        /// largest |q| of each sign sum to at most 128, so that the model cannot saturate ONNX Runtime's int16 pair sums on x86-64
        /// CPUs without VNNI (depthwise convolutions, whose kernels never pair products, use ±127). <see cref="WeightRange.Full"/> uses all of ±127; choose it only when every CPU that will run
        /// the model has VNNI (AVX512-VNNI or AVX-VNNI) or is ARM: elsewhere the model can give wrong outputs, silently.
        /// </summary>
        public WeightRange WeightRange { get; set; } = QuantizationDefaults.WeightRange;

        /// <summary>One scale per output channel of each weight (the default) instead of one per tensor.</summary>
        public bool PerChannelWeights { get; set; } = QuantizationDefaults.PerChannelWeights;

        /// <summary>
        /// How weights are rounded to their int8 steps (see <see cref="MLNet.Quantization.WeightRounding"/>). Default:
        /// <see cref="WeightRounding.Balanced"/>, whose rounding errors cancel within each kernel and output channel.
        /// </summary>
        /// <remarks>Setting it pins it: <see cref="Tuning"/> then leaves it as set.</remarks>
        public WeightRounding WeightRounding { get => _weightRounding; set { _weightRounding = value; Pin(nameof(WeightRounding)); } }

        /// <summary>
        /// Corrects each quantized layer's per-channel output mean towards the float model's, on the calibration rows
        /// (see <see cref="MLNet.Quantization.BiasCorrection"/>). Default: <see cref="BiasCorrection.None"/>, chosen by the
        /// evaluation in docs/benchmarks.md.
        /// </summary>
        /// <remarks>Setting it pins the correction: <see cref="Tuning"/> then leaves it as set.</remarks>
        public BiasCorrection BiasCorrection { get => _biasCorrection; set { _biasCorrection = value; Pin(nameof(BiasCorrection)); } }

        /// <summary>
        /// Cross-layer equalization (Nagel et al., data-free quantization): in each Conv → (Relu) → Conv chain, channel c
        /// of the first Conv is divided by s_c = sqrt(r1_c / r2_c) and the second Conv's input channel c multiplied by it
        /// (r: the channels' largest |w|), which leaves the float model's function unchanged and evens out the channel
        /// ranges. Pays most with per-tensor weights. Default false.
        /// </summary>
        /// <remarks>Setting it pins it: <see cref="Tuning"/> then leaves it as set.</remarks>
        public bool CrossLayerEqualization { get => _crossLayer; set { _crossLayer = value; Pin(nameof(CrossLayerEqualization)); } }

        /// <summary>
        /// SmoothQuant (Xiao et al.) for MatMuls with constant weights: input channel k is divided by
        /// s_k = max|X_k|^α / max|W_k|^(1−α) and the weight's row k multiplied by it, moving activation outliers into the
        /// weights. In [0, 1], or null (the default) for off. For transformers set 0.8: on all-MiniLM-L6-v2 it lifts the
        /// nearest-neighbour agreement with fp32 from 87.8% to 93.2% (docs/benchmarks.md; NNCF uses 0.95). The MatMuls then
        /// read, and the calibration table names, a smoothed copy of their input (<c>&lt;input&gt;_smoothed</c>).
        /// </summary>
        /// <remarks>Setting it, even to null, pins it: <see cref="Tuning"/> then leaves it as set.</remarks>
        public double? SmoothQuantAlpha { get => _smoothQuantAlpha; set { _smoothQuantAlpha = value; Pin(nameof(SmoothQuantAlpha)); } }

        /// <summary>
        /// The search over the recipe that <c>Fit</c> runs (see <see cref="TuningOptions"/>), on by default: SmoothQuant's
        /// α, cross-layer equalization, the activation calibration method, weight rounding and bias correction, each searched where the
        /// model has the ops it applies to and the option was not set explicitly, one at a time, each trial scored
        /// label-free on held-back rows (every fifth row, which calibration then skips) as ML.NET runs the model. The
        /// best recipe found is returned, with the trials table in <see cref="QuantizingTransformer.Tuning"/>. Null: the
        /// recipe as set, calibrated on every row.
        /// </summary>
        public TuningOptions? Tuning { get; set; } = new();

        private CalibrationMethod _method = QuantizationDefaults.ActivationCalibration;
        private BiasCorrection _biasCorrection = QuantizationDefaults.BiasCorrection;
        private WeightRounding _weightRounding = QuantizationDefaults.WeightRounding;
        private bool _crossLayer = QuantizationDefaults.CrossLayerEqualization;
        private double? _smoothQuantAlpha = QuantizationDefaults.SmoothQuantAlpha;
        private readonly HashSet<string> _pinned = new(StringComparer.Ordinal);

        private void Pin(string option) => _pinned.Add(option);

        /// <summary>Calibrate on at most this many rows of the data (null: all rows). Must be positive.</summary>
        public int? MaximumCalibrationRows { get; set; }

        /// <summary>Shapes of model inputs with dynamic dimensions, as in <c>ApplyOnnxModel</c>.</summary>
        public IDictionary<string, int[]>? ShapeDictionary { get; set; }

        /// <summary>
        /// Intra-op threads of ONNX Runtime when the fitted transformer scores (null: ONNX Runtime's default). This setting
        /// is not saved with the model.
        /// </summary>
        public int? IntraOpNumThreads { get; set; }

        /// <summary>
        /// Quantize activations that take negative values over their own [min, max] (clipped to the calibrated threshold)
        /// with a computed zero point, instead of symmetrically around zero point 128. Never-negative activations keep
        /// zero point 0 either way. Default true: skewed activations (transformer hidden states, residual sums) gain from it.
        /// </summary>
        public bool AsymmetricActivations { get; set; } = QuantizationDefaults.AsymmetricActivations;

        /// <summary>
        /// Statistics to calibrate from instead of reading rows (from <see cref="QuantizingTransformer.Statistics"/>,
        /// <see cref="CalibrationStatistics.Load"/> or <see cref="CalibrationStatistics.Merge"/>). They must come from the
        /// same model file, inputs and <see cref="Bins"/>.
        /// </summary>
        public CalibrationStatistics? Statistics { get; set; }

        /// <summary>
        /// Count histograms over the ranges of these statistics in a single pass, instead of over the data's own ranges:
        /// the second round of sharded calibration (see <see cref="CalibrationStatistics"/>).
        /// </summary>
        public CalibrationStatistics? RangesFrom { get; set; }

        /// <summary>
        /// When set, the fewest of the layers most responsible for output error are kept in float for the quantized
        /// model's mean output cosine to the float model to reach this value on held-back calibration rows (every fifth
        /// row, which calibration then skips), for every output of the model: the worst output decides. The count is
        /// found by galloping (1, 2, 4… layers) then bisection, so that it costs about 2·log2 of it in measured models. Label-free.
        /// In (0, 1]; default null (off). With <see cref="Tuning"/> and a tolerance set there, the tuner searches this
        /// value last, towards the tolerance; setting it pins it.
        /// </summary>
        public double? MinimumOutputCosine { get => _minimumOutputCosine; set { _minimumOutputCosine = value; Pin(nameof(MinimumOutputCosine)); } }

        private double? _minimumOutputCosine;

        /// <summary>
        /// Whether <c>Fit</c> ends by measuring the model it returns, as ML.NET will run it on this CPU (see
        /// <see cref="DeploymentCheck"/>): every output against the float model and the time per row of both. Layers
        /// where the int8 kernels disagree with the simulation go back to float, and where the int8 model is not
        /// faster than the float one the float model is returned, with <see cref="DeploymentCheck.KeptFloat"/> and a
        /// summary saying why. Default true. False returns the quantized model as realized, unmeasured (for studies of
        /// the realization itself, or when the fitting machine is not the deployment machine).
        /// </summary>
        public bool CheckDeployment { get; set; } = QuantizationDefaults.CheckDeployment;

        /// <summary>
        /// With <see cref="CheckDeployment"/>: the largest relative error ‖fp32 − int8‖ / ‖fp32‖ any output may keep on the
        /// measured rows. Past it, the fewest of the layers that add the most noise go back to float for every output to
        /// be within it, counted by galloping (1, 2, 4… layers) then bisection (and if int8 is then no faster, the float
        /// model is returned). Where <see cref="MinimumSpeedup"/> decides, the model with the fewest layers in float that
        /// could still meet the bound is timed before the bisection; if it misses <see cref="MinimumSpeedup"/>, so is the
        /// one with the most that the galloping found within the bound, and if that misses too, the search stops and the
        /// float model is returned; if only that one is fast enough (int8 layers slower than float ones), the bisection
        /// looks for the fewest layers both within the bound and fast enough. <see cref="DeploymentCheck.OutputsWithinErrorBound"/> and the summary name the outputs that
        /// were within the bound with every layer quantized, for <see cref="OutputColumnNames"/>. Default 0.25, a
        /// guard against a broken model rather than a quality target (for that, see <see cref="MinimumOutputCosine"/>);
        /// positive, or null for no bound.
        /// </summary>
        public double? MaximumOutputError { get; set; } = QuantizationDefaults.MaximumOutputError;

        /// <summary>
        /// With <see cref="CheckDeployment"/>: how many times faster than the float model the int8 model must run on the
        /// fitting CPU to be returned; slower, the user's float model is returned instead. When tuning chose a recipe that
        /// misses it, the recipe as set is checked too and returned if it meets it. Default 1.1; finite and at least 0
        /// (0: never return the float model for speed).
        /// </summary>
        public double MinimumSpeedup { get; set; } = QuantizationDefaults.MinimumSpeedup;

        /// <summary>Receives the progress of each pass over the calibration rows.</summary>
        public IProgress<CalibrationProgress>? Progress { get; set; }

        /// <summary>Nodes kept in float, by name. Each name must be a node of the model; an unknown name is an error that lists the closest names.</summary>
        public string[]? ExcludeNodes { get; set; }

        /// <summary>Op types kept in float (for example <c>"Add"</c>). Each must occur in the model; an unknown one is an error that lists the closest.</summary>
        public string[]? ExcludeOpTypes { get; set; }

        /// <summary>
        /// Histogram bins of the KL and percentile searches, over ±max|x|. Odd, at least 2 × <see cref="QuantizedBins"/> + 1,
        /// at most 1,000,001. Default 8001 (MXNet/TVM).
        /// </summary>
        public int Bins { get; set; } = QuantizationDefaults.Bins;

        /// <summary>Quantized bins of the KL search for signed tensors (never-negative ones use 2q + 1). At least 3. Default 255.</summary>
        public int QuantizedBins { get; set; } = QuantizationDefaults.QuantizedBins;

        /// <summary>
        /// Whether calibration from rows also counts every activation into a histogram, a second pass over the rows. Null
        /// (the default): only when the method needs histograms (KL divergence, percentile, a custom search or
        /// calibration); max and mean of per-row min/max need ranges alone, and a fit then reads the rows once. Set it to
        /// true to fill the report's clipping and KL columns, or to keep statistics that another method can refit from.
        /// </summary>
        public bool? CollectHistograms { get; set; }

        /// <summary>The percentage of |x| that <see cref="CalibrationMethod.Percentile"/> keeps, in (0, 100]. Default 99.999.</summary>
        public double Percentile { get; set; } = QuantizationDefaults.Percentile;

        /// <summary>
        /// Chooses the range of any activation or weight tensor: return a range to use it, or null to keep the configured
        /// method. Activations receive their histogram; a weight's range becomes one per-tensor scale. An activation
        /// range with a negative minimum is realized over [min, max] (symmetrically when <see cref="AsymmetricActivations"/>
        /// is false). Bias scales always follow from input and weight scales.
        /// </summary>
        public Func<Calibration.TensorStatistics, Calibration.TensorRange?>? CustomCalibration { get; set; }

        internal QuantizationSettings Freeze()
        {
            if (string.IsNullOrWhiteSpace(ModelFile))
                throw new ArgumentException("The model file must be set.", nameof(ModelFile));
            if (!File.Exists(ModelFile))
                throw new FileNotFoundException($"The ONNX model file '{ModelFile}' does not exist.", ModelFile);
            CheckDefined(Mode, nameof(Mode));
            CheckDefined(ActivationCalibration, nameof(ActivationCalibration));
            CheckDefined(WeightScale, nameof(WeightScale));
            CheckDefined(WeightRange, nameof(WeightRange));
            CheckDefined(BiasCorrection, nameof(BiasCorrection));
            CheckDefined(WeightRounding, nameof(WeightRounding));
            if (SmoothQuantAlpha is { } alpha && !(alpha >= 0 && alpha <= 1))
                throw new ArgumentOutOfRangeException(nameof(SmoothQuantAlpha), alpha, "Must lie in [0, 1], or be null for no smoothing.");
            if (MaximumCalibrationRows is <= 0)
                throw new ArgumentOutOfRangeException(nameof(MaximumCalibrationRows), MaximumCalibrationRows, "Must be positive, or null for all rows.");
            if (IntraOpNumThreads is <= 0)
                throw new ArgumentOutOfRangeException(nameof(IntraOpNumThreads), IntraOpNumThreads, "Must be positive, or null for the default.");
            if (QuantizedBins < 3)
                throw new ArgumentOutOfRangeException(nameof(QuantizedBins), QuantizedBins, "Must be at least 3.");
            if (Bins % 2 == 0 || Bins < 2 * QuantizedBins + 1 || Bins > QuantizationDefaults.MaximumBins)
                throw new ArgumentOutOfRangeException(nameof(Bins), Bins,
                    $"Must be odd and lie in [2 × QuantizedBins + 1 = {2 * QuantizedBins + 1}, {QuantizationDefaults.MaximumBins}].");
            if (!(Percentile > 0 && Percentile <= 100))
                throw new ArgumentOutOfRangeException(nameof(Percentile), Percentile, "Must lie in (0, 100].");
            if (Statistics is not null && RangesFrom is not null)
                throw new ArgumentException("Statistics already hold histograms; RangesFrom is only for collecting them from rows.", nameof(RangesFrom));
            if (MaximumOutputError is { } error && !(error > 0 && double.IsFinite(error)))
                throw new ArgumentOutOfRangeException(nameof(MaximumOutputError), error, "Must be positive and finite, or null for no bound.");
            if (!(MinimumSpeedup >= 0 && double.IsFinite(MinimumSpeedup)))
                throw new ArgumentOutOfRangeException(nameof(MinimumSpeedup), MinimumSpeedup, "Must be finite and at least 0.");
            if (MinimumOutputCosine is { } cosine && !(cosine > 0 && cosine <= 1))
                throw new ArgumentOutOfRangeException(nameof(MinimumOutputCosine), cosine, "Must lie in (0, 1], or be null for no fallback.");
            var tuning = FreezeTuning();
            CheckNames(InputColumnNames, nameof(InputColumnNames));
            CheckNames(OutputColumnNames, nameof(OutputColumnNames));
            var shapes = ShapeDictionary?.ToDictionary(kv => kv.Key, kv => kv.Value?.ToArray()
                ?? throw new ArgumentException($"The shape of '{kv.Key}' is null.", nameof(ShapeDictionary)));
            return new QuantizationSettings
            {
                ModelFile = Path.GetFullPath(ModelFile),
                InputColumnNames = InputColumnNames?.ToArray(),
                OutputColumnNames = OutputColumnNames?.ToArray(),
                ShapeDictionary = shapes,
                ExcludeNodes = ExcludeNodes?.ToArray(),
                ExcludeOpTypes = ExcludeOpTypes?.ToArray(),
                Rows = new RowSettings
                {
                    MaximumCalibrationRows = MaximumCalibrationRows, Statistics = Statistics, RangesFrom = RangesFrom,
                    MinimumOutputCosine = MinimumOutputCosine, Progress = Progress, HoldBack = MinimumOutputCosine is not null || tuning is not null,
                },
                Activations = new ActivationSettings
                {
                    Method = ActivationCalibration, Asymmetric = AsymmetricActivations, Bins = Bins, QuantizedBins = QuantizedBins,
                    Percentile = Percentile, Custom = CustomCalibration, Search = ActivationSearch, CollectHistogramsOption = CollectHistograms,
                },
                Weights = new WeightSettings { Scale = WeightScale, Range = WeightRange, PerChannel = PerChannelWeights, Rounding = WeightRounding, BiasCorrection = BiasCorrection },
                Equalization = new EqualizationSettings { CrossLayer = CrossLayerEqualization, SmoothQuantAlpha = SmoothQuantAlpha },
                Realization = new RealizationSettings { Mode = Mode, IntraOpNumThreads = IntraOpNumThreads, CheckDeployment = CheckDeployment,
                    MaximumOutputError = MaximumOutputError,
                    MinimumSpeedup = MinimumSpeedup,
                },
                Tuning = tuning,
            };
        }

        // The tuner's settings, validated; null when tuning is off, or when the fit collects a shard's histograms over
        // given ranges (RangesFrom), which has no model to choose.
        private TuningSettings? FreezeTuning()
        {
            if (Tuning is not { } t || RangesFrom is not null) return null;
            CheckDefined(t.Objective, $"{nameof(Tuning)}.{nameof(TuningOptions.Objective)}");
            if (t.AbsoluteTolerance is { } absolute && !(absolute >= 0 && double.IsFinite(absolute)))
                throw new ArgumentOutOfRangeException($"{nameof(Tuning)}.{nameof(TuningOptions.AbsoluteTolerance)}", absolute, "Must be non-negative and finite, or null.");
            if (t.RelativeTolerance is { } relative && !(relative >= 0 && relative <= 1))
                throw new ArgumentOutOfRangeException($"{nameof(Tuning)}.{nameof(TuningOptions.RelativeTolerance)}", relative, "Must lie in [0, 1], or be null.");
            if (t.MaximumTrials < 1)
                throw new ArgumentOutOfRangeException($"{nameof(Tuning)}.{nameof(TuningOptions.MaximumTrials)}", t.MaximumTrials, "Must be at least 1.");
            if (t.TimeBudget is { } budget && budget <= TimeSpan.Zero)
                throw new ArgumentOutOfRangeException($"{nameof(Tuning)}.{nameof(TuningOptions.TimeBudget)}", budget, "Must be positive, or null for the default.");
            var pinned = new HashSet<string>(_pinned, StringComparer.Ordinal);
            if (ActivationSearch is not null || CustomCalibration is not null) pinned.Add(nameof(ActivationCalibration));
            // Given statistics describe the model as it was calibrated: equalizing it would change the tensors they describe.
            if (Statistics is not null) { pinned.Add(nameof(SmoothQuantAlpha)); pinned.Add(nameof(CrossLayerEqualization)); }
            return new TuningSettings
            {
                Objective = t.Objective, Metric = t.Metric, AbsoluteTolerance = t.AbsoluteTolerance, RelativeTolerance = t.RelativeTolerance,
                MaximumTrials = t.MaximumTrials, TimeBudget = t.TimeBudget, Pinned = pinned,
            };
        }

        private static void CheckDefined<T>(T value, string name) where T : struct, Enum
        {
            if (!Enum.IsDefined(value))
                throw new ArgumentOutOfRangeException(name, value, $"Not a valid {typeof(T).Name}.");
        }

        private static void CheckNames(string[]? names, string name)
        {
            if (names is null) return;
            if (names.Length == 0) throw new ArgumentException("Give at least one column name, or null for all.", name);
            if (names.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("Column names must not be empty.", name);
            var duplicate = names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null) throw new ArgumentException($"Column '{duplicate.Key}' is named twice.", name);
        }
    }
}
