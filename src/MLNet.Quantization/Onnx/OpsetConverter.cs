using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// Rewrites the nodes whose meaning changes on the way to opset 13 into their opset-13 form: attributes that became
/// inputs (Clip's min and max, Slice's starts/ends/axes, the axes of Squeeze, Unsqueeze and ReduceSum, Split's split,
/// Pad's pads) move into constant inputs, and an old Softmax over a coerced 2-D view becomes
/// Shape → Flatten → Softmax → Reshape, which computes exactly what it did. Each rule states the opset it applies below.
/// </summary>
internal static class OpsetConverter
{
    /// <summary>Rewrites <paramref name="node"/> if a rule covers it for <paramref name="opset"/>; returns whether it did.</summary>
    public static bool TryConvert(OnnxGraph graph, NodeProto node, long opset)
    {
        switch (node.OpType)
        {
            case "Clip" when opset < 11:
                var min = Take(node, "min");
                var max = Take(node, "max");
                graph.AddInput(node, min is null ? "" : Scalar(graph, node, "min", min.F));
                if (max is not null) graph.AddInput(node, Scalar(graph, node, "max", max.F));
                return true;
            case "Slice" when opset < 10:
                var starts = Take(node, "starts")!;
                var ends = Take(node, "ends")!;
                var axes = Take(node, "axes");
                graph.AddInput(node, Longs(graph, node, "starts", starts.Ints.ToArray()));
                graph.AddInput(node, Longs(graph, node, "ends", ends.Ints.ToArray()));
                if (axes is not null) graph.AddInput(node, Longs(graph, node, "axes", axes.Ints.ToArray()));
                return true;
            case "Squeeze" or "Unsqueeze" or "ReduceSum" when opset < 13:
                var list = Take(node, "axes");
                if (list is not null) graph.AddInput(node, Longs(graph, node, "axes", list.Ints.ToArray()));
                return true;
            case "Split" when opset < 13:
                var split = Take(node, "split");
                if (split is not null) graph.AddInput(node, Longs(graph, node, "split", split.Ints.ToArray()));
                return true;
            case "Pad" when opset < 11:
                var pads = Take(node, "pads") ?? Take(node, "paddings")!;
                var value = Take(node, "value");
                graph.AddInput(node, Longs(graph, node, "pads", pads.Ints.ToArray()));
                if (value is not null) graph.AddInput(node, Scalar(graph, node, "value", value.F));
                return true;
            case "Softmax" or "LogSoftmax" or "Hardmax" when opset < 13:
                CoercedSoftmax(graph, node);
                return true;
            default:
                return false;
        }
    }

    // Before opset 13, Softmax(axis = a) flattens its input to 2-D at a, normalizes the second dimension and restores
    // the shape. Opset 13 normalizes one axis only, so the old computation is written out.
    private static void CoercedSoftmax(OnnxGraph graph, NodeProto node)
    {
        long axis = Take(node, "axis")?.I ?? 1;
        string input = node.Input[0], output = node.Output[0];
        string shape = graph.UniqueName(output + "_shape"), flat = graph.UniqueName(output + "_2d"), normalized = graph.UniqueName(output + "_2d_normalized");
        graph.AddNode(OnnxGraph.MakeNode("Shape", graph.UniqueName(node.Name + "_shape"), new[] { input }, new[] { shape }));
        var flatten = OnnxGraph.MakeNode("Flatten", graph.UniqueName(node.Name + "_flatten"), new[] { input }, new[] { flat });
        flatten.Attribute.Add(OnnxGraph.IntAttribute("axis", axis));
        graph.AddNode(flatten);
        graph.SetInput(node, 0, flat);
        graph.SetOutput(node, 0, normalized);
        node.Attribute.Add(OnnxGraph.IntAttribute("axis", -1));
        graph.AddNode(OnnxGraph.MakeNode("Reshape", graph.UniqueName(node.Name + "_restore"), new[] { normalized, shape }, new[] { output }));
    }

    private static AttributeProto? Take(NodeProto node, string name)
    {
        var attribute = node.Attribute.FirstOrDefault(a => a.Name == name);
        if (attribute is not null) node.Attribute.Remove(attribute);
        return attribute;
    }

    private static string Scalar(OnnxGraph graph, NodeProto node, string what, float value)
    {
        var name = graph.UniqueName($"{node.Name}_{what}");
        graph.AddInitializer(Tensors.FromFloats(name, Array.Empty<long>(), new[] { value }));
        return name;
    }

    private static string Longs(OnnxGraph graph, NodeProto node, string what, long[] values)
    {
        var name = graph.UniqueName($"{node.Name}_{what}");
        graph.AddInitializer(Tensors.FromLongs(name, new long[] { values.Length }, values));
        return name;
    }
}
