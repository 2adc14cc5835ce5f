using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Realize (see <see cref="RealizePass"/>), and the only place that edits the graph for quantization: drops fused Relus and Clips, puts a
/// (de)quantization in front of every reader of a marked tensor, swaps weights and biases for their quantized forms,
/// and records the calibration table in the model's metadata.
/// </summary>
internal static class QdqWriter
{
    /// <summary>The <c>metadata_props</c> key that records the realization mode.</summary>
    public const string ModeKey = "mlnet.quantization.mode";

    /// <summary>Writes the quantized model; <paramref name="dequantized"/>, when given, receives each quantized tensor's dequantized name.</summary>
    public static OnnxGraph Realize(OnnxGraph prepared, QuantizationPlan plan, QuantizationParameters parameters, QuantizationMode mode,
        IDictionary<string, string>? dequantized = null)
    {
        IQdqEmitter emitter = mode == QuantizationMode.Int8 ? new Int8Emitter() : new SimulatedEmitter();
        var graph = prepared.Clone();

        foreach (var corrected in parameters.FloatBiases.Values)
        {
            var original = graph.FindConstant(corrected.Tensor)!;
            var name = graph.UniqueName(corrected.Tensor + "_corrected");
            graph.AddInitializer(Tensors.FromFloats(name, Tensors.Dims(original), corrected.Values));
            foreach (var reader in graph.Consumers(corrected.Tensor))
                for (int i = 0; i < reader.Input.Count; i++)
                    if (reader.Input[i] == corrected.Tensor) graph.SetInput(reader, i, name);
        }

        foreach (var clampOutput in plan.FusedRelus)
            if (parameters.Activations.TryGetValue(clampOutput, out var p) && p.ClampsAtZero && WithinClamp(graph, graph.Producer(clampOutput)!, p))
                DropClamp(graph, clampOutput);

        foreach (var mark in plan.Activations)
        {
            var target = QuantizeActivation(graph, plan, mark.Tensor, parameters.Activations[mark.Tensor], emitter);
            if (dequantized is not null) dequantized[mark.Tensor] = target;
        }

        foreach (var mark in plan.Biases.Where(b => !parameters.Biases.ContainsKey((b.Node, b.Tensor))))
            DetachFloatBias(graph, Node(graph, mark.Node), mark.InputIndex);

        foreach (var group in plan.Weights.GroupBy(w => w.Tensor))
        {
            var target = graph.UniqueName(group.Key + "_dequantized");
            emitter.Weight(graph, target, parameters.Weights[group.Key]);
            foreach (var mark in group)
                graph.SetInput(Node(graph, mark.Node), mark.InputIndex, target);
        }

        foreach (var mark in plan.Biases)
        {
            if (!parameters.Biases.TryGetValue((mark.Node, mark.Tensor), out var bias)) continue;
            var target = graph.UniqueName(mark.Tensor + "_dequantized");
            emitter.Bias(graph, target, bias);
            graph.SetInput(Node(graph, mark.Node), mark.InputIndex, target);
        }

        emitter.Complete(graph);
        GraphPreparation.RemoveUnusedInitializers(graph);
        GraphPreparation.RemoveDeadConstants(graph);
        graph.SortTopologically();
        Stamp(graph, parameters.Table, mode);
        return graph;
    }

    /// <summary>Records the calibration table and the realization mode in <paramref name="graph"/>'s metadata.</summary>
    public static void Stamp(OnnxGraph graph, CalibrationTable table, QuantizationMode mode)
    {
        graph.SetMetadata(CalibrationTable.MetadataKey, table.ToJson());
        graph.SetMetadata(ModeKey, mode.ToString());
    }

    // Relu(x) and Clip(x, 0, M) equal x once x is quantized to uint8 with zero point 0 over a range no wider than M:
    // the producer writes the clamp's output directly.
    private static void DropClamp(OnnxGraph graph, string clampOutput)
    {
        var clamp = graph.Producer(clampOutput)!;
        var producer = graph.Producer(clamp.Input[0])!;
        graph.RemoveNode(clamp);
        graph.SetOutput(producer, producer.Output.IndexOf(clamp.Input[0]), clampOutput);
    }

