using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Bias correction layer by layer, with the quantized layers before each one in place (NNCF's <c>BiasCorrection</c>,
/// the DFQ paper's empirical correction).
/// </summary>
/// <remarks>
/// The float means <c>E_c[y]</c> of every layer of <see cref="BiasCorrectionLayers"/> come from the pipeline's stream,
/// over the first <see cref="Rows"/> calibration rows, the rows the waves read.
/// Then the layers go in waves by depth (a layer's depth is one more than the deepest corrected layer upstream of it):
/// each wave realizes the model in simulated form with every bias corrected so far, streams the first
/// <see cref="Rows"/> calibration rows through it, and moves each of its layers' biases by <c>E_c[y] − E_c[ŷ]</c>,
/// ŷ being the layer's output with all of its quantized predecessors, corrected, in place. So the correction also
/// cancels the mean error that reaches a layer from upstream. Each wave runs only the part of the model between what the
/// wave before kept and its own layers (<see cref="WaveStream"/>): about two streams of the simulated model in all,
/// instead of one per wave (about the depth of the network in quantized layers), as long as the kept activations fit
/// <see cref="MemoryBudget"/>.
/// </remarks>
internal sealed class FullBiasCorrectionPass : IQuantizationPass
{
    /// <summary>The calibration rows each wave reads (NNCF's subset size is 100).</summary>
    public const int Rows = 128;

    private List<BiasCorrectionLayers.Layer> _layers = new();

    /// <summary>The most bytes of activations kept between waves (<see cref="WaveStream"/>).</summary>
    public long MemoryBudget { get; init; } = WaveStream.DefaultMemoryBudget;

    /// <summary>After <see cref="Apply"/>: how many waves read the rows from the data.</summary>
    public int DataStreams { get; private set; }

    /// <summary>After <see cref="Apply"/>: the most bytes of activations kept at once.</summary>
    public long PeakKeptBytes { get; private set; }

    // The float means over the rows the waves read: the shift is then a difference over the same rows (a paired
    // estimate), not one mean over every row against another over the first Rows, whose difference the rows' own
    // spread would dominate.
    public long StatisticRows => Rows;

    public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context)
    {
        _layers = BiasCorrectionLayers.Find(context);
        return _layers.Select(l => l.FloatOutput).ToList();
    }

    // The float means' stream, then the simulated model (about 1.5 times as slow as the float one), each node about
    // twice over the waves (see WaveStream); all on at most Rows rows.
    public double EstimatedStreams(QuantizationContext context)
    {
        var layers = BiasCorrectionLayers.Find(context);
        int waves = layers.Count == 0 ? 0 : Depths(context.Model, layers).Values.Max();
        double rows = Math.Max(1, context.Statistics.Rows);
        return (1 + 1.5 * Math.Min(2, waves)) * Math.Min(1, Rows / rows);
    }

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var model = context.Model;
        var depth = Depths(model, _layers);
        var shifts = new Dictionary<BiasCorrectionLayers.Layer, double[]>();
        var stream = new WaveStream(context, 4, Rows, MemoryBudget);
        var waves = _layers.GroupBy(l => depth[l.Node.Name]).OrderBy(g => g.Key).ToList();
        for (int w = 0; w < waves.Count; w++)
        {
            var parameters = BiasCorrectionLayers.Correct(model, context.Parameters, shifts);
            var simulated = QdqWriter.Realize(model, context.Plan, parameters, QuantizationMode.Simulated);
            // In the simulated model each layer still writes its own output (a dropped Relu's name, when one was
            // folded), before any fake quantization of it.
            var points = waves[w].ToDictionary(l => l, l => new StatisticPoint(SimulatedEmitter.FloatOutput(simulated, simulated.FindNode(l.Node.Name)!), l.Axis));
            var changing = waves.Skip(w).SelectMany(g => g).Select(l => l.Node.Name).ToList();
            var measured = stream.Collect(simulated, points.Values.ToList(), changing, last: w == waves.Count - 1);
            foreach (var (layer, point) in points)
                shifts[layer] = BiasCorrectionLayers.Shift(statistics[layer.FloatOutput].Mean, measured[point].Mean);
        }
        DataStreams = stream.DataStreams;
        PeakKeptBytes = stream.PeakKeptBytes;
        context.Parameters = BiasCorrectionLayers.Correct(model, context.Parameters, shifts);
    }

    // 1 + the largest depth among the corrected layers upstream (0 when there is none), in topological order.
    private static Dictionary<string, int> Depths(OnnxGraph model, IReadOnlyList<BiasCorrectionLayers.Layer> layers)
    {
        var isLayer = layers.Select(l => l.Node.Name).ToHashSet();
        var tensorDepth = new Dictionary<string, int>(StringComparer.Ordinal);
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in model.Graph.Node)
        {
            int upstream = node.Input.Concat(OnnxGraph.ImplicitInputs(node)).Select(t => tensorDepth.GetValueOrDefault(t)).DefaultIfEmpty(0).Max();
            int own = isLayer.Contains(node.Name) ? upstream + 1 : upstream;
            if (isLayer.Contains(node.Name)) result[node.Name] = own;
            foreach (var output in node.Output) tensorDepth[output] = own;
        }
        return result;
    }
}
