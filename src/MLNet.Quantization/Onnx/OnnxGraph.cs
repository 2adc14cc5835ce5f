using Google.Protobuf;
using Onnx;

namespace MLNet.Quantization.Onnx;

/// <summary>
/// The one facade over the ONNX protobuf classes. Everything else in the library edits models through it,
/// so the protobuf library could be swapped for generated classes without touching the pipeline.
/// </summary>
/// <remarks>
/// Lookups go through an index (producer per tensor, readers per tensor, initializers and used names), built on first
/// use and kept up to date by the edit methods (<see cref="AddNode"/>, <see cref="RemoveNode"/>, <see cref="SetInput"/>,
/// <see cref="SetOutput"/>, <see cref="AddInitializer"/>...), so that annotating and realizing stay linear in the
/// node count. Code that edits <see cref="Graph"/> directly must call <see cref="Invalidate"/> afterwards.
/// </remarks>
internal sealed class OnnxGraph
{
    private GraphIndex? _index;

    // Set on a view over a subgraph: the model it belongs to, which names its new tensors.
    private OnnxGraph? _outer;

    /// <summary>The ONNX default operator domain.</summary>
    public const string DefaultDomain = "";

    private OnnxGraph(ModelProto model) => Model = model;

    /// <summary>
    /// A view over <paramref name="subgraph"/> (an If branch, a Loop or Scan body) of <paramref name="outer"/>, for edits
    /// inside it: its nodes, initializers and sort are the subgraph's, while new names come from the whole model, so that
    /// none shadows a name of another scope. Tensors it reads but does not define come from the outer scopes.
    /// </summary>
    public static OnnxGraph Subgraph(GraphProto subgraph, OnnxGraph outer) =>
        new(new ModelProto { Graph = subgraph, IrVersion = outer.Model.IrVersion }) { _outer = outer };

    public ModelProto Model { get; }

    public GraphProto Graph => Model.Graph;

