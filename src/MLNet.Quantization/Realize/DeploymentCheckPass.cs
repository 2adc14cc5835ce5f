using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The last pass of <c>Fit</c> (see <see cref="DeploymentCheck"/>), three steps on the realized model: layers where the
/// int8 kernels part from the simulation go back to float; while an output's relative error to the float model exceeds
/// <c>MaximumOutputError</c>, the layers that add the most noise go back to float, and the model they leave is checked
/// against its simulation again (step 1 once more); then, where int8 is not at least
/// <c>MinimumSpeedup</c> times as fast (1.1 by default), or nothing was quantized, the user's float model is returned instead.
/// </summary>
internal sealed class DeploymentCheckPass : IQuantizationPass
{
    /// <summary>Rounds of sending disagreeing layers back to float, each followed by a new agreement check.</summary>
    public const int AgreementRounds = 6;

    /// <summary>
    /// Disagreeing tensors whose layers go back to float per round: the first ones in graph order, since a layer's
    /// difference also shows in every layer after it.
    /// </summary>
    public const int LayersPerRound = 4;

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var settings = context.Settings;
        var model = context.Model;
        var floatNodes = new Dictionary<string, string>(context.Plan.FloatByRule, StringComparer.Ordinal);
        foreach (var node in context.FloatNodes) floatNodes.TryAdd(node, "kept in float by the MinimumOutputCosine fallback");
        var sentBack = new List<string>();
        var calibrated = context.Statistics.ByTensor();

        // 1. Where the int8 kernels part from the simulation, the first such layers in graph order go back to float.
        var order = model.Graph.Node.Select((n, i) => (n, i)).ToDictionary(p => OnnxGraph.Label(p.n), p => p.i, StringComparer.Ordinal);
        void Agree()
        {
            for (int round = 0; round < AgreementRounds && context.Agreement is { Agrees: false, AllLayers.Count: > 0 } agreement; round++)
            {
                var first = agreement.AllLayers.OrderBy(l => order.GetValueOrDefault(l.Node, int.MaxValue)).Take(LayersPerRound);
                int added = first.Sum(layer => SendBack(model, layer.Tensor, sentBack, floatNodes,
                    $"the int8 kernels of this CPU part from the simulation at '{layer.Tensor}' " +
                    $"({layer.MismatchFraction:P1} of its uint8 values differ by more than one step)"));
                if (added == 0) break;
                RealizePass.Without(context, context.FloatNodes.Concat(sentBack), calibrated);
                MeasureAgreement();
            }
        }
        void MeasureAgreement() => context.Agreement = AgreementCheck.Measure(model, context.Plan, context.Parameters, context.Realized,
            context.Dequantized, context.Data, settings);
        Agree();

