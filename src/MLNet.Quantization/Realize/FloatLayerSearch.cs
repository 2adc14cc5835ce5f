using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Realize;

/// <summary>
/// How many layers of a ranking (the noisiest first) go back to float: the fewest whose realized model meets a bound.
/// The <c>MinimumOutputCosine</c> fallback and the deployment check's error bound both search with it.
/// </summary>
/// <remarks>
/// <para>
/// A galloping search (Bentley and Yao's unbounded search): the models with the first k = 1, 2, 4, … layers in float are
/// measured until one meets the bound, then the count is bisected between the last k that missed it and the first that
/// met it. An answer of k* costs about 2·log2(k*) measured models. One layer at a time costs k*; doubling alone costs
/// log2(k*) but sends up to 2k* − 1 layers back to float, and on a network whose error is spread over its layers that
/// overshoot returned whole models in float.
/// </para>
/// <para>
/// More layers in float need not mean less error (noise can cancel), so the bisection may pass over a smaller count that
/// meets the bound. The answer is always a count that was measured to meet it, or every layer when none did.
/// </para>
/// </remarks>
internal static class FloatLayerSearch
{
    /// <summary>
    /// The smallest count k in [1, <paramref name="count"/>] found with <paramref name="within"/>(k) true, by galloping then
    /// bisection; <paramref name="count"/> when no count measured is within (0 for an empty ranking).
    /// </summary>
    public static int Fewest(int count, Func<int, bool> within)
    {
        ArgumentNullException.ThrowIfNull(within);
        if (count <= 0) return 0;
        int missed = 0, met = 1;
        while (!within(met))
        {
            missed = met;
            if (met == count) return count;
            met = Math.Min(count, 2 * met);
        }
        while (met - missed > 1)
        {
            int middle = missed + (met - missed) / 2;
            if (within(middle)) met = middle;
            else missed = middle;
        }
        return met;
    }

    // The quantized nodes around a tensor (its producer and its readers, seen through a Relu): keeping the tensor's
    // layer in float means keeping all of them, or one of them would quantize the tensor again.
    internal static List<string> Layer(OnnxGraph model, string tensor)
    {
        var nodes = new List<global::Onnx.NodeProto>();
        if (model.ProducerThroughClamp(tensor, out _) is { } producer) nodes.Add(producer);
        nodes.AddRange(model.ConsumersThroughClamp(tensor));
        return nodes.Where(n => OpRegistry.Find(n.OpType) is not null).Select(n => n.Name).Distinct().ToList();
    }

    /// <summary>
    /// Sends the fewest of <paramref name="ranking"/>'s layers (tensors, noisiest first) back to float, besides
    /// <paramref name="alreadyFloat"/>, for <paramref name="within"/> (a measure of <c>context.Realized</c>) to hold.
    /// Each count is realized from the parameters as they were on entry, so that a smaller count after a larger one gets
    /// its layers' parameters back. Leaves the context realized with the answer and returns the nodes it added, in
    /// ranking order.
    /// </summary>
    public static List<string> SendBack(QuantizationContext context, IEnumerable<string> alreadyFloat, IEnumerable<string> ranking,
        IReadOnlyDictionary<string, TensorStatistics> calibrated, Func<bool> within)
    {
        var kept = alreadyFloat.ToList();
        var seen = new HashSet<string>(kept, StringComparer.Ordinal);
        // Each layer's nodes that no layer before it sends back: a layer with none adds nothing to measure.
        var layers = new List<List<string>>();
        foreach (var tensor in ranking)
        {
            var added = Layer(context.Model, tensor).Where(seen.Add).ToList();
            if (added.Count > 0) layers.Add(added);
        }
        var parameters = context.Parameters;
        int realized = 0;
        void Realize(int count)
        {
            if (count == realized) return;
            RealizePass.Without(context, kept.Concat(layers.Take(count).SelectMany(l => l)), calibrated, parameters);
            realized = count;
        }
        int fewest = Fewest(layers.Count, count =>
        {
            Realize(count);
            return within();
        });
        Realize(fewest);
        return layers.Take(fewest).SelectMany(l => l).ToList();
    }
}