    /// <summary>Parses a model file; a missing or unreadable file gets an exception that names it.</summary>
    public static OnnxGraph Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"The ONNX model file '{path}' does not exist.", path);
        var graph = Parse(File.ReadAllBytes(path), path);
        graph.InlineExternalData(path);
        return graph;
    }

    // Initializers may keep their values in files beside the model (ONNX external data): read them in, so that the
    // graph is self-contained from here on. A missing or short file is an error naming the model, tensor and file.
    private void InlineExternalData(string modelPath)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(modelPath)) ?? ".";
        foreach (var tensor in Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External))
        {
            var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
            if (!entries.TryGetValue("location", out var location) || location.Length == 0)
                throw new InvalidDataException($"'{modelPath}': initializer '{tensor.Name}' keeps its data externally but names no location.");
            var file = System.IO.Path.GetFullPath(System.IO.Path.Combine(directory, location));
            if (!File.Exists(file))
                throw new InvalidDataException($"'{modelPath}': initializer '{tensor.Name}' keeps its data in '{file}', which does not exist.");
            long offset = entries.TryGetValue("offset", out var o) && long.TryParse(o, out var parsedOffset) ? parsedOffset : 0;
            long size = new FileInfo(file).Length;
            long length = entries.TryGetValue("length", out var l) && long.TryParse(l, out var parsedLength) ? parsedLength : size - offset;
            if (offset < 0 || length < 0 || offset + length > size || length > int.MaxValue)
                throw new InvalidDataException(
                    $"'{modelPath}': initializer '{tensor.Name}' asks for bytes {offset}..{offset + length} of '{file}', which has {size}.");
            var bytes = new byte[length];
            using (var stream = File.OpenRead(file))
            {
                stream.Seek(offset, SeekOrigin.Begin);
                stream.ReadExactly(bytes);
            }
            tensor.RawData = Google.Protobuf.ByteString.CopyFrom(bytes);
            tensor.ExternalData.Clear();
            tensor.DataLocation = TensorProto.Types.DataLocation.Default;
        }
    }

    /// <summary>Parses model bytes; <paramref name="origin"/> names them in errors.</summary>
    public static OnnxGraph Parse(byte[] bytes, string origin)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{origin}' is not a valid ONNX model: {e.Message}", e);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new InvalidDataException($"'{origin}' is not a valid ONNX model: it has no graph nodes.");
        return new OnnxGraph(model);
    }

    public OnnxGraph Clone() => new(Model.Clone());

    public byte[] ToBytes() => Model.ToByteArray();

    /// <summary>The opset of the default domain.</summary>
    public long Opset
    {
        get => Model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;
        set
        {
            var entry = Model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx");
            if (entry is null)
                Model.OpsetImport.Add(new OperatorSetIdProto { Domain = DefaultDomain, Version = value });
            else
                entry.Version = value;
        }
    }

    /// <summary>Names of the graph's real inputs (initializers listed as inputs, as IR 3 does, excluded).</summary>
    public IReadOnlyList<ValueInfoProto> RealInputs()
    {
        var inits = new HashSet<string>(Graph.Initializer.Select(i => i.Name));
        return Graph.Input.Where(i => !inits.Contains(i.Name)).ToList();
    }

    public TensorProto? FindInitializer(string name) => Index.Initializers.GetValueOrDefault(name);

    /// <summary>Finds the constant value of a tensor: an initializer or the output of a <c>Constant</c> node.</summary>
    public TensorProto? FindConstant(string name)
    {
        var init = FindInitializer(name);
        if (init is not null)
            return init;
        var node = Producer(name);
        return node is { OpType: "Constant", Output.Count: 1 } ? node.Attribute.FirstOrDefault(a => a.Name == "value")?.T : null;
    }

    /// <summary>The node that produces <paramref name="tensor"/>, or null for graph inputs and initializers.</summary>
    public NodeProto? Producer(string tensor) => Index.Producers.GetValueOrDefault(tensor);

    /// <summary>The nodes that read <paramref name="tensor"/> (each once, however many of its inputs read it).</summary>
    public IReadOnlyList<NodeProto> Consumers(string tensor) =>
        Index.Consumers.TryGetValue(tensor, out var readers) ? readers.Distinct().ToList() : Array.Empty<NodeProto>();

    /// <summary>The node named <paramref name="name"/> (see <see cref="Label"/>), or null.</summary>
    public NodeProto? FindNode(string name) => Index.ByName.GetValueOrDefault(name);

    public bool IsGraphOutput(string tensor) => Graph.Output.Any(o => o.Name == tensor);

    /// <summary>
    /// Whether <paramref name="node"/> clamps at zero from below and nowhere under it: a Relu, or a Clip whose minimum is
    /// the constant 0 (its maximum, if any, constant too). Quantizing its output to uint8 with zero point 0 and a range
    /// no wider than the clamp reproduces it exactly, so such a node can be folded into a QuantizeLinear.
    /// </summary>
    public bool IsZeroClamp(NodeProto node)
    {
        if (node.OpType == "Relu") return true;
        if (node.OpType != "Clip" || node.Input.Count < 2 || node.Input[1].Length == 0) return false;
        var min = FindConstant(node.Input[1]);
        if (min is not { DataType: Tensors.Float } || Tensors.ReadFloats(min) is not [0f]) return false;
        if (node.Input.Count < 3 || node.Input[2].Length == 0) return true;
        return FindConstant(node.Input[2]) is { DataType: Tensors.Float } max && Tensors.ReadFloats(max) is [>= 0f];
    }

    /// <summary>
    /// The node that computes <paramref name="tensor"/>, seen through a zero clamp (Relu, Clip from 0), which the
    /// quantization folds into the uint8 range; <paramref name="computed"/> is the tensor that node writes.
    /// </summary>
    public NodeProto? ProducerThroughClamp(string tensor, out string computed)
    {
        computed = tensor;
        var producer = Producer(tensor);
        if (producer is not null && IsZeroClamp(producer))
        {
            computed = producer.Input[0];
            producer = Producer(computed);
        }
        return producer;
    }

    /// <summary>
    /// The readers of <paramref name="tensor"/>, with a zero clamp among them replaced by its own readers, each with the
    /// tensor it reads (the clamp's output, for those behind one).
    /// </summary>
    public IEnumerable<(NodeProto Reader, string Reads)> ReadsThroughClamp(string tensor) =>
        Consumers(tensor).SelectMany(r => IsZeroClamp(r) ? Consumers(r.Output[0]).Select(c => (c, r.Output[0])) : new[] { (r, tensor) });

    /// <summary>The readers of <paramref name="tensor"/>, with a zero clamp among them replaced by its own readers.</summary>
    public IReadOnlyList<NodeProto> ConsumersThroughClamp(string tensor) => ReadsThroughClamp(tensor).Select(r => r.Reader).ToList();

    /// <summary>Whether a subgraph (the body of an If, Loop or Scan) reads <paramref name="tensor"/> from the outer scope.</summary>
    public bool IsReadBySubgraph(string tensor) => Index.SubgraphReads.Contains(tensor);

    /// <summary>The outer-scope tensors that the subgraphs of <paramref name="node"/> read.</summary>
    public static HashSet<string> ImplicitInputs(NodeProto node)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var attribute in node.Attribute)
        {
            if (attribute.G is not null) Collect(attribute.G, result);
            foreach (var g in attribute.Graphs) Collect(g, result);
        }
        return result;

        static void Collect(GraphProto g, HashSet<string> result)
        {
            var local = new HashSet<string>(g.Input.Select(i => i.Name).Concat(g.Initializer.Select(i => i.Name)).Concat(g.Node.SelectMany(n => n.Output)));
            foreach (var n in g.Node)
            {
                foreach (var input in n.Input)
                    if (input.Length > 0 && !local.Contains(input)) result.Add(input);
                foreach (var inner in ImplicitInputs(n))
                    if (!local.Contains(inner)) result.Add(inner);
            }
        }
    }

    /// <summary>A tensor name not yet used in the graph, built from <paramref name="stem"/>.</summary>
    public string UniqueName(string stem)
    {
        if (_outer is not null) return _outer.UniqueName(stem);
        var used = Index.Names;
        string name = stem;
        for (int i = 1; used.Contains(name); i++) name = $"{stem}_{i}";
        used.Add(name); // reserved: two calls never return the same name
        return name;
    }

    // Every name of the graph and of its subgraphs, at any depth: a new name must shadow none.
    private HashSet<string> AllNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        Collect(Graph, names);
        return names;

        static void Collect(GraphProto g, HashSet<string> names)
        {
            foreach (var n in g.Node)
            {
                names.UnionWith(n.Input);
                names.UnionWith(n.Output);
                if (n.Name.Length > 0) names.Add(n.Name);
                foreach (var attribute in n.Attribute)
                {
                    if (attribute.G is not null) Collect(attribute.G, names);
                    foreach (var inner in attribute.Graphs) Collect(inner, names);
                }
            }
            names.UnionWith(g.Initializer.Select(i => i.Name));
            names.UnionWith(g.Input.Select(i => i.Name));
            names.UnionWith(g.Output.Select(i => i.Name));
        }
    }

    /// <summary>A readable label for a node in error messages: its name, else its op type and first output.</summary>
    public static string Label(NodeProto node) => node.Name.Length > 0 ? node.Name : $"{node.OpType}->{node.Output.FirstOrDefault()}";

    public static NodeProto MakeNode(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    public static AttributeProto IntAttribute(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public string? GetMetadata(string key) => Model.MetadataProps.FirstOrDefault(p => p.Key == key)?.Value;

    public void SetMetadata(string key, string value)
    {
        var entry = Model.MetadataProps.FirstOrDefault(p => p.Key == key);
        if (entry is null)
            Model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        else
            entry.Value = value;
    }

    /// <summary>Orders the nodes topologically, keeping the current order wherever it is already valid.</summary>
    public void SortTopologically()
    {
        var available = new HashSet<string>(Graph.Input.Select(i => i.Name)) { "" };
        available.UnionWith(Graph.Initializer.Select(i => i.Name));
        var pending = Graph.Node.ToList();
        var produced = new HashSet<string>(pending.SelectMany(n => n.Output));
        var sorted = new List<NodeProto>(pending.Count);
        while (pending.Count > 0)
        {
            int before = sorted.Count;
            for (int i = 0; i < pending.Count; i++)
            {
                var node = pending[i];
                // In a subgraph, a tensor that no node of it writes comes from an outer scope.
                if (node.Input.All(t => available.Contains(t) || (_outer is not null && !produced.Contains(t)))
                    && ImplicitInputs(node).All(t => available.Contains(t) || !produced.Contains(t)))
                {
                    sorted.Add(node);
                    available.UnionWith(node.Output);
                    pending.RemoveAt(i);
                    i--;
                }
            }
            if (sorted.Count == before)
                throw new InvalidOperationException(
                    $"The graph has a cycle or reads an undefined tensor at node '{Label(pending[0])}' " +
                    $"(inputs: {string.Join(", ", pending[0].Input)}).");
        }
        Graph.Node.Clear();
        Graph.Node.AddRange(sorted);
        Invalidate();
    }

    // ---- Edits: each keeps the index current. ----

    /// <summary>Appends <paramref name="node"/> (built with <see cref="MakeNode"/>; its inputs and outputs final).</summary>
    public void AddNode(NodeProto node)
    {
        Graph.Node.Add(node);
        if (_index is null) return;
        foreach (var output in node.Output) if (output.Length > 0) _index.Producers[output] = node;
        foreach (var input in node.Input) _index.AddReader(input, node);
        _index.Names.UnionWith(node.Input.Concat(node.Output));
        _index.SubgraphReads.UnionWith(ImplicitInputs(node));
        if (node.Name.Length > 0) { _index.Names.Add(node.Name); _index.ByName.TryAdd(node.Name, node); }
    }

    public void RemoveNode(NodeProto node)
    {
        Graph.Node.Remove(node);
        if (_index is null) return;
        foreach (var output in node.Output)
            if (_index.Producers.TryGetValue(output, out var p) && p == node) _index.Producers.Remove(output);
        foreach (var input in node.Input) _index.RemoveReader(input, node);
        if (_index.ByName.TryGetValue(node.Name, out var named) && named == node) _index.ByName.Remove(node.Name);
    }

    /// <summary>Makes input <paramref name="index"/> of <paramref name="node"/> read <paramref name="tensor"/>.</summary>
    public void SetInput(NodeProto node, int index, string tensor)
    {
        _index?.RemoveReader(node.Input[index], node);
        node.Input[index] = tensor;
        _index?.AddReader(tensor, node);
        _index?.Names.Add(tensor);
    }

    public void AddInput(NodeProto node, string tensor)
    {
        node.Input.Add(tensor);
        _index?.AddReader(tensor, node);
        _index?.Names.Add(tensor);
    }

    public void RemoveInputAt(NodeProto node, int index)
    {
        _index?.RemoveReader(node.Input[index], node);
        node.Input.RemoveAt(index);
    }

    /// <summary>Makes output <paramref name="index"/> of <paramref name="node"/> write <paramref name="tensor"/>.</summary>
    public void SetOutput(NodeProto node, int index, string tensor)
    {
        if (_index is not null && _index.Producers.TryGetValue(node.Output[index], out var p) && p == node)
            _index.Producers.Remove(node.Output[index]);
        node.Output[index] = tensor;
        if (_index is null) return;
        _index.Producers[tensor] = node;
        _index.Names.Add(tensor);
    }

    public void AddInitializer(TensorProto tensor)
    {
        Graph.Initializer.Add(tensor);
        if (_index is null) return;
        _index.Initializers[tensor.Name] = tensor;
        _index.Names.Add(tensor.Name);
    }

    public void RemoveInitializer(TensorProto tensor)
    {
        Graph.Initializer.Remove(tensor);
        if (_index is not null && _index.Initializers.TryGetValue(tensor.Name, out var t) && t == tensor) _index.Initializers.Remove(tensor.Name);
    }

    /// <summary>Drops the index after an edit made on <see cref="Graph"/> directly; the next lookup rebuilds it.</summary>
    public void Invalidate() => _index = null;

    /// <summary>Whether the index agrees with the graph as it is (for tests).</summary>
    internal bool IndexIsCurrent()
    {
        if (_index is null) return true;
        var fresh = new GraphIndex(this);
        return fresh.Producers.Count == _index.Producers.Count && fresh.Producers.All(kv => _index.Producers.GetValueOrDefault(kv.Key) == kv.Value)
            && fresh.Initializers.Count == _index.Initializers.Count && fresh.Initializers.All(kv => _index.Initializers.GetValueOrDefault(kv.Key) == kv.Value)
            && fresh.Consumers.Where(kv => kv.Value.Count > 0).All(kv => _index.Consumers.TryGetValue(kv.Key, out var r) && r.ToHashSet().SetEquals(kv.Value))
            && _index.Consumers.Where(kv => kv.Value.Count > 0).All(kv => fresh.Consumers.ContainsKey(kv.Key))
            && _index.Names.IsSupersetOf(fresh.Names);
    }

    private GraphIndex Index => _index ??= new GraphIndex(this);

    private sealed class GraphIndex
    {
        public GraphIndex(OnnxGraph graph)
        {
            foreach (var node in graph.Graph.Node)
            {
                foreach (var output in node.Output) if (output.Length > 0) Producers.TryAdd(output, node);
                foreach (var input in node.Input) AddReader(input, node);
                if (node.Name.Length > 0) ByName.TryAdd(node.Name, node);
                SubgraphReads.UnionWith(ImplicitInputs(node));
            }
            foreach (var node in graph.Graph.Node) ByLabel(node);
            foreach (var tensor in graph.Graph.Initializer) Initializers.TryAdd(tensor.Name, tensor);
            Names = graph.AllNames();
        }

        // Nodes without a name are found by their label (op type and first output), as error messages name them.
        private void ByLabel(NodeProto node)
        {
            if (node.Name.Length == 0) ByName.TryAdd(Label(node), node);
        }

        public Dictionary<string, NodeProto> Producers { get; } = new(StringComparer.Ordinal);

        /// <summary>Readers per tensor, a node once per input that reads it.</summary>
        public Dictionary<string, List<NodeProto>> Consumers { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, TensorProto> Initializers { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, NodeProto> ByName { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Names { get; }

        /// <summary>Outer-scope tensors that subgraphs read (an If's branches, a Loop's body). Kept when a node goes.</summary>
        public HashSet<string> SubgraphReads { get; } = new(StringComparer.Ordinal);

        public void AddReader(string tensor, NodeProto node)
        {
            if (tensor.Length == 0) return;
            if (!Consumers.TryGetValue(tensor, out var readers)) Consumers[tensor] = readers = new List<NodeProto>(2);
            readers.Add(node);
        }

        public void RemoveReader(string tensor, NodeProto node)
        {
            if (Consumers.TryGetValue(tensor, out var readers)) readers.Remove(node);
        }
    }
}