        // 2. Every output compared and both models timed. An output whose relative error exceeds the bound: the fewest
        //    of the layers that add the most noise go back to float for every output to be within it.
        var measured = DeploymentMeasurement.Measure(model, context.Realized, context.Data, settings, floatOutputs: context.FloatOutputs);
        if (measured.Rows == 0)
        {
            context.FloatNodes = context.FloatNodes.Concat(sentBack).ToList();
            return;
        }
        // Step 3's verdict, which the error bound's search also asks: an int8 model not MinimumSpeedup times as fast.
        bool TooSlow(DeploymentMeasurement.Result result) =>
            settings.Realization.Mode == QuantizationMode.Int8 && result.FloatMs < settings.Realization.MinimumSpeedup * result.DeployedMs;
        int errorBoundNodes = 0;
        bool fastBefore = false, errorBoundStopped = false;
        IReadOnlyList<string> withinBound = Array.Empty<string>();
        if (settings.Realization.MaximumOutputError is { } bound && measured.WorstRelativeError > bound && context.Parameters.Table.Count > 0)
        {
            var initial = measured;
            // The rounds compare outputs only; the model they leave is timed once, below. They compare with the float
            // outputs that the tuner kept, or else with those that the noise measurement keeps (within FloatOutputs'
            // budget), so that no round runs the float model again.
            var kept = new FloatOutputs();
            var noise = ErrorMeasurement.Measure(model, context.Realized, context.Dequantized, context.Realized, context.Data, settings, context.Plan, kept);
            var reference = context.FloatOutputs is { Count: > 0 } tuned ? tuned : kept.Complete ? kept.Rows : null;
            // Where speed decides, the fastest model that could meet the bound is timed once the search has bracketed the
            // answer: if it gains nothing, nor does the bracket's model with the most in float, no answer can, and the
            // bisection is not run; if only the latter gains, the bisection also asks for speed (FloatLayerSearch).
            DeploymentMeasurement.Result? timed = null;
            bool speedDecides = settings.Realization.Mode == QuantizationMode.Int8 && settings.Realization.MinimumSpeedup > 0;
            var (added, answer) = FloatLayerSearch.SendBack(context, context.FloatNodes.Concat(sentBack), noise.NoisiestFirst(model), calibrated,
                () => DeploymentMeasurement.Measure(model, context.Realized, context.Data, settings, time: false, floatOutputs: reference)
                    .WorstRelativeError <= bound,
                speedDecides ? () =>
                {
                    var result = DeploymentMeasurement.Measure(model, context.Realized, context.Data, settings, floatOutputs: reference);
                    timed ??= result; // the first timing is the model with the fewest layers that could be the answer
                    return !TooSlow(result);
                } : null);
            errorBoundStopped = answer.NoGain;
            string exceeded = $"output relative error {measured.WorstRelativeError:F3} exceeded MaximumOutputError {bound}";
            string reason = errorBoundStopped
                ? $"{exceeded}: it takes more of the noisiest layers in float than these {added.Count} nodes, and with these in float " +
                  $"the model already ran at {timed!.FloatMs / timed.DeployedMs:F2}x the float model's speed, below MinimumSpeedup " +
                  $"{settings.Realization.MinimumSpeedup}, as did the model with the most layers in float that the search had found within " +
                  "the bound: no model within the bound gains, so the search stopped there"
                : answer.SpeedDecided
                ? $"{exceeded}: the {added.Count} nodes of the noisiest layers, the fewest whose return to float brings every output within it " +
                  $"and whose model runs at MinimumSpeedup {settings.Realization.MinimumSpeedup}: with fewer in float the model ran slower, " +
                  "since some int8 layers run slower than their float form on this CPU"
                : $"{exceeded}: the {added.Count} nodes of the noisiest layers, the fewest whose return to float brings every output within it";
            // The outputs that int8 got right anyway: a user who reads only those can ask for them alone (the summary says so).
            if (settings.OutputColumnNames is null) withinBound = measured.Outputs.Where(o => o.RelativeError <= bound).Select(o => o.Name).ToList();
            errorBoundNodes = added.Count;
            fastBefore = !TooSlow(initial);
            foreach (var node in added)
            {
                sentBack.Add(node);
                floatNodes.TryAdd(node, reason);
            }
            // The model the error bound left is a new realization: its agreement is measured again, so that what Fit
            // reports is that of the model it returns, and step 1 applies to it (not where it is about to be replaced).
            if (added.Count > 0 && !errorBoundStopped && settings.Realization.Mode == QuantizationMode.Int8 && context.Agreement is not null)
            {
                MeasureAgreement();
                Agree();
            }
            measured = errorBoundStopped ? timed! : DeploymentMeasurement.Measure(model, context.Realized, context.Data, settings, floatOutputs: context.FloatOutputs);
        }
        context.FloatNodes = context.FloatNodes.Concat(sentBack).ToList();

        // 3. An int8 model that is not at least MinimumSpeedup times as fast is replaced by the user's float model.
        var outputs = measured.Outputs;
        bool quantized = context.Parameters.Table.Count > 0;
        bool keepFloat = quantized && TooSlow(measured);
        if (keepFloat || !quantized)
        {
            var plan = new QuantizationPlan();
            var parameters = context.Parameters.Restrict(plan);
            (context.Plan, context.Parameters, context.Dequantized) = (plan, parameters, new Dictionary<string, string>());
            // The user's own model (its opset, its BatchNormalizations), with an empty calibration table in its metadata,
            // and only the outputs asked for.
            var original = (context.Source ?? model).Clone();
            if (settings.OutputColumnNames is { } wanted) GraphPreparation.KeepOutputs(original, wanted);
            QdqWriter.Stamp(original, parameters.Table, settings.Realization.Mode);
            context.Realized = original;
            context.Agreement = null; // there is no int8 model left to agree or disagree
        }
        // A stand-in's comparison is reported under the output it stands for.
        var reported = outputs.Select(o => context.StandIns.TryGetValue(o.Name, out var real) ? o with { Name = real } : o).ToList();
        context.Deployment = new DeploymentCheck(reported, measured.FloatMs, keepFloat ? measured.FloatMs : measured.DeployedMs,
            measured.DeployedMs, keepFloat, floatNodes, context.Conversions, measured.Rows, CpuFeatures.Describe(), settings.Realization.Mode)
        {
            QuantizedNothing = !quantized,
            NodesFloatForErrorBound = errorBoundNodes,
            OutputsWithinErrorBound = withinBound,
            FastBeforeErrorBound = fastBefore,
            ErrorBoundSearchStopped = errorBoundStopped,
            OutputsNotCompared = model.Graph.Output.Select(o => o.Name).Where(o => !context.StandIns.ContainsKey(o)).Except(reported.Select(o => o.Name)).ToList(),
            MinimumSpeedup = settings.Realization.MinimumSpeedup,
            CpuHasVnni = CpuFeatures.HasVnni,
            CpuIsX86 = CpuFeatures.IsX86,
        };
    }

    // Adds the quantized nodes around a tensor to the nodes sent back to float; returns how many were new.
    private static int SendBack(OnnxGraph model, string tensor, List<string> sentBack, Dictionary<string, string> floatNodes, string reason)
    {
        int added = 0;
        foreach (var node in FloatLayerSearch.Layer(model, tensor).Where(n => !sentBack.Contains(n)))
        {
            sentBack.Add(node);
            floatNodes.TryAdd(node, reason);
            added++;
        }
        return added;
    }
}
