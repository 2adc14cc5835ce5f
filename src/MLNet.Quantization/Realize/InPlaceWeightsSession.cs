using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// A session whose large initializers ONNX Runtime reads in place, from the graph's own memory, instead of from a
/// serialized copy of the model.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// - **Why:** a session loaded from bytes costs the serialization (a fresh array the size of the weights) and ONNX
///   Runtime's parse, which copies every initializer again: 0.5–1 s a session on all-MiniLM-L6-v2 (90 MB), and `Fit`
///   opens 5 to 16 of them (docs/benchmarks.md).
/// - **How:** each initializer of at least `MinimumBytes` that the graph optimizations pass on without reading it
///   (`ReadInPlace`) is pinned and handed to ONNX Runtime as a shared initializer (`SessionOptions.AddInitializer`,
///   which uses the buffer as it is). The model that ONNX Runtime parses, from bytes, keeps a stub of it: its name,
///   type and shape, with its data "external" at the working folder (`.`). ONNX Runtime requires an external-data path
///   to exist and to lie within the working folder, but never reads this one, since the shared initializer takes the
///   stub's place. Nothing is written to disk.
/// - **Lifetime:** the session holds the pinned arrays (ByteStrings never change, so the graph may) and releases them
///   when it is disposed.
/// - **Same kernels:** with no prepacked-weights container, ONNX Runtime prepacks shared initializers per session, as
///   it does those of a session loaded from bytes (a container would make it refuse the integer convolution, which
///   cannot share its packed weights).
/// - **Left as they are:** graphs with subgraphs, initializers whose data is not raw bytes of the size their shape
///   says, and every stub that ONNX Runtime refuses (where an optimization reads a weight handed over all the same,
///   say): `Sessions.Create` then loads the model from bytes.
/// ]]></format>
/// </remarks>
internal sealed class InPlaceWeightsSession : InferenceSession
{
    /// <summary>Initializers smaller than this stay in the model (shape constants and the like).</summary>
    public const int MinimumBytes = 1024;

    /// <summary>
    /// The stubs' external-data location: ONNX Runtime checks that it exists and lies within the working folder (for
    /// a model loaded from bytes), and never reads it. The working folder itself always does.
    /// </summary>
    private const string ExistingPath = ".";

    // Null only while the base constructor runs: should it throw, a finalizer may still see this object.
    private readonly Resources? _resources;

    private InPlaceWeightsSession(byte[] stub, Resources resources)
        : base(stub, resources.Options) => _resources = resources;

    /// <summary>The initializers read in place.</summary>
    public IReadOnlyList<string> InPlace => _resources?.Names ?? (IReadOnlyList<string>)Array.Empty<string>();

