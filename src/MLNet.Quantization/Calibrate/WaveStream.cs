using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Realize;
using Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// The calibration rows of a pass that changes a model wave by wave (full bias correction), each wave run from where
/// the wave before left the rows instead of from the model's inputs: NNCF's bias correction, which runs each layer's
/// subgraph on the activations it kept.
/// </summary>
/// <remarks>
/// <para>
/// At each wave the caller names the nodes that will still change after it (the wave's own layers and those of the
/// waves after). A tensor upstream of none of them is final: every later wave computes it alike. So the run keeps, per
/// row, the final tensors that a node downstream of a changing one reads (the cut), and the next wave's model is only
/// the part of the graph between that cut and its own points. Tensors that depend on no model input (weights behind
/// DequantizeLinear, shapes) are recomputed, never kept.
/// </para>
/// <para>
/// On a chain of layers every node then runs about twice over all the waves (once behind the cut, once as the
/// wave's point) instead of once per wave in front of it: on ResNet18's 20 waves about 2 model streams instead of
/// 20. The kept tensors cost memory, the cut's size times the rows (ResNet18 at 128 rows: about 200 MB at its widest
/// cut); a wave whose cut would pass <see cref="MemoryBudget"/> keeps nothing, and the next wave reads the rows from
/// the data again, as a wave without a cut does. While a wave runs, the cut it reads and the one it keeps are both
/// alive: at most twice the budget.
/// </para>
/// </remarks>
internal sealed class WaveStream
{
    /// <summary>The most bytes of tensors kept between waves by default.</summary>
    public const long DefaultMemoryBudget = 256L << 20;

    private readonly QuantizationContext _context;
    private readonly long _maximumRows;
    private readonly int _pass;
    // Per kept tensor its value at each row, the rows in order; null: the next wave reads the rows from the data.
    private Dictionary<string, List<KeptTensor>>? _kept;
    private long _keptRows;

    public WaveStream(QuantizationContext context, int pass, long maximumRows, long memoryBudget = DefaultMemoryBudget)
    {
        (_context, _pass, _maximumRows, MemoryBudget) = (context, pass, maximumRows, memoryBudget);
    }

    /// <summary>The most bytes of tensors kept between waves.</summary>
    public long MemoryBudget { get; }

    /// <summary>How many waves read the rows from the data (the others read what the wave before kept).</summary>
    public int DataStreams { get; private set; }

    /// <summary>The most bytes kept at once.</summary>
    public long PeakKeptBytes { get; private set; }

    /// <summary>The nodes of the model that the last wave ran.</summary>
    public int LastWaveNodes { get; private set; }

    /// <summary>
    /// Collects <paramref name="points"/> on <paramref name="model"/>, this wave's form of the model; the nodes named
    /// by <paramref name="changing"/> (this wave's and every later wave's) will differ in later waves. With
    /// <paramref name="last"/>, nothing is kept for a next wave.
    /// </summary>
    public StatisticValues Collect(OnnxGraph model, IReadOnlyList<StatisticPoint> points, IReadOnlyCollection<string> changing, bool last)
    {
        if (points.Count == 0) return StatisticValues.None;
        var graph = model.Clone();
        graph.SortTopologically();
        var reducer = new ChannelReducer(points, graph);
        var cut = last ? new HashSet<string>(StringComparer.Ordinal) : Cut(graph, changing.ToHashSet(StringComparer.Ordinal));

        var inputs = graph.RealInputs().Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var wanted = reducer.Tensors.Concat(cut).Distinct().ToList();
        var segment = _kept is { } kept ? Segment(graph, wanted, kept.Keys.ToHashSet(StringComparer.Ordinal)) : null;
        if (segment is null)
        {
            // No cut kept, or one that does not hold what this wave reads: from the data.
            _kept = null;
            segment = Segment(graph, wanted, inputs) ?? throw new InvalidOperationException(
                $"The model of bias correction's wave reads a tensor that neither a node nor an input of '{_context.Settings.ModelFile}' provides.");
        }
        var (nodes, reads) = segment.Value;
        LastWaveNodes = nodes.Count;
        var fetch = wanted.Where(t => !reads.Contains(t)).ToArray();
        using var session = Sessions.Create(Extract(graph, nodes, reads, fetch),
            Array.Empty<string>(), $"the quantized form of '{_context.Settings.ModelFile}' for bias correction", RowReader.SessionThreads);
        var next = cut.ToDictionary(t => t, _ => new List<KeptTensor>(), StringComparer.Ordinal);
        long before = _kept?.Values.Sum(Bytes) ?? 0;
        // Reading kept rows, a kept tensor that the next wave reads is carried over; reading the data, it is copied.
        var carry = _kept is null ? new HashSet<string>() : cut.Where(reads.Contains).ToHashSet(StringComparer.Ordinal);
        long keptBytes = carry.Sum(t => Bytes(_kept![t]));
        long carried = keptBytes;
        bool overflow = keptBytes > MemoryBudget;
        using var runOptions = new RunOptions();

        void Take(string tensor, OrtValue value)
        {
            if (reducer.Reads(tensor)) reducer.Add(tensor, value);
            if (overflow || carry.Contains(tensor) || !next.TryGetValue(tensor, out var list)) return;
            var info = value.GetTensorTypeAndShape();
            var raw = info.ElementDataType == TensorElementType.String ? default : value.GetTensorMutableRawData();
            overflow = info.ElementDataType == TensorElementType.String || keptBytes + raw.Length > MemoryBudget;
            if (overflow)
            {
                foreach (var rows in next.Values) rows.Clear(); // nothing kept: the next wave reads the data
                return;
            }
            keptBytes += raw.Length;
            list.Add(new KeptTensor(info.ElementDataType, info.Shape, raw.ToArray()));
        }

        // The rows run several at once; their tensors are taken in row order, so the kept rows stay in order.
        IDisposableReadOnlyCollection<OrtValue> Run(string[] names, OrtValue[] values) => session.Run(runOptions, names, values, fetch);
        void Visit(string[] names, OrtValue[] values, IReadOnlyList<OrtValue> results)
        {
            for (int i = 0; i < names.Length; i++) Take(names[i], values[i]);
            for (int k = 0; k < fetch.Length; k++) Take(fetch[k], results[k]);
        }

        long rows;
        if (_kept is null)
        {
            DataStreams++;
            rows = RowReader.ForEachInOrder(session, _context.Data, _context.Settings, _pass, _context.Settings.Rows.IsCalibrationRow,
                Run, (_, names, values, results) => Visit(names, values, results), RowReader.Bytes, _maximumRows);
        }
        else
        {
            var names = session.InputMetadata.Keys.ToArray();
            using var flight = new OrderedRuns<IDisposableReadOnlyCollection<OrtValue>>(RowReader.Workers,
                (_, values, results) => Visit(names, values, results), RowReader.Bytes);
            for (int row = 0; row < _keptRows; row++)
                flight.Add(row, names.Length, i => _kept[names[i]][row].ToOrtValue(), inputs => Run(names, inputs));
            flight.Finish();
            rows = flight.Taken;
        }

        foreach (var t in carry) next[t] = _kept![t]; // final already: carried, not copied
        PeakKeptBytes = Math.Max(PeakKeptBytes, before + (overflow ? 0 : keptBytes - carried)); // the kept rows and the new ones, alive together
        _kept = overflow || last || rows == 0 ? null : next; // no rows kept: nothing to read them from
        _keptRows = rows;
        return reducer.Values(rows);
    }

