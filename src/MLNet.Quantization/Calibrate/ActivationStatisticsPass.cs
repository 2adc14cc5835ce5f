using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Collect: the ranges and histograms of the plan's activations, from the rows (a range pass, then a histogram pass)
/// or from the statistics given in the options, once they are shown to fit this model and these settings. Where the
/// ranges of the same float model and rows are known (a tuning trial that only changes the calibration method), the
/// histograms take one pass instead of two. Where the model was rewritten in a way that keeps every tensor's value
/// (SmoothQuant) after statistics were collected, only the tensors the rewrite added are collected, and none where each
/// is a kept tensor times per-channel constants whose rows' extremes are known (<see cref="ScaledStatistics"/>). Per-channel points
/// that a later step will read of this model (<see cref="QuantizationContext.Foreseen"/>) are reduced in the same stream.
/// </summary>
internal sealed class ActivationStatisticsPass : IQuantizationPass
{
    public double EstimatedStreams(QuantizationContext context) =>
        context.Settings.Rows.Statistics is not null ? 0
        : !context.Settings.Activations.CollectHistograms ? 1
        : context.CollectedActivations.ContainsKey((context.ModelVersion, context.Settings.Rows)) ? 1 : 2;

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var settings = context.Settings;
        if (settings.Rows.Statistics is { } given)
        {
            context.Statistics = Reuse(given, context);
            return;
        }
        var key = (context.ModelVersion, settings.Rows);
        var known = context.CollectedActivations.GetValueOrDefault(key);
        var kept = known is null && settings.Rows.RangesFrom is null ? context.StatisticsOfKeptValues(settings.Activations.CollectHistograms) : null;
        // A tensor that the rewrite added as a kept one times per-channel constants (SmoothQuant's smoothed input) needs no stream either.
        if (kept is not null && !settings.Activations.CollectHistograms) kept = ScaledStatistics.Extend(context, kept);
        // Point sets that later steps will read of this model, reduced in the same stream (see QuantizationContext.Foreseen).
        var foreseen = kept is null && settings.Rows.RangesFrom is null ? context.PendingForeseen() : null;
        var alongside = foreseen is { Count: > 0 } ? new ChannelReducer(foreseen.SelectMany(f => f.Points).ToList(), context.Model) : null;
        context.Statistics = StatisticsCollector.Collect(context.Model, context.Plan, context.Data, settings, context.Fingerprint,
            context.InputShapes, known, kept, alongside);
        context.CollectedActivations[key] = context.Statistics;
        if (alongside is null || foreseen is null) return;
        // A set is filed only when the stream read each of its tensors (it drops those that are not float or not finite).
        var streamed = context.Statistics.Tensors.Select(t => t.Tensor).ToHashSet(StringComparer.Ordinal);
        var values = alongside.Values(context.Statistics.Rows);
        foreach (var (points, k) in foreseen)
            if (points.All(p => streamed.Contains(p.Tensor)))
                context.Collected[k] = values;
    }

    private static CalibrationStatistics Reuse(CalibrationStatistics statistics, QuantizationContext context)
    {
        var settings = context.Settings;
        var difference = statistics.Difference(context.Fingerprint, context.InputShapes, settings.Activations.Bins);
        if (difference is not null)
            throw new InvalidOperationException($"Options.Statistics do not fit this model and these settings: {difference}.");
        if (settings.Activations.NeedsHistograms && !statistics.HasHistograms)
            throw new InvalidOperationException(
                $"Options.Statistics hold ranges only (a fit that collected no histograms, or shards counted over different ranges), and " +
                $"{settings.Activations.Method} needs histograms: collect them again with CollectHistograms = true, or for shards with " +
                "RangesFrom set to the merged ranges (see CalibrationStatistics).");
        // Tensors the statistics do not describe (not float, or excluded when they were gathered) stay float.
        context.Plan.KeepCalibrated(statistics.ByTensor());
        return statistics;
    }
}
