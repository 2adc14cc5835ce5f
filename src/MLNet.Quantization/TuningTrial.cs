namespace MLNet.Quantization;

/// <summary>One row of the tuner's trials table (see <see cref="TuningResult"/>).</summary>
public sealed record TuningTrial
{
    /// <summary>1 for the first trial (the recipe as set), then in the order run.</summary>
    public int Number { get; init; }

    /// <summary>The knob this trial changed from the best recipe so far (the option's name); "recipe as set" for the first.</summary>
    public string Knob { get; init; } = "";

    /// <summary>The knob's value in this trial.</summary>
    public string Value { get; init; } = "";

    /// <summary>The whole recipe of the trial: every knob's value.</summary>
    public string Recipe { get; init; } = "";

    /// <summary>The objective on every held-back row (NaN when skipped).</summary>
    public double Score { get; init; }

    /// <summary>The objective on the hardest quarter of the held-back rows (those where the first trial's cosine was lowest), which ranks the candidates of a knob.</summary>
    public double HardRowsScore { get; init; }

    /// <summary>The mean over rows of the output cosine to fp32 (the worst output), the first tie-break.</summary>
    public double MeanCosine { get; init; }

    /// <summary>The lowest per-row cosine, the second tie-break.</summary>
    public double WorstCosine { get; init; }

    /// <summary>Seconds the trial took: the steps it could not reuse, realization and measurement.</summary>
    public double Seconds { get; init; }

    /// <summary>Whether this trial's recipe was the best when the search ended (the one returned).</summary>
    public bool Chosen { get; init; }

    /// <summary>Why the trial was skipped (the budget, missing histograms), or null when it ran.</summary>
    public string? Skipped { get; init; }
}