    /// <summary>
    /// A session over <paramref name="model"/>, or null where no initializer can be read in place: load it from bytes
    /// then. Throws ONNX Runtime's exception where it cannot load the stub.
    /// </summary>
    public static InferenceSession? TryCreate(ModelProto model, int? threads)
    {
        if (model.Graph.Node.Any(n => n.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0))) return null;
        var readers = Readers(model.Graph);
        var handedOver = model.Graph.Initializer.Where(t => readers.GetValueOrDefault(t.Name) && CanPin(t))
            .Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        if (handedOver.Count == 0) return null; // nothing to gain: no copy of the model is made
        var stub = model.Clone();
        var resources = new Resources(Sessions.Options(threads));
        try
        {
            foreach (var tensor in stub.Graph.Initializer.Where(t => handedOver.Contains(t.Name)))
            {
                var (handle, value) = Pin(tensor);
                resources.Add(tensor.Name, handle, value);
                long length = tensor.RawData.Length;
                tensor.RawData = ByteString.Empty;
                tensor.DataLocation = TensorProto.Types.DataLocation.External;
                tensor.ExternalData.Clear();
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = ExistingPath });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }
            return new InPlaceWeightsSession(stub.ToByteArray(), resources);
        }
        catch
        {
            resources.Dispose();
            throw;
        }
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) _resources?.Dispose();
        else _resources?.Unpin(); // from a finalizer: the values and options finalize themselves
    }

    /// <summary>
    /// The inputs that ONNX Runtime's graph optimizations pass on by name, never reading the values: a MatMul's or Gemm's
    /// weights, an embedding table, a DequantizeLinear's integers (its scale and zero point are small and stay). A Conv's
    /// weights, read when they are reordered or folded, are not among them.
    /// </summary>
    private static readonly HashSet<(string Op, int Input)> ReadInPlace = new()
    {
        ("MatMul", 1), ("Gemm", 1), ("Gather", 0), ("DequantizeLinear", 0), ("MatMulInteger", 1), ("QLinearMatMul", 3),
    };

    // Per tensor read by a node: whether every read is one of ReadInPlace. A graph output counts as another read, and a
    // graph input (an initializer that the caller may override, in IR versions before 4) is never handed over.
    private static Dictionary<string, bool> Readers(GraphProto graph)
    {
        var readers = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
            for (int i = 0; i < node.Input.Count; i++)
                readers[node.Input[i]] = readers.GetValueOrDefault(node.Input[i], true) && ReadInPlace.Contains((node.OpType, i));
        foreach (var value in graph.Output.Concat(graph.Input)) readers[value.Name] = false;
        return readers;
    }

    // Whether the tensor's raw bytes are an array of at least MinimumBytes, of the size its shape says.
    private static bool CanPin(TensorProto tensor)
    {
        var data = tensor.RawData;
        if (data.Length < MinimumBytes || tensor.DataLocation == TensorProto.Types.DataLocation.External
            || ElementSize(tensor.DataType) is not { } size || !MemoryMarshal.TryGetArray(data.Memory, out var segment) || segment.Array is null)
            return false;
        long count = 1;
        foreach (long d in tensor.Dims) count *= d;
        return count * size == data.Length;
    }

    // The tensor's raw bytes (CanPin) pinned and wrapped as a value.
    private static (GCHandle Handle, OrtValue Value) Pin(TensorProto tensor)
    {
        MemoryMarshal.TryGetArray(tensor.RawData.Memory, out var segment);
        var handle = GCHandle.Alloc(segment.Array!, GCHandleType.Pinned);
        try
        {
            var address = handle.AddrOfPinnedObject() + segment.Offset;
            return (handle, OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, (TensorElementType)tensor.DataType,
                tensor.Dims.ToArray(), address, tensor.RawData.Length));
        }
        catch
        {
            handle.Free();
            throw;
        }
    }

    // Bytes per element of the numeric ONNX types (whose numbers ONNX Runtime's TensorElementType shares); null otherwise.
    private static int? ElementSize(int dataType) => (TensorProto.Types.DataType)dataType switch
    {
        TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Int32 or TensorProto.Types.DataType.Uint32 => 4,
        TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Uint64 => 8,
        TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16 or TensorProto.Types.DataType.Int16
            or TensorProto.Types.DataType.Uint16 => 2,
        TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8 or TensorProto.Types.DataType.Bool => 1,
        _ => null,
    };

    // What the session borrows: released after it, in one place.
    private sealed class Resources : IDisposable
    {
        private readonly List<GCHandle> _handles = new();
        private readonly List<OrtValue> _values = new();

        public Resources(SessionOptions options) => Options = options;

        public List<string> Names { get; } = new();

        public SessionOptions Options { get; }

        public void Add(string name, GCHandle handle, OrtValue value)
        {
            _handles.Add(handle);
            _values.Add(value);
            Names.Add(name);
            Options.AddInitializer(name, value);
        }

        public void Dispose()
        {
            Options.Dispose();
            foreach (var value in _values) value.Dispose();
            _values.Clear();
            Unpin();
        }

        public void Unpin()
        {
            foreach (var handle in _handles) handle.Free();
            _handles.Clear();
        }
    }
}
