using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// Annotate (see <see cref="AnnotatePass"/>): asks each node's handler which of its tensors to quantize, keeps the marks of compute-heavy
/// ops and of the ops next to them (see <see cref="QuantizeWhen"/>), and moves marks past Relus.
/// </summary>
internal static class Annotator
{
    public static QuantizationPlan Annotate(OnnxGraph graph, Exclusions? exclusions = null)
    {
        var plan = new QuantizationPlan();
        var context = new AnnotationContext(graph);
        var annotated = new List<NodeMarks>();
        var floatByRule = FloatRules.Find(graph);
        foreach (var node in graph.Graph.Node.Where(n => n.Domain is "" or "ai.onnx"))
        {
            if (exclusions?.Excludes(node) == true || OpRegistry.Find(node.OpType) is not { } handler)
                continue;
            if (floatByRule.TryGetValue(OnnxGraph.Label(node), out var reason))
            {
                plan.FloatByRule[OnnxGraph.Label(node)] = reason;
                continue;
            }
            var marks = context.Begin(node, handler.When);
            handler.Annotate(node, context);
            if (!marks.IsEmpty) annotated.Add(marks);
        }

        foreach (var marks in Kept(graph, annotated))
        {
            foreach (var a in marks.Activations)
            {
                if (plan.FindActivation(a.Tensor) is null) plan.Activations.Add(a);
                if (marks.Outputs.Contains(a.Tensor))
                    plan.QuantizedOutputs.Add(a.Tensor);
                else if (marks.Inputs.Contains(a.Tensor))
                    Readers(plan, a.Tensor).Add(marks.Node.Name);
            }
            plan.Weights.AddRange(marks.Weights);
            plan.Biases.AddRange(marks.Biases);
        }
        MoveMarksPastRelu(graph, plan);
        BoundByReaders(graph, plan);
        SharedGrids.Share(graph, plan);
        return plan;
    }

    // A tensor whose quantized readers all clamp it needs no range past the clamp (see ReaderClamps). A tensor whose
    // scale others share keeps its range: they are read elsewhere.
    private static void BoundByReaders(OnnxGraph graph, QuantizationPlan plan)
    {
        var shared = plan.Activations.Where(a => a.ShareScaleWith is not null).Select(a => a.ShareScaleWith!).ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < plan.Activations.Count; i++)
        {
            var mark = plan.Activations[i];
            if (mark.ShareScaleWith is not null || shared.Contains(mark.Tensor)) continue;
            var bounds = ReaderClamps.Of(graph, plan, mark.Tensor);
            if (bounds.IsBounded) plan.Activations[i] = mark with { ReadersClamp = bounds };
        }
    }

    private static HashSet<string> Readers(QuantizationPlan plan, string tensor)
    {
        if (!plan.QuantizedReaders.TryGetValue(tensor, out var readers))
            plan.QuantizedReaders[tensor] = readers = new HashSet<string>(StringComparer.Ordinal);
        return readers;
    }

    private static List<NodeMarks> Kept(OnnxGraph graph, List<NodeMarks> annotated)
    {
        var kept = annotated.Where(m => m.When == QuantizeWhen.Always).ToHashSet();
        var byNode = annotated.ToDictionary(m => m.Node);
        bool changed = true;
        while (changed)
        {
            changed = false;
            foreach (var marks in annotated.Where(m => !kept.Contains(m)))
            {
                bool after = marks.Inputs.Any(t => ProducedByKept(t));
                bool before = marks.When == QuantizeWhen.NextToQuantizedOp && marks.Outputs.Any(t => ReadByKept(t));
                if (after || before)
                    changed |= kept.Add(marks);
            }
        }
        return annotated.Where(kept.Contains).ToList();

        bool ProducedByKept(string tensor)
        {
            var producer = graph.ProducerThroughClamp(tensor, out var computed);
            return producer is not null && byNode.TryGetValue(producer, out var m) && kept.Contains(m) && m.Outputs.Contains(computed);
        }

        // A reader through a zero clamp reads the clamp's output.
        bool ReadByKept(string tensor) => graph.ReadsThroughClamp(tensor)
            .Any(x => byNode.TryGetValue(x.Reader, out var r) && kept.Contains(r) && r.Inputs.Contains(x.Reads));
    }

    // A marked tensor read only by a Relu (or a Clip from 0) is quantized after it instead, and the clamp is dropped at
    // realization: uint8 with zero point 0 clamps at zero as the Relu does, and the calibrated range of the clamp's
    // output never exceeds a Clip's maximum, so saturation at 255 clamps there too.
    private static void MoveMarksPastRelu(OnnxGraph graph, QuantizationPlan plan)
    {
        for (int i = 0; i < plan.Activations.Count; i++)
        {
            var mark = plan.Activations[i];
            var consumers = graph.Consumers(mark.Tensor);
            if (mark.ShareScaleWith is not null || graph.IsGraphOutput(mark.Tensor) || graph.Producer(mark.Tensor) is null
                || consumers.Count != 1 || !graph.IsZeroClamp(consumers[0]) || graph.IsReadBySubgraph(mark.Tensor))
                continue;
            var reluOutput = consumers[0].Output[0];
            // A reader kept in float by rule needs the clamped float value, which dropping the clamp would take away.
            if (graph.Consumers(reluOutput).Any(r => plan.FloatByRule.ContainsKey(OnnxGraph.Label(r)) || FloatRules.DomainInput(graph, r) == reluOutput))
                continue;
            plan.Activations.RemoveAt(i);
            var existing = plan.FindActivation(reluOutput);
            if (existing is null)
                plan.Activations.Insert(i, mark with { Tensor = reluOutput });
            else
                i--;
            plan.FusedRelus.Add(reluOutput);
            // The Relu disappears, so its output is now the producer's output: every reader reads it quantized.
            plan.QuantizedOutputs.Remove(mark.Tensor);
            plan.QuantizedOutputs.Add(reluOutput);
            foreach (var bias in plan.Biases.Where(b => b.Activation == mark.Tensor).ToList())
                plan.Biases[plan.Biases.IndexOf(bias)] = bias with { Activation = reluOutput };
            foreach (var shared in plan.Activations.Where(a => a.ShareScaleWith == mark.Tensor).ToList())
                plan.Activations[plan.Activations.IndexOf(shared)] = shared with { ShareScaleWith = reluOutput };
        }
    }
}
