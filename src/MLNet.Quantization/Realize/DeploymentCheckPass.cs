using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>
/// The last pass of <c>Fit</c> (see <see cref="DeploymentCheck"/>): layers where the int8 kernels part from the
/// simulation go back to float, then the deployed model is measured against the float model, every output and the time
/// per row, and where int8 is not faster, or nothing was quantized, the user's float model is returned instead.
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
        var known = context.Statistics.ByTensor();
        var order = model.Graph.Node.Select((n, i) => (n, i)).ToDictionary(p => OnnxGraph.Label(p.n), p => p.i, StringComparer.Ordinal);
        var disagreeing = new List<string>();
        for (int round = 0; round < AgreementRounds && context.Agreement is { Agrees: false, AllLayers.Count: > 0 } agreement; round++)
        {
            var first = agreement.AllLayers.OrderBy(l => order.GetValueOrDefault(l.Node, int.MaxValue)).Take(LayersPerRound).ToList();
            int before = disagreeing.Count;
            foreach (var layer in first)
                foreach (var node in FallbackPass.Layer(model, layer.Tensor).Where(n => !disagreeing.Contains(n)))
                {
                    disagreeing.Add(node);
                    floatNodes.TryAdd(node, $"the int8 kernels of this CPU part from the simulation at '{layer.Tensor}' " +
                        $"({layer.MismatchFraction:P1} of its uint8 values differ by more than one step)");
                }
            if (disagreeing.Count == before) break;
            var plan = Annotator.Annotate(model, context.Exclusions.With(context.FloatNodes.Concat(disagreeing)));
            plan.KeepCalibrated(known);
            var parameters = context.Parameters.Restrict(plan);
            var dequantized = new Dictionary<string, string>();
            var realized = QdqWriter.Realize(model, plan, parameters, settings.Realization.Mode, dequantized);
            (context.Plan, context.Parameters, context.Realized, context.Dequantized) = (plan, parameters, realized, dequantized);
            context.Agreement = AgreementCheck.Measure(model, plan, parameters, realized, dequantized, context.Data, settings);
        }
        context.FloatNodes = context.FloatNodes.Concat(disagreeing).ToList();

        var measured = DeploymentMeasurement.Measure(model, context.Realized, context.Data, settings);
        if (measured.Rows == 0) return;
        bool quantized = context.Parameters.Table.Count > 0;
        bool keepFloat = settings.Realization.Mode == QuantizationMode.Int8 && quantized && measured.DeployedMs >= measured.FloatMs;
        if (keepFloat || !quantized)
        {
            var plan = new QuantizationPlan();
            var parameters = context.Parameters.Restrict(plan);
            (context.Plan, context.Parameters, context.Dequantized) = (plan, parameters, new Dictionary<string, string>());
            // The user's own model (its opset, its BatchNormalizations), with an empty calibration table in its metadata.
            var original = (context.Source ?? model).Clone();
            original.SetMetadata(CalibrationTable.MetadataKey, parameters.Table.ToJson());
            original.SetMetadata(QdqWriter.ModeKey, settings.Realization.Mode.ToString());
            context.Realized = original;
        }
        context.Deployment = new DeploymentCheck(measured.Outputs, measured.FloatMs, keepFloat ? measured.FloatMs : measured.DeployedMs,
            measured.DeployedMs, keepFloat, floatNodes, context.Conversions, measured.Rows, CpuFeatures.Describe(), settings.Realization.Mode)
        {
            QuantizedNothing = !quantized,
        };
    }
}
