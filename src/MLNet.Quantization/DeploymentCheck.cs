namespace MLNet.Quantization;

/// <summary>
/// What the last step of <c>Fit</c> measured of the model it returns, run as ML.NET runs it on the fitting machine's CPU:
/// every output against the float model, the time per row of both, and what it kept in float and why. See
/// <see cref="QuantizingEstimator.Options.CheckDeployment"/>.
/// </summary>
/// <remarks>
/// The check runs after the realized-vs-simulated agreement (int8 only). Where the two disagree (an output cosine below
/// <see cref="RealizationAgreement.Threshold"/>, or an output's relative error above
/// <see cref="RealizationAgreement.MaximumRelativeError"/>), the layers where the int8 kernels first part from the simulation are
/// kept in float and the model is realized again, a few rounds at most. Next, while an output's relative error exceeds
/// <c>MaximumOutputError</c>, the layers that add the most noise go back to float. Then, where the int8 model is not at
/// least <c>MinimumSpeedup</c> (1.1x by default) as fast as the float model (smaller gains are within the timing's noise), the returned model is the user's own float model (float16 widened to float32), with
/// <see cref="KeptFloat"/> set and <see cref="Summary"/> saying so: a slower int8 model is never returned.
/// </remarks>
public sealed class DeploymentCheck
{
    internal DeploymentCheck(IReadOnlyList<OutputComparison> outputs, double floatMilliseconds, double quantizedMilliseconds,
        double measuredQuantizedMilliseconds, bool keptFloat, IReadOnlyDictionary<string, string> floatNodes,
        IReadOnlyList<string> conversions, long rows, string cpu, QuantizationMode mode)
    {
        Outputs = outputs;
        FloatMillisecondsPerRow = floatMilliseconds;
        QuantizedMillisecondsPerRow = quantizedMilliseconds;
        MeasuredQuantizedMillisecondsPerRow = measuredQuantizedMilliseconds;
        KeptFloat = keptFloat;
        FloatNodes = floatNodes;
        Conversions = conversions;
        Rows = rows;
        Cpu = cpu;
        Mode = mode;
    }

    /// <summary>
    /// Every float, double, integer and boolean output (<see cref="OutputComparison.ComparedByEquality"/>) of the measured quantized model against the float model, in the model's output order (when
    /// <see cref="KeptFloat"/>, the returned model is the float model itself and matches exactly).
    /// </summary>
    public IReadOnlyList<OutputComparison> Outputs { get; }

    /// <summary>Milliseconds per row of the float model: its median run over the measured rows, alternating with the quantized model, in a session as ML.NET builds it.</summary>
    public double FloatMillisecondsPerRow { get; }

    /// <summary>Milliseconds per row of the returned model: the float model's when <see cref="KeptFloat"/>.</summary>
    public double QuantizedMillisecondsPerRow { get; }

    /// <summary>Milliseconds per row of the quantized model that was measured, whether or not it was returned.</summary>
    public double MeasuredQuantizedMillisecondsPerRow { get; }

    /// <summary>The measured quantized model's speed-up over the float model (above 1: faster).</summary>
    public double Speedup => MeasuredQuantizedMillisecondsPerRow > 0 ? FloatMillisecondsPerRow / MeasuredQuantizedMillisecondsPerRow : double.NaN;

    /// <summary>The speed-up the int8 model had to reach to be returned (the <c>MinimumSpeedup</c> option).</summary>
    public double MinimumSpeedup { get; init; } = QuantizationDefaults.MinimumSpeedup;

    /// <summary>Whether the returned model is the float model, because its int8 form was not at least <see cref="MinimumSpeedup"/> times as fast on this CPU.</summary>
    public bool KeptFloat { get; }

    /// <summary>Whether nothing was quantized at all (every quantizable node excluded, kept by rule or absent).</summary>
    public bool QuantizedNothing { get; internal init; }

    /// <summary>
    /// Quantizable nodes kept in float, by node, with the reason: by rule (they compute the input of a domain-limited op
    /// such as Log, Sqrt or a divisor), because the int8 kernels disagreed with the simulation there, or by the
    /// <c>MinimumOutputCosine</c> fallback.
    /// </summary>
    public IReadOnlyDictionary<string, string> FloatNodes { get; }

    /// <summary>
    /// What preparation changed of the model's interface: float16 inputs and outputs made float32, and scalar outputs
    /// given the shape [1], where ML.NET could not feed or read them as they were.
    /// </summary>
    public IReadOnlyList<string> Conversions { get; }

    /// <summary>The rows measured (the measurement rows of <c>Fit</c>: the held-back rows with <c>MinimumOutputCosine</c>, else the first 64).</summary>
    public long Rows { get; }

    /// <summary>The fitting machine's CPU as the int8 kernels see it.</summary>
    public string Cpu { get; }

    /// <summary>
    /// Whether the fitting CPU has VNNI (AVX512-VNNI or AVX-VNNI), the instructions int8 kernels gain most from. Without it a
    /// model returned in float for speed may still be faster in int8 on the CPU it is deployed to.
    /// </summary>
    public bool CpuHasVnni { get; internal init; }

