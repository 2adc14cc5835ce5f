using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Runs the float and a realized model side by side over measurement rows: the SQNR of every quantized tensor
/// (signal energy over the energy of the difference, in dB) and the mean cosine of the model outputs. Only sums are
/// kept, so memory does not grow with the rows.
/// </summary>
internal sealed class ErrorMeasurement
{
    private ErrorMeasurement(IReadOnlyDictionary<string, double> sqnr, double outputCosine, long rows)
    {
        SqnrDb = sqnr;
        OutputCosine = outputCosine;
        Rows = rows;
    }

    /// <summary>Per quantized activation: 10·log10(Σx² / Σ(x − x̂)²); +∞ where the tensor is reproduced exactly.</summary>
    public IReadOnlyDictionary<string, double> SqnrDb { get; }

    /// <summary>Mean over rows of the cosine between the float and the realized outputs (all outputs concatenated).</summary>
    public double OutputCosine { get; }

    public long Rows { get; }

    /// <summary>
    /// The relative noise each tensor adds itself: its noise-to-signal ratio minus the largest among the quantized inputs
    /// of the node that produces it (through a folded Relu or Clip). The SQNR accumulates everything upstream, so ranking
    /// by it alone would blame the deepest layers for error that starts earlier.
    /// </summary>
    public Dictionary<string, double> AddedNoise(OnnxGraph model)
    {
        static double Relative(double db) => double.IsPositiveInfinity(db) ? 0 : Math.Pow(10, -db / 10);
        return SqnrDb.ToDictionary(kv => kv.Key, kv =>
        {
            var producer = model.Producer(kv.Key);
            if (producer is not null && model.IsZeroClamp(producer)) producer = model.Producer(producer.Input[0]);
            double upstream = producer?.Input.Where(SqnrDb.ContainsKey).Select(i => Relative(SqnrDb[i])).DefaultIfEmpty(0).Max() ?? 0;
            return Relative(kv.Value) - upstream;
        });
    }

    public static ErrorMeasurement Measure(OnnxGraph prepared, OnnxGraph realized, IReadOnlyDictionary<string, string> dequantized,
        IDataView data, QuantizationSettings settings)
    {
        var inputs = prepared.RealInputs().Select(i => i.Name).ToHashSet();
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        var tensors = dequantized.Keys.Where(t => !inputs.Contains(t)).ToArray();
        using var floatSession = Session(prepared, tensors);
        using var realizedSession = Session(realized, dequantized.Values);
        var signal = dequantized.Keys.ToDictionary(t => t, _ => 0.0);
        var noise = dequantized.Keys.ToDictionary(t => t, _ => 0.0);
        double cosines = 0;
        using var runOptions = new RunOptions();
        var floatNames = outputs.Concat(tensors).Distinct().ToArray();
        var realizedNames = outputs.Concat(dequantized.Values).Distinct().ToArray();
        long rows = RowReader.ForEach(floatSession, data, settings, 3, settings.IsMeasurementRow, (_, names, values, feeds) =>
        {
            using var reference = floatSession.Run(runOptions, names, values, floatNames);
            using var quantized = realizedSession.Run(runOptions, names, values, realizedNames);
            double dot = 0, a = 0, b = 0;
            for (int k = 0; k < outputs.Length; k++)
            {
                if (reference[k].GetTensorTypeAndShape().ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float) continue;
                var x = reference[k].GetTensorDataAsSpan<float>();
                var y = quantized[k].GetTensorDataAsSpan<float>();
                for (int i = 0; i < x.Length; i++) { dot += x[i] * y[i]; a += x[i] * x[i]; b += y[i] * y[i]; }
            }
            cosines += a == 0 || b == 0 ? (a == b ? 1 : 0) : dot / Math.Sqrt(a * b);
            foreach (var (tensor, target) in dequantized)
            {
                var x = inputs.Contains(tensor) ? feeds.First(f => f.Name == tensor).Floats
                    : reference[Array.IndexOf(floatNames, tensor)].GetTensorDataAsSpan<float>();
                var y = quantized[Array.IndexOf(realizedNames, target)].GetTensorDataAsSpan<float>();
                double s = 0, e = 0;
                for (int i = 0; i < x.Length; i++) { s += (double)x[i] * x[i]; double d = x[i] - y[i]; e += d * d; }
                signal[tensor] += s;
                noise[tensor] += e;
            }
        });
        var sqnr = dequantized.Keys.ToDictionary(t => t, t => noise[t] == 0 ? double.PositiveInfinity : 10 * Math.Log10(signal[t] / noise[t]));
        return new ErrorMeasurement(sqnr, rows == 0 ? 1 : cosines / rows, rows);
    }

    private static InferenceSession Session(OnnxGraph graph, IEnumerable<string> extraOutputs)
    {
        var probe = graph.Clone();
        foreach (var name in extraOutputs.Where(n => !probe.IsGraphOutput(n) && probe.Producer(n) is not null).Distinct())
            probe.Graph.Output.Add(new ValueInfoProto { Name = name });
        return new InferenceSession(probe.ToBytes());
    }
}
