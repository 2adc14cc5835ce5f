using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>Step 2 of <c>Fit</c>: asks each node's handler which of its tensors to quantize.</summary>
internal static class Annotator
{
    public static QuantizationPlan Annotate(OnnxGraph graph)
    {
        var plan = new QuantizationPlan();
        var context = new AnnotationContext(graph, plan);
        foreach (var node in graph.Graph.Node.Where(n => n.Domain is "" or "ai.onnx"))
            OpRegistry.Find(node.OpType)?.Annotate(node, context);
        MoveMarksPastRelu(graph, plan);
        return plan;
    }

    // A marked tensor read only by a Relu is quantized after the Relu instead, and the Relu is dropped at realization:
    // uint8 with zero point 0 clamps at zero exactly as the Relu does.
    private static void MoveMarksPastRelu(OnnxGraph graph, QuantizationPlan plan)
    {
        for (int i = 0; i < plan.Activations.Count; i++)
        {
            var mark = plan.Activations[i];
            var consumers = graph.Consumers(mark.Tensor);
            if (mark.ShareScaleWith is not null || graph.IsGraphOutput(mark.Tensor) || graph.Producer(mark.Tensor) is null
                || consumers.Count != 1 || consumers[0].OpType != "Relu")
                continue;
            var reluOutput = consumers[0].Output[0];
            plan.Activations.RemoveAt(i);
            var existing = plan.FindActivation(reluOutput);
            if (existing is null)
                plan.Activations.Insert(i, mark with { Tensor = reluOutput });
            else
                i--;
            plan.FusedRelus.Add(reluOutput);
            foreach (var bias in plan.Biases.Where(b => b.Activation == mark.Tensor).ToList())
                plan.Biases[plan.Biases.IndexOf(bias)] = bias with { Activation = reluOutput };
            foreach (var shared in plan.Activations.Where(a => a.ShareScaleWith == mark.Tensor).ToList())
                plan.Activations[plan.Activations.IndexOf(shared)] = shared with { ShareScaleWith = reluOutput };
        }
    }
}