    // Whether VNNI is a question at all: an x86 CPU (an Arm CPU's int8 dot products are another matter).
    internal bool CpuIsX86 { get; init; } = true;

    /// <summary>The realization mode measured. In <see cref="QuantizationMode.Simulated"/> mode speed decides nothing.</summary>
    public QuantizationMode Mode { get; }

    /// <summary>
    /// How many of <see cref="FloatNodes"/> went back to float for every output to be within <c>MaximumOutputError</c>
    /// (0 when no output exceeded it). Where the search stopped because no model within the bound ran
    /// <c>MinimumSpeedup</c> times as fast, those it had sent back when it stopped (the summary says so).
    /// </summary>
    public int NodesFloatForErrorBound { get; internal init; }

    /// <summary>
    /// Where some outputs exceeded <c>MaximumOutputError</c> with every layer quantized and <c>OutputColumnNames</c> was
    /// not set: the outputs that were within it. A model that is read through those alone quantizes better with
    /// <c>OutputColumnNames</c> set to them, since only the outputs asked for are quantized for.
    /// </summary>
    public IReadOnlyList<string> OutputsWithinErrorBound { get; internal init; } = Array.Empty<string>();

    /// <summary>
    /// The model's outputs that no check could compare: sequences and maps (a classifier's ZipMap probabilities),
    /// strings. Their accuracy is not measured; the tensor outputs beside them are.
    /// </summary>
    public IReadOnlyList<string> OutputsNotCompared { get; internal init; } = Array.Empty<string>();

    // Whether the quantized model met MinimumSpeedup before any layer went back to float for the error bound (false when none did).
    internal bool FastBeforeErrorBound { get; init; }

    // Whether the error bound's search stopped before finding its answer, no model within the bound being fast enough:
    // the nodes it counts went back to float on the way, and no output is then known to be within the bound.
    internal bool ErrorBoundSearchStopped { get; init; }

    // Whether the int8 model was fast enough until layers went back to float for accuracy: kept float for that alone, so
    // another recipe would be faster only by being more accurate.
    internal bool SlowedByErrorBoundOnly => KeptFloat && NodesFloatForErrorBound > 0 && FastBeforeErrorBound;

    /// <summary>The largest relative error over the outputs.</summary>
    public double WorstRelativeError => OutputComparison.WorstRelativeError(Outputs);

    /// <summary>What was returned and why, in one or two sentences.</summary>
    public string Summary
    {
        get
        {
            var floatNote = FloatNodes.Count == 0 ? "" : $" {FloatNodes.Count} quantizable nodes stay float (see FloatNodes).";
            if (NodesFloatForErrorBound > 0)
                floatNote += (ErrorBoundSearchStopped
                        ? $" {NodesFloatForErrorBound} of them went back to float in the search for every output to be within MaximumOutputError, " +
                          "which stopped there: no model within it ran MinimumSpeedup times as fast"
                        : $" {NodesFloatForErrorBound} of them went back to float for every output to be within MaximumOutputError") +
                    (OutputsWithinErrorBound.Count == 0 ? "."
                        : $"; {string.Join(", ", OutputsWithinErrorBound.Select(o => $"'{o}'"))} {(OutputsWithinErrorBound.Count == 1 ? "was" : "were")} " +
                          "within it with every layer quantized: if only they are read, set OutputColumnNames to them, and only they are quantized for.");
            if (!KeptFloat && QuantizedNothing)
                return $"Nothing in this model is quantized (FloatNodes says why where a rule decided): the float model is returned.{floatNote}";
            return KeptFloat
                ? $"The model stays float: its quantized form ran at {MeasuredQuantizedMillisecondsPerRow:F3} ms per row against " +
                  $"{FloatMillisecondsPerRow:F3} ms in float on this CPU ({Cpu}), {Speedup:F2}x (below {MinimumSpeedup:0.##}x), so quantizing gains nothing here.{floatNote} " +
                  (CpuHasVnni || !CpuIsX86
                      ? "To return the int8 model anyway, set MinimumSpeedup = 0 (the accuracy checks still apply)."
                      : "This CPU has no VNNI, which the int8 kernels gain most from: if the model will run on a CPU that has it, " +
                        "set MinimumSpeedup = 0 to return the int8 model (the accuracy checks still apply).")
                : $"{Mode} model: {Speedup:F2}x the float model's speed on this CPU ({Cpu}), " +
                  (Outputs.Count == 0 ? "with no output that could be compared, so its accuracy was not measured"
                      : $"worst output relative error {WorstRelativeError:F4}") + $" on {Plural.Of(Rows, "row")}.{floatNote}" +
                  (OutputsNotCompared.Count == 0 ? ""
                      : $" Not compared (a sequence, map or string): {string.Join(", ", OutputsNotCompared.Select(o => $"'{o}'"))}.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Summary;
}
