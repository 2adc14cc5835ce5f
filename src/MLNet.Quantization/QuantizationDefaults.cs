namespace MLNet.Quantization;

/// <summary>The one place the defaults of both catalog overloads and of <see cref="QuantizingEstimator.Options"/> come from.</summary>
internal static class QuantizationDefaults
{
    public const QuantizationMode Mode = QuantizationMode.Int8;
    // Max with asymmetric activations and per-channel weights is the best row of the evaluation in docs/benchmarks.md on
    // both ResNet18 (0.24 points lost vs 0.72 for KL) and MiniLM (cosine 0.994 vs 0.93 for KL).
    public const CalibrationMethod ActivationCalibration = CalibrationMethod.Max;
    public const WeightScaleMethod WeightScale = WeightScaleMethod.Max;
    public const bool PerChannelWeights = true;
    // Safe on every x86-64 CPU by construction: see WeightRange and docs/benchmarks.md (issue 9).
    public const WeightRange WeightRange = MLNet.Quantization.WeightRange.PairBounded;
    public const bool AsymmetricActivations = true;
    // Issue 16: never a model slower than float, or one whose int8 kernels compute something other than the simulation.
    public const bool CheckDeployment = true;
    // A guard against a broken int8 model, not a quality target: 0.25 is a cosine of about 0.97. ResNet18 (0.07) and
    // MiniLM stay well inside it; a detector whose maps int8 cannot hold does not (docs/benchmarks.md, issue 16).
    public static readonly double? MaximumOutputError = 0.25;
    // A gain under 10% is within the noise of a timing of a few rows (±15% was seen below 2 ms per row), and ML.NET's
    // own per-row cost, the same for both models, makes the gain smaller still in a pipeline.
    public const double MinimumSpeedup = 1.1;
    // The accuracy algorithms of issue 11, each chosen by the evaluation in docs/benchmarks.md.
    public const BiasCorrection BiasCorrection = MLNet.Quantization.BiasCorrection.None;
    // Issue 16: ResNet18's output error 0.070 → 0.050 and the openWakeWord embedding's 0.074 → 0.063, data-free
    // (docs/benchmarks.md, sixth session); only convolutions are balanced, and the tuner tries Nearest too.
    public const WeightRounding WeightRounding = MLNet.Quantization.WeightRounding.Balanced;
    public const bool CrossLayerEqualization = false;
    // SmoothQuant stays off by default although it wins on all-MiniLM-L6-v2 (nearest-neighbour agreement 87.8% → 93.2%,
    // cosine 0.9928 → 0.9976 at alpha 0.8): it quantizes a new, smoothed tensor in front of each MatMul group, so the
    // calibration table no longer names the model's own activations there, and its AVX2 behaviour was not measured.
    // RecommendedSmoothQuantAlpha is the value to set for transformers (docs/benchmarks.md, issue 11).
    public static readonly double? SmoothQuantAlpha = null;

    public const double RecommendedSmoothQuantAlpha = 0.8;

    /// <summary>Histogram bins of the KL and percentile searches (MXNet/TVM).</summary>
    public const int Bins = 8001;

    /// <summary>Quantized bins of the KL search for signed tensors; never-negative tensors use 2 × 255 + 1.</summary>
    public const int QuantizedBins = 255;

    /// <summary>The percentile of |x| kept by <see cref="CalibrationMethod.Percentile"/>.</summary>
    public const double Percentile = 99.999;

    /// <summary>The largest histogram accepted: 1,000,001 bins (8 MB of counts per tensor).</summary>
    public const int MaximumBins = 1_000_001;
}
