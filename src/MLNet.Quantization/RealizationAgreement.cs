namespace MLNet.Quantization;

/// <summary>
/// How closely the realized int8 model, run by ONNX Runtime as ML.NET runs it (QDQ pairs fused into int8 kernels),
/// reproduces the simulated model, the exact arithmetic of the chosen scales, on the measured rows of the fitting
/// machine. It describes the model that <c>Fit</c> returns: measured again after the deployment check sent layers back
/// to float for the error bound. A cosine well below 0.999 means that the kernels of this CPU compute something else: on x86-64
/// without VNNI, int16 saturation of uint8 × int8 pairs when the weights use <see cref="WeightRange.Full"/>.
/// </summary>
public sealed class RealizationAgreement
{
    /// <summary>The cosine below which the realized model is said to disagree with the simulated one.</summary>
    public const double Threshold = 0.999;

    /// <summary>
    /// The relative error above which the realized model is said to disagree with the simulated one, whatever the
    /// cosine: a cosine of 0.999 still allows a relative error of about 0.045 (‖a − b‖/‖a‖ ≈ √(2(1 − cos)) for vectors
    /// of equal norms), so the two are checked together.
    /// </summary>
    public const double MaximumRelativeError = 0.02;

    internal RealizationAgreement(double outputCosine, double worstCosine, long rows, string cpu, bool pairsSaturate,
        WeightRange weightRange, int largestPairSum, IReadOnlyList<LayerDisagreement> layers, IReadOnlyList<OutputComparison> outputs,
        int quantizedActivations)
    {
        Outputs = outputs;
        QuantizedActivations = quantizedActivations;
        OutputCosine = outputCosine;
        WorstCosine = worstCosine;
        Rows = rows;
        Cpu = cpu;
        CpuPairsSaturate = pairsSaturate;
        WeightRange = weightRange;
        LargestPairSum = largestPairSum;
        AllLayers = layers;
        Layers = layers.OrderByDescending(l => l.MismatchFraction).Take(10).ToList();
    }

    /// <summary>
    /// The cosine between the realized and the simulated outputs: per float output its mean over the rows (for an output
    /// of one value per row, the cosine of the column over the rows), and the smallest of them: every output must agree.
    /// </summary>
    public double OutputCosine { get; }

    /// <summary>The smallest per-row cosine of any output (see <see cref="OutputComparison.WorstCosine"/>).</summary>
    public double WorstCosine { get; }

    /// <summary>
    /// Each float output compared, the simulated model's output taken as the reference: its cosines and its relative
    /// error ‖simulated − realized‖ / ‖simulated‖ over the measured rows.
    /// </summary>
    public IReadOnlyList<OutputComparison> Outputs { get; }

    /// <summary>
    /// The activations quantized in the model compared: those of the model that <c>Fit</c> returns (its calibration
    /// table's), since the agreement is measured again after layers went back to float.
    /// </summary>
    public int QuantizedActivations { get; }

    /// <summary>The largest <see cref="OutputComparison.RelativeError"/> of <see cref="Outputs"/> (0 when none is compared).</summary>
    public double WorstRelativeError => OutputComparison.WorstRelativeError(Outputs);

    /// <summary>
    /// Rows measured: the first 64 of the held-back rows where the fit holds some back (tuning, <c>MinimumOutputCosine</c>),
    /// else the first 64 calibration rows.
    /// </summary>
    public long Rows { get; }

    /// <summary>The fitting machine's CPU as the int8 kernels see it, for example "X64 with AVX2, no VNNI".</summary>
    public string Cpu { get; }

    /// <summary>
    /// Whether this CPU's uint8 × int8 kernels add pairs of products into a saturating int16 (x86-64 without VNNI).
    /// </summary>
    public bool CpuPairsSaturate { get; }

    /// <summary>The weight range the model was quantized with.</summary>
    public WeightRange WeightRange { get; }

    /// <summary>The largest sum of two same-sign |q| within an output channel of any weight: above 128, CPUs without VNNI can saturate.</summary>
    public int LargestPairSum { get; }

    /// <summary>
    /// Whether <see cref="OutputCosine"/> reaches <see cref="Threshold"/> and no output's relative error exceeds
    /// <see cref="MaximumRelativeError"/>.
    /// </summary>
    public bool Agrees => Accepts(OutputCosine, WorstRelativeError);

    /// <summary>The rule of <see cref="Agrees"/>, for a cosine and a worst relative error.</summary>
    internal static bool Accepts(double outputCosine, double worstRelativeError) =>
        outputCosine >= Threshold && worstRelativeError <= MaximumRelativeError;

    /// <summary>
    /// When the model disagrees, the ten quantized activations whose uint8 values differ most between the realized and
    /// the simulated model (largest first); empty when it agrees.
    /// </summary>
    public IReadOnlyList<LayerDisagreement> Layers { get; }

    /// <summary>Every quantized activation whose uint8 values differ, in the order of the plan (graph order).</summary>
    internal IReadOnlyList<LayerDisagreement> AllLayers { get; }

    /// <summary>Why the realized model disagrees, in one or two sentences; empty when it agrees.</summary>
    public string Explanation => Agrees ? "" : CpuPairsSaturate && LargestPairSum > Calibration.WeightFormat.Int16SafePairSum
        ? $"This CPU ({Cpu}) adds pairs of uint8 × int8 products in a saturating int16, and the weights use {WeightRange} " +
          $"with pairs of |q| summing up to {LargestPairSum} (> 128): products overflow. Use WeightRange.PairBounded (the default)."
        : $"The realized model computes differently from the simulated one on this CPU ({Cpu}) for a reason other than " +
          "int16 saturation (the weights cannot saturate): see the layers listed, where the int8 kernels and the simulation first part.";

    /// <inheritdoc/>
    public override string ToString() =>
        $"realized vs simulated cosine {OutputCosine:F5} (worst {WorstCosine:F5}), relative error {WorstRelativeError:F4}, on {Plural.Of(Rows, "row")}, {Cpu}, {WeightRange} weights (largest pair sum {LargestPairSum})";
}
