using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Tune;

/// <summary>
/// The results of the recipe's steps that the tuner has run, each under its chain of step keys (see
/// <see cref="PipelineStep.Key"/>): a recipe whose first steps read the same settings as a recipe already run starts
/// from that recipe's result. Realization and the steps after it are never kept (each trial's realized model lives
/// until it is scored), and
/// an entry whose steps rewrote the float model is dropped as soon as neither the best recipe nor the knob's leading
/// candidate uses it, so at most two copies of the float model are alive besides the loaded one.
/// </summary>
internal sealed class StepCache
{
    private readonly QuantizationContext _root;
    private readonly List<(List<(string, object?)> Chain, QuantizationContext Context)> _entries = new();

    public StepCache(QuantizationContext root) => _root = root;

    /// <summary>The realized context of <paramref name="settings"/>, running only the steps not yet run.</summary>
    public QuantizationContext Build(QuantizationSettings settings)
    {
        var steps = QuantizationPipeline.Recipe(settings);
        int kept = Kept(steps);
        var context = _root;
        var chain = new List<(string, object?)>();
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            chain.Add((step.Name, step.Key));
            if (i < kept && Find(chain) is { } cached)
            {
                context = cached;
                continue;
            }
            var next = context.Fork(settings, step.ChangesModel);
            QuantizationPipeline.Run(next, step);
            if (i < kept) _entries.Add((chain.ToList(), next));
            context = next;
        }
        return context; // realization and what follows it are never kept, so this context is the trial's own
    }

    // How many of the first steps are kept: those before realization.
    private static int Kept(IReadOnlyList<PipelineStep> steps)
    {
        int realization = steps.ToList().FindIndex(s => s.Passes.Any(p => p is Realize.RealizePass));
        return realization < 0 ? steps.Count : realization;
    }

    /// <summary>
    /// About how many float-model streams <paramref name="settings"/> costs: every step's, or only those of the steps
    /// that no earlier recipe has run.
    /// </summary>
    public double Streams(QuantizationSettings settings, bool fromScratch)
    {
        var steps = QuantizationPipeline.Recipe(settings);
        var context = _root;
        var chain = new List<(string, object?)>();
        double streams = 0;
        foreach (var step in steps)
        {
            chain.Add((step.Name, step.Key));
            if (!fromScratch && Find(chain) is { } cached)
            {
                context = cached;
                continue;
            }
            var probe = context.Fork(settings, cloneModel: false);
            foreach (var pass in step.Passes)
            {
                try
                {
                    streams += pass.EstimatedStreams(probe);
                }
                catch (InvalidOperationException)
                {
                    streams += 1; // the estimate needs a part of the context that the steps before it have not made yet
                }
            }
        }
        return streams;
    }

    /// <summary>Drops the entries that own a copy of the float model which neither of these recipes uses.</summary>
    public void Keep(QuantizationSettings best, QuantizationSettings? leader)
    {
        var paths = new[] { best, leader }.OfType<QuantizationSettings>().Select(Chain).ToList();
        var models = new HashSet<object>(ReferenceEqualityComparer.Instance) { _root.Model };
        foreach (var (chain, context) in _entries)
            if (paths.Any(p => IsPrefix(chain, p))) models.Add(context.Model);
        _entries.RemoveAll(e => !models.Contains(e.Context.Model));
    }

    private static List<(string, object?)> Chain(QuantizationSettings settings) =>
        QuantizationPipeline.Recipe(settings).Select(s => (s.Name, s.Key)).ToList();

    private static bool IsPrefix(List<(string, object?)> prefix, List<(string, object?)> chain) =>
        prefix.Count <= chain.Count && prefix.SequenceEqual(chain.Take(prefix.Count));

    private QuantizationContext? Find(List<(string, object?)> chain) =>
        _entries.FirstOrDefault(e => e.Chain.SequenceEqual(chain)).Context;
}
