namespace MLNet.Quantization;

/// <summary>Progress of a pass of <c>Fit</c> over the calibration rows, reported every 32 rows and at the end of the pass.</summary>
/// <param name="Pass">1: ranges; 2: histograms; 3: measuring the quantized model (report, fallback and the realized-vs-simulated agreement); 4: statistics of the accuracy algorithms (SmoothQuant, bias correction), once per step that needs them; 5: the tuner, once per trial (<see cref="Trial"/> set, <paramref name="Rows"/> the trials done).</param>
/// <param name="Rows">Rows done in this pass (pass 5: trials done).</param>
/// <param name="RowsPerSecond">Rows per second in this pass so far (pass 5: trials per second).</param>
public sealed record CalibrationProgress(int Pass, long Rows, double RowsPerSecond)
{
    /// <summary>Pass 5 (tuning): the trial just finished or skipped; null for the other passes.</summary>
    public TuningTrial? Trial { get; init; }
}
