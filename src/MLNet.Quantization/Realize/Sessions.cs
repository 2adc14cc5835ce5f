using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>ONNX Runtime sessions over graphs of <c>Fit</c>, and the output comparison the measuring steps share.</summary>
internal static class Sessions
{
    private static long _opened;

    /// <summary>Sessions opened in this process so far: the benchmarks count them per <c>Fit</c>, and tests that a step opens none.</summary>
    public static long Opened => Interlocked.Read(ref _opened);

    /// <summary>
    /// A session over <paramref name="graph"/> with <paramref name="extraOutputs"/> added as graph outputs (none: the
    /// graph exactly as ML.NET will run it, every fusion intact). Its large weights are read in place where
    /// ONNX Runtime allows it (<see cref="InPlaceWeightsSession"/>).
    /// </summary>
    public static InferenceSession Create(OnnxGraph graph, IEnumerable<string> extraOutputs, string description, int? threads = null)
    {
        var probe = graph;
        var extra = extraOutputs.Where(n => !graph.IsGraphOutput(n) && graph.Producer(n) is not null).Distinct().ToList();
        if (extra.Count > 0)
        {
            probe = graph.Clone();
            foreach (var name in extra) probe.Graph.Output.Add(new ValueInfoProto { Name = name });
        }
        try
        {
            var session = InPlace(probe, threads) ?? ReadWhole(probe, threads);
            Interlocked.Increment(ref _opened);
            return session;
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidOperationException($"ONNX Runtime cannot load {description}: {Reason(e)}", e);
        }
    }

    /// <summary>
    /// ONNX Runtime's reason, without its error-code tag and its "Load model from PATH failed:" prefix: the path is that
    /// of a temp copy the user never made, and the message that carries the reason names the user's file.
    /// </summary>
    public static string Reason(OnnxRuntimeException e) =>
        System.Text.RegularExpressions.Regex.Replace(e.Message, @"^(\[ErrorCode:\w+\]\s*)?(Load model from \S+ failed:\s*)?", "");

    // Null where the model cannot be loaded so; an error is then the plain load's to report.
    private static InferenceSession? InPlace(OnnxGraph graph, int? threads)
    {
        try
        {
            return InPlaceWeightsSession.TryCreate(graph.Model, threads);
        }
        catch (OnnxRuntimeException)
        {
            return null;
        }
    }

    /// <summary>
    /// The options of every session <c>Fit</c> opens: <paramref name="threads"/> intra-op threads (ONNX Runtime's default
    /// where null), and only errors logged. ONNX Runtime otherwise writes its warnings about the user's graph to stderr
    /// once per session, and <c>Fit</c> opens many: BlazeFace's unread folded constants printed the same three lines
    /// for every one (docs/benchmarks.md, sixteenth session). Its errors still reach the exceptions.
    /// </summary>
    public static SessionOptions Options(int? threads)
    {
        var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (threads is { } t) options.IntraOpNumThreads = t;
        return options;
    }

    // Through a file that is deleted once ONNX Runtime has read it: serialized to an array, a model such as ResNet18's
    // float one (whose Conv weights cannot be read in place) left 45-63 MB of garbage per session, which set the
    // peak memory of a tuned Fit (docs/benchmarks.md, issue 17). Where the temp folder cannot be written, from an array.
    private static InferenceSession ReadWhole(OnnxGraph graph, int? threads)
    {
        using var options = Options(threads);
        TemporaryModelFile file;
        try
        {
            file = new TemporaryModelFile(stream => graph.Model.WriteTo(stream));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new InferenceSession(graph.ToBytes(), options);
        }
        using (file) return new InferenceSession(file.Path, options);
    }
}

/// <summary>
/// Per model output, two runs compared row by row: the mean and worst cosine (<see cref="OutputCosine"/>: across the
/// rows for a float output of one value per row, by equality for an integer or boolean one), the relative error over
/// all rows (for an integer or boolean output, the fraction of values that differ) and the values made non-finite.
/// <see cref="Worst"/> is the smallest of the outputs' mean cosines, so that on a model with several outputs (a
/// detector's scores and boxes, a segmenter's side outputs) every output must be right, not only their concatenation.
/// </summary>
internal sealed class OutputComparisons
{
    private readonly IReadOnlyList<string> _names;
    private readonly OutputSums?[] _outputs;

