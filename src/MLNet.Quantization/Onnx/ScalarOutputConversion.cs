using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// Preparation of models with a scalar (rank-0) graph output, such as a loss, a determinant or one score per call:
/// ML.NET's OnnxTransformer declares such an output as a column but cannot read it (every row fails with "Value cannot
/// be null. (Parameter 'source')" inside a "Splitter/consolidator worker" exception; dotnet/machinelearning#7225). Each
/// such output is reshaped to one value of shape [1], under its own name, so that ML.NET reads it as a vector of one.
/// </summary>
/// <remarks>
/// The producer of the output writes a new tensor, which its readers in the graph now read, and a Reshape to [1] writes
/// the output's name. The value is the same; only its rank changes. An output that is also a graph input, an initializer,
/// or a tensor read inside a subgraph is left as it is (it would need its readers there renamed), and so is every output
/// of a model below opset 5, whose Reshape took its shape as an attribute.
/// </remarks>
internal static class ScalarOutputConversion
{
    /// <summary>Converts <paramref name="graph"/> in place; returns one line per output reshaped, empty when none was.</summary>
    public static IReadOnlyList<string> Convert(OnnxGraph graph)
    {
        var notes = new List<string>();
        if (graph.Opset < 5) return notes; // Reshape takes its shape as an input from opset 5
        foreach (var output in graph.Graph.Output)
        {
            if (output.Type?.TensorType is not { Shape: { Dim.Count: 0 } shape }) continue;
            if (graph.Producer(output.Name) is not { } producer || graph.IsReadBySubgraph(output.Name)) continue;
            string scalar = graph.UniqueName(output.Name + "_scalar");
            foreach (var reader in graph.Consumers(output.Name).ToList())
                for (int i = 0; i < reader.Input.Count; i++)
                    if (reader.Input[i] == output.Name) graph.SetInput(reader, i, scalar);
            graph.SetOutput(producer, producer.Output.IndexOf(output.Name), scalar);
            string one = graph.UniqueName(output.Name + "_shape");
            graph.AddInitializer(Tensors.FromLongs(one, new long[] { 1 }, new long[] { 1 }));
            graph.AddNode(OnnxGraph.MakeNode("Reshape", graph.UniqueName(output.Name + "_to_vector"), new[] { scalar, one }, new[] { output.Name }));
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 1 });
            notes.Add($"output '{output.Name}' is a scalar in the original and has shape [1] in the quantized model: ML.NET's OnnxTransformer cannot read a scalar output");
        }
        if (notes.Count > 0) graph.SortTopologically();
        return notes;
    }
}