    // A Clip's maximum must bound the quantized range, or saturation would clamp above it (a custom range can do that).
    private static bool WithinClamp(OnnxGraph graph, global::Onnx.NodeProto clamp, ActivationParameters p) =>
        clamp.OpType != "Clip" || clamp.Input.Count < 3 || clamp.Input[2].Length == 0
        || p.Max <= Tensors.ReadFloats(graph.FindConstant(clamp.Input[2])!)[0] * (1 + 1e-6);

    // ONNX Runtime fuses DequantizeLinear → Conv → QuantizeLinear into QLinearConv even when the bias is float, and then
    // quantizes that bias itself (its WeightBiasQuantization, whose weight half Int8Emitter.Complete answers), overflowing
    // where int32 cannot hold it. A bias kept float therefore moves into an Add
    // after the Conv, which stops the fusion and keeps the result right.
    private static void DetachFloatBias(OnnxGraph graph, global::Onnx.NodeProto node, int index)
    {
        var bias = graph.FindConstant(node.Input[index])!;
        int spatial = node.OpType == "Conv" ? Math.Max(0, (int)graph.FindConstant(node.Input[1])!.Dims.Count - 2) : 0;
        var dims = new[] { bias.Dims[0] }.Concat(Enumerable.Repeat(1L, spatial)).ToArray();
        var reshaped = graph.UniqueName(node.Input[index] + "_broadcast");
        graph.AddInitializer(Tensors.FromFloats(reshaped, dims, Tensors.ReadFloats(bias)));
        var output = node.Output[0];
        var withoutBias = graph.UniqueName(output + "_without_bias");
        graph.SetOutput(node, 0, withoutBias);
        graph.RemoveInputAt(node, index);
        graph.AddNode(OnnxGraph.MakeNode("Add", graph.UniqueName(node.Name + "_bias"), new[] { withoutBias, reshaped }, new[] { output }));
    }

    private static string QuantizeActivation(OnnxGraph graph, QuantizationPlan plan, string tensor, ActivationParameters p, IQdqEmitter emitter)
    {
        // Readers whose domain is limited (Log, Sqrt, a divisor...), and the nodes kept in float because they compute
        // such an input, keep the float tensor, unless a dropped Relu left only the quantized form clamped: a value
        // rounded to zero or slightly below the float minimum would turn into NaN or infinity where the float model has
        // none. (The annotator keeps the clamps that such readers read.)
        bool dropped = plan.FusedRelus.Contains(tensor) && graph.Producer(tensor) is { } maker && !graph.IsZeroClamp(maker);
        var readers = graph.Consumers(tensor).Where(r => plan.ReadsQuantized(tensor, r.Name)
            && (dropped || !(FloatRules.DomainInput(graph, r) == tensor || plan.FloatByRule.ContainsKey(OnnxGraph.Label(r))))).ToList();
        string source = tensor, target;
        if (plan.QuantizedOutputs.Contains(tensor) && graph.IsGraphOutput(tensor))
        {
            // The graph output keeps its name, and now holds the dequantized value.
            source = graph.UniqueName(tensor + "_float");
            var producer = graph.Producer(tensor)!;
            graph.SetOutput(producer, producer.Output.IndexOf(tensor), source);
            target = tensor;
        }
        else
        {
            target = graph.UniqueName(tensor + "_dequantized");
        }
        emitter.Activation(graph, source, target, p);
        foreach (var reader in readers)
            for (int i = 0; i < reader.Input.Count; i++)
                if (reader.Input[i] == tensor) graph.SetInput(reader, i, target);
        return target;
    }

    private static global::Onnx.NodeProto Node(OnnxGraph graph, string label) =>
        graph.FindNode(label) ?? throw new InvalidOperationException($"The plan names node '{label}', which the graph does not hold.");
}