    /// <summary>Compares the outputs named <paramref name="names"/>, in the order the runs give them.</summary>
    public OutputComparisons(IReadOnlyList<string> names)
    {
        _names = names;
        _outputs = new OutputSums?[names.Count];
    }

    public long Rows { get; private set; }

    /// <summary>Adds one row: the compared outputs of <paramref name="x"/> (the reference) against those of <paramref name="y"/>.</summary>
    public void Add(IReadOnlyList<OrtValue> x, IReadOnlyList<OrtValue> y)
    {
        for (int k = 0; k < _outputs.Length; k++)
            if (OutputValues.TryRead(x[k], out var u, out bool exact))
            {
                OutputValues.TryRead(y[k], out var v, out _); // a type not compared reads empty, which Add refuses
                Add(k, u, v, exact);
            }
        Rows++;
    }

    /// <summary>Adds one row whose reference outputs were kept (<see cref="OutputValues.Read"/>; null: not compared).</summary>
    public void Add(float[]?[] x, IReadOnlyList<OrtValue> y)
    {
        for (int k = 0; k < _outputs.Length; k++)
            if (x[k] is { } u)
            {
                OutputValues.TryRead(y[k], out var v, out bool exact);
                Add(k, u, v, exact);
            }
        Rows++;
    }

    private void Add(int k, ReadOnlySpan<float> u, ReadOnlySpan<float> v, bool exact)
    {
        if (u.Length != v.Length)
            throw new InvalidOperationException(
                $"Output '{_names[k]}' of the model holds {u.Length} values in the float run and {v.Length} in the quantized one: the two models do not compute the same output.");
        (_outputs[k] ??= new OutputSums(exact)).Add(u, v);
    }

    /// <summary>The smallest per-output mean cosine (1 when no output is compared); NaN without rows.</summary>
    public double Worst => Rows == 0 ? double.NaN
        : _outputs.OfType<OutputSums>().Select(o => o.Cosine.Mean).DefaultIfEmpty(1).Min();

    /// <summary>The smallest per-output worst cosine (1 when no output is compared); NaN without rows.</summary>
    public double WorstRow => Rows == 0 ? double.NaN
        : _outputs.OfType<OutputSums>().Select(o => o.Cosine.Worst).DefaultIfEmpty(1).Min();

    /// <summary>Each compared output's comparison, in output order.</summary>
    public IReadOnlyList<OutputComparison> ToList() =>
        _outputs.Select((o, k) => o?.ToComparison(_names[k])).OfType<OutputComparison>().ToList();

    private sealed class OutputSums
    {
        private readonly bool _exact;
        private double _error, _signal;
        private long _nonFinite;

        public OutputSums(bool exact)
        {
            _exact = exact;
            Cosine = new OutputCosine(exact);
        }

        public OutputCosine Cosine { get; }

        public void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
        {
            Cosine.Add(x, y);
            if (_exact) return;
            for (int i = 0; i < x.Length; i++)
            {
                if (!float.IsFinite(x[i])) continue;
                if (!float.IsFinite(y[i])) { _nonFinite++; continue; }
                double d = x[i] - y[i];
                _error += d * d;
                _signal += (double)x[i] * x[i];
            }
        }

        public OutputComparison ToComparison(string name) => new()
        {
            Name = name, MeanCosine = Cosine.Mean, WorstCosine = Cosine.Worst, NonFiniteIntroduced = _nonFinite, ComparedByEquality = _exact,
            RelativeError = _exact ? Cosine.Differing
                : _signal == 0 ? (_error == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(_error / _signal),
        };
    }
}

/// <summary>The cosine of two vectors given in parts, over the positions where both are finite; 1 for two zero vectors.</summary>
internal struct CosineSum
{
    private double _dot, _a, _b;

    public void Add(ReadOnlySpan<float> u, ReadOnlySpan<float> v)
    {
        for (int i = 0; i < u.Length; i++)
        {
            if (!float.IsFinite(u[i]) || !float.IsFinite(v[i])) continue;
            _dot += u[i] * v[i]; _a += u[i] * u[i]; _b += v[i] * v[i];
        }
    }

    public readonly double Value => _a == 0 || _b == 0 ? (_a == _b ? 1 : 0) : _dot / Math.Sqrt(_a * _b);
}
