using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>ONNX Runtime sessions over graphs of <c>Fit</c>, and the output comparison the measuring steps share.</summary>
internal static class Sessions
{
    /// <summary>
    /// A session over <paramref name="graph"/> with <paramref name="extraOutputs"/> added as graph outputs (none: the
    /// graph exactly as ML.NET will run it, every fusion intact).
    /// </summary>
    public static InferenceSession Create(OnnxGraph graph, IEnumerable<string> extraOutputs, string description)
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
            return new InferenceSession(probe.ToBytes());
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidOperationException($"ONNX Runtime cannot load {description}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The cosine between two runs' first <paramref name="count"/> outputs, float outputs concatenated, over the positions
    /// where both are finite (NaN and infinity have no direction); 1 for two zero vectors.
    /// </summary>
    public static double Cosine(IReadOnlyList<OrtValue> x, IReadOnlyList<OrtValue> y, int count)
    {
        double dot = 0, a = 0, b = 0;
        for (int k = 0; k < count; k++)
        {
            if (x[k].GetTensorTypeAndShape().ElementDataType != TensorElementType.Float) continue;
            var u = x[k].GetTensorDataAsSpan<float>();
            var v = y[k].GetTensorDataAsSpan<float>();
            for (int i = 0; i < u.Length; i++)
            {
                if (!float.IsFinite(u[i]) || !float.IsFinite(v[i])) continue;
                dot += u[i] * v[i]; a += u[i] * u[i]; b += v[i] * v[i];
            }
        }
        return a == 0 || b == 0 ? (a == b ? 1 : 0) : dot / Math.Sqrt(a * b);
    }
}