    // The tensors computed upstream of no changing node, from a model input, that a node downstream of one reads.
    private static HashSet<string> Cut(OnnxGraph graph, HashSet<string> changing)
    {
        var dynamic = graph.RealInputs().Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var tainted = new HashSet<string>(StringComparer.Ordinal);
        var cut = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Graph.Node)
        {
            var reads = Reads(node).ToList();
            bool isDynamic = reads.Any(dynamic.Contains);
            bool isTainted = changing.Contains(node.Name) || reads.Any(tainted.Contains);
            if (isTainted) cut.UnionWith(reads.Where(t => dynamic.Contains(t) && !tainted.Contains(t)));
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                if (isDynamic) dynamic.Add(output);
                if (isTainted) tainted.Add(output);
            }
        }
        return cut;
    }

    // The nodes that compute `wanted` from `available` (and constants), in graph order, and the available tensors they
    // read; null when some tensor has neither a producer nor a value.
    private static (List<NodeProto> Nodes, HashSet<string> Reads)? Segment(OnnxGraph graph, IEnumerable<string> wanted, HashSet<string> available)
    {
        var nodes = new HashSet<NodeProto>();
        var reads = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(wanted);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            var tensor = pending.Pop();
            if (tensor.Length == 0 || !seen.Add(tensor)) continue;
            if (available.Contains(tensor)) { reads.Add(tensor); continue; }
            if (graph.FindInitializer(tensor) is not null) continue;
            if (graph.Producer(tensor) is not { } producer) return null;
            if (!nodes.Add(producer)) continue;
            foreach (var input in Reads(producer)) pending.Push(input);
        }
        return (graph.Graph.Node.Where(nodes.Contains).ToList(), reads);
    }

    private static long Bytes(List<KeptTensor> rows) => rows.Sum(k => (long)k.Bytes.Length);

    private static IEnumerable<string> Reads(NodeProto node) => node.Input.Where(i => i.Length > 0).Concat(OnnxGraph.ImplicitInputs(node));

    // The model of the segment: its nodes, the initializers they read, the tensors read as inputs, `fetch` as outputs.
    private OnnxGraph Extract(OnnxGraph graph, List<NodeProto> nodes, HashSet<string> reads, string[] fetch)
    {
        var g = graph.Graph;
        var used = nodes.SelectMany(Reads).ToHashSet(StringComparer.Ordinal);
        var produced = nodes.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        var realInputs = graph.RealInputs().ToDictionary(i => i.Name, StringComparer.Ordinal);
        var inputs = reads.OrderBy(t => t, StringComparer.Ordinal).Select(t => realInputs.TryGetValue(t, out var info) && _kept is null
            ? info
            : new ValueInfoProto { Name = t, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)_kept![t][0].Type } } }).ToList();
        var initializers = g.Initializer.Where(i => used.Contains(i.Name) && !reads.Contains(i.Name)).ToList();
        var valueInfo = g.ValueInfo.Where(v => produced.Contains(v.Name)).ToList();
        g.Node.Clear();
        g.Node.AddRange(nodes);
        g.Input.Clear();
        g.Input.AddRange(inputs);
        g.Initializer.Clear();
        g.Initializer.AddRange(initializers);
        g.ValueInfo.Clear();
        g.ValueInfo.AddRange(valueInfo);
        g.Output.Clear();
        g.Output.AddRange(fetch.Select(t => new ValueInfoProto { Name = t }));
        graph.Invalidate();
        return graph;
    }

    // One row's value of a kept tensor: its bytes as ONNX Runtime wrote them.
    private sealed record KeptTensor(TensorElementType Type, long[] Shape, byte[] Bytes)
    {
        public OrtValue ToOrtValue()
        {
            var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, Type, Shape);
            Bytes.CopyTo(value.GetTensorMutableRawData());
            return value;
        }
    }
}
