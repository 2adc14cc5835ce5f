using System.Diagnostics;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Pipeline;

/// <summary>
/// The passes of <c>Fit</c>, grouped into steps as NNCF's post-training pipeline groups its algorithms: the statistics
/// that the passes of a step declare are collected together, in one stream over the calibration rows of the model as
/// the previous steps left it, and then the passes apply in order. A step whose passes need no statistics reads no
/// rows. Adding an algorithm is one pass file and one entry below.
/// </summary>
/// <remarks>
/// Two passes read rows themselves, because what they measure is not the float model: collecting activation
/// statistics (a range pass, then a histogram pass over the ranges, as in TVM; none when statistics are given), and
/// the fallback and agreement checks, which run the realized model.
/// </remarks>
internal static class QuantizationPipeline
{
    /// <summary>The steps for <paramref name="settings"/>, each a list of passes (disabled passes left out).</summary>
    public static IReadOnlyList<IReadOnlyList<IQuantizationPass>> Steps(QuantizationSettings settings) => new[]
    {
        Step(settings.Equalization.CrossLayer ? new CrossLayerEqualizationPass() : null),
        Step(settings.Equalization.SmoothQuantAlpha is { } alpha ? new SmoothQuantPass(alpha) : null),
        Step(new AnnotatePass(), new ActivationStatisticsPass(), new CalibratePass()),
        Step(settings.Weights.BiasCorrection switch
        {
            BiasCorrection.Fast => new FastBiasCorrectionPass(),
            BiasCorrection.Full => new FullBiasCorrectionPass(),
            _ => null,
        }),
        Step(new RealizePass(),
            settings.Rows.MinimumOutputCosine is not null ? new FallbackPass() : null,
            settings.Realization.Mode == QuantizationMode.Int8 ? new AgreementPass() : null,
            settings.Realization.CheckDeployment ? new DeploymentCheckPass() : null),
    }.Where(s => s.Count > 0).ToList();

    /// <summary>The progress pass number of the algorithms' statistics (1–3: activation statistics and measurements).</summary>
    private const int AlgorithmStatisticsPass = 4;

    /// <summary>Runs every step on <paramref name="context"/>.</summary>
    public static void Run(QuantizationContext context, IReadOnlyList<IReadOnlyList<IQuantizationPass>> steps)
    {
        foreach (var step in steps)
        {
            var clock = Stopwatch.StartNew();
            var points = step.SelectMany(p => p.StatisticPoints(context)).ToList();
            var statistics = StatisticPointCollector.Collect(context, points, AlgorithmStatisticsPass);
            if (points.Count > 0) context.Timings.Add(($"statistics for {string.Join(", ", step.Select(Name))}", clock.Elapsed.TotalSeconds));
            foreach (var pass in step)
            {
                clock.Restart();
                pass.Apply(context, statistics);
                context.Timings.Add((Name(pass), clock.Elapsed.TotalSeconds));
            }
        }
    }

    private static string Name(IQuantizationPass pass) => pass.GetType().Name.Replace("Pass", "");

    private static IReadOnlyList<IQuantizationPass> Step(params IQuantizationPass?[] passes) => passes.OfType<IQuantizationPass>().ToList();
}
