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
/// <para>
/// **No gain, found early.** Once the galloping has bracketed the answer in (m, M], every count that could be the answer
/// keeps at least m + 1 layers in float. Each layer sent back gives up its int8 gain, so of those models the one with
/// m + 1 layers is the fastest (assumed: more layers in float never run faster). Where a speed test is given, that model
/// is timed once before the bisection; if it is not fast enough, no model within the bound can be, and the search stops
/// there instead of bisecting (about log2(M − m) more measured models) for an answer that would be discarded.
/// </para>
/// <para>
/// **Unless more float runs faster.** The assumption fails where int8 layers are slower than their float form
/// (ONNX Runtime's generic depthwise kernels): the PaddleOCR v4 detector ran at 1.05x with 66 nodes in float and at
/// 1.13–1.16x with 109. So where the model with m + 1 layers is not fast enough, the model with M (which meets the
/// bound) is timed too. Only where both miss does the search stop. Where M is fast enough, the bisection looks for the
/// fewest layers whose model both meets the bound and is fast enough (<see cref="Answer.SpeedDecided"/>), timing each
/// count it measures. It finds such a count, since M is one.
/// </para>
/// </remarks>
internal static class FloatLayerSearch
{
    /// <summary>
    /// The smallest count k in [1, <paramref name="count"/>] found with <paramref name="within"/>(k) true, by galloping then
    /// bisection; <paramref name="count"/> when no count measured is within (0 for an empty ranking).
    /// </summary>
    public static int Fewest(int count, Func<int, bool> within) => Search(count, within).Count;

    /// <summary>
    /// <see cref="Fewest(int, Func{int, bool})"/>, with <paramref name="fastEnough"/> asked once, of the smallest count
    /// that could still be the answer, when the galloping leaves a bisection to run: where it says no, the search stops
    /// with that count and <see cref="Answer.NoGain"/> set.
    /// </summary>
    public static Answer Search(int count, Func<int, bool> within, Func<int, bool>? fastEnough = null)
    {
        ArgumentNullException.ThrowIfNull(within);
        if (count <= 0) return new Answer(0, false);
        int missed = 0, met = 1;
        while (!within(met))
        {
            missed = met;
            if (met == count) return new Answer(count, false);
            met = Math.Min(count, 2 * met);
        }
        bool speedDecided = false;
        var accept = within;
        if (fastEnough is not null && met - missed > 1 && missed > 0 && !fastEnough(missed + 1))
        {
            if (!fastEnough(met)) return new Answer(missed + 1, true);
            speedDecided = true;
            accept = k => within(k) && fastEnough(k);
        }
        while (met - missed > 1)
        {
            int middle = missed + (met - missed) / 2;
            if (accept(middle)) met = middle;
            else missed = middle;
        }
        return new Answer(met, false, speedDecided);
    }

    /// <summary>
    /// A search's answer: the count of layers in float, or, with <paramref name="NoGain"/>, the smallest count that could
    /// have been the answer, whose model was not fast enough (nor was the largest's). With
    /// <paramref name="SpeedDecided"/>, fewer layers in float ran too slowly, and the count is the fewest found both
    /// within the bound and fast enough.
    /// </summary>
    public readonly record struct Answer(int Count, bool NoGain, bool SpeedDecided = false);

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
    /// ranking order; with <paramref name="fastEnough"/> (a timing of <c>context.Realized</c>), see
    /// <see cref="Search"/>: where it says no, the context is left realized with that count and the result says so.
    /// </summary>
    public static (List<string> Nodes, Answer Answer) SendBack(QuantizationContext context, IEnumerable<string> alreadyFloat,
        IEnumerable<string> ranking, IReadOnlyDictionary<string, TensorStatistics> calibrated, Func<bool> within, Func<bool>? fastEnough = null)
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
        var answer = Search(layers.Count, count =>
        {
            Realize(count);
            return within();
        }, fastEnough is null ? null : count =>
        {
            Realize(count);
            return fastEnough();
        });
        Realize(answer.Count);
        return (layers.Take(answer.Count).SelectMany(l => l).ToList(), answer);
    }
}
