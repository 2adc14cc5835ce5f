namespace MLNet.Quantization.Cli;

/// <summary>What a run of the tool did: printed as a table, or as one JSON object with <c>--json</c>.</summary>
public sealed record Summary
{
    /// <summary>The float model.</summary>
    public string Model { get; init; } = "";

    /// <summary>The quantized model written.</summary>
    public string Output { get; init; } = "";

    /// <summary>images, text or tensors; "statistics" when calibrated from saved statistics.</summary>
    public string CalibrationKind { get; init; } = "";

    /// <summary>Calibration rows read.</summary>
    public long Rows { get; init; }

    /// <summary>int8 or simulated.</summary>
    public string Mode { get; init; } = "";

    /// <summary>Quantized tensors per op type of the node that asked for them, and per role.</summary>
    public IReadOnlyDictionary<string, int> QuantizedTensorsByOpType { get; init; } = new Dictionary<string, int>();

    /// <summary>Size of the float model file, in bytes.</summary>
    public long FloatBytes { get; init; }

    /// <summary>Size of the quantized model, in bytes.</summary>
    public long QuantizedBytes { get; init; }

    /// <summary>Mean output cosine of the quantized model (as ML.NET runs it) to the float model, on the measured rows; null without rows.</summary>
    public double? OutputCosine { get; init; }

    /// <summary>Rows that cosine was measured on (the held-back rows with --min-cosine, else the first 64).</summary>
    public long MeasuredRows { get; init; }

    /// <summary>Realized int8 vs simulated output cosine on this machine's CPU; null in simulated mode.</summary>
    public double? RealizedVsSimulatedCosine { get; init; }

    /// <summary>Realized int8 vs simulated relative error of the worst output on this machine's CPU; null in simulated mode.</summary>
    public double? RealizedVsSimulatedRelativeError { get; init; }

    /// <summary>The CPU the agreement was measured on.</summary>
    public string Cpu { get; init; } = "";

    /// <summary>The weight range used.</summary>
    public string WeightRange { get; init; } = "";

    /// <summary>Nodes kept in float by --min-cosine.</summary>
    public IReadOnlyList<string> FloatNodes { get; init; } = Array.Empty<string>();

    /// <summary>The deployment check's verdict (see DeploymentCheck.Summary); null with --no-deployment-check.</summary>
    public string? Deployment { get; init; }

    /// <summary>Whether the output is the float model, because int8 was not faster on this CPU.</summary>
    public bool KeptFloat { get; init; }

    /// <summary>The measured int8 model's speed-up over fp32 on this CPU; null when not measured.</summary>
    public double? Speedup { get; init; }

    /// <summary>Relative error ‖fp32 − int8‖ / ‖fp32‖ of every float output, by output name.</summary>
    public IReadOnlyDictionary<string, double> OutputErrors { get; init; } = new Dictionary<string, double>();

    /// <summary>What preparation changed of the model's interface (float16 inputs and outputs made float32).</summary>
    public IReadOnlyList<string> Conversions { get; init; } = Array.Empty<string>();

    /// <summary>The tuner's verdict (see TuningResult.Summary); null with --no-tune.</summary>
    public string? Tuning { get; init; }

    /// <summary>The tuner's trials table, in the order run.</summary>
    public IReadOnlyList<TuningTrial> Trials { get; init; } = Array.Empty<TuningTrial>();

    /// <summary>Wall-clock seconds for the whole run.</summary>
    public double Seconds { get; init; }
}
