using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// Outputs that no check can compare, sequences and maps (a scikit-learn classifier's ZipMap probabilities), are
/// compared through the float tensor that their producer reads (the probabilities before ZipMap): during <c>Fit</c>
/// that tensor is a graph output of its own, quantized for, compared, scored by the tuner and bounded like any output,
/// and it is taken out again from the model returned, whose outputs are the user's.
/// </summary>
internal static class StandInOutputs
{
    /// <summary>
    /// Adds a stand-in output for each sequence or map output whose producer reads a computed float tensor that is not
    /// already an output; returns each stand-in with the output it stands for.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Add(OnnxGraph graph)
    {
        var standIns = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var output in graph.Graph.Output.ToList())
        {
            if (output.Type?.TensorType is not null || graph.Producer(output.Name) is not { } producer) continue;
            var read = producer.Input.FirstOrDefault(t => t.Length > 0);
            if (read is null || graph.IsGraphOutput(read) || standIns.ContainsKey(read) || graph.Producer(read) is null
                || graph.FindConstant(read) is not null || !IsFloat(graph, read))
                continue;
            graph.Graph.Output.Add(new ValueInfoProto { Name = read });
            standIns[read] = output.Name;
        }
        if (standIns.Count > 0) graph.Invalidate();
        return standIns;
    }

    /// <summary>Takes the stand-in outputs of <paramref name="standIns"/> out of <paramref name="graph"/>, if it has them.</summary>
    public static void Remove(OnnxGraph graph, IReadOnlyDictionary<string, string> standIns)
    {
        if (standIns.Count == 0) return;
        foreach (var output in graph.Graph.Output.Where(o => standIns.ContainsKey(o.Name)).ToList()) graph.Graph.Output.Remove(output);
        graph.Invalidate();
    }

    // Whether the tensor is declared float, or, undeclared, is written by an op of the default domain that gives floats
    // from floats (a Softmax, a Sigmoid): the value info where the exporter wrote one, else the producer's first input.
    private static bool IsFloat(OnnxGraph graph, string tensor)
    {
        var declared = graph.Graph.ValueInfo.FirstOrDefault(v => v.Name == tensor)?.Type?.TensorType;
        if (declared is not null) return declared.ElemType == Tensors.Float;
        var producer = graph.Producer(tensor)!;
        if (producer.Domain is not ("" or "ai.onnx") || producer.OpType is "Cast" or "Shape" or "ArgMax" or "ArgMin" or "Size") return false;
        var input = producer.Input.FirstOrDefault(t => t.Length > 0);
        return input is not null && (graph.Graph.Input.FirstOrDefault(i => i.Name == input)?.Type?.TensorType?.ElemType == Tensors.Float
            || graph.FindConstant(input)?.DataType == Tensors.Float || (graph.Producer(input) is not null && IsFloat(graph, input)));
    }
}
