using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Realize;

/// <summary>
/// Runs the float model beside a probe (a realized or simulated model whose dequantized tensors are read as extra
/// outputs) and the deployed model (the realized model exactly as ML.NET runs it, with every fusion intact) over the
/// measurement rows: the SQNR of every quantized tensor from the probe (signal energy over the energy of the
/// difference, in dB), and the mean output cosine from the deployed model. Extra outputs stop ONNX Runtime from fusing
/// the QDQ pairs around them, so the probe alone would measure an unfused model that no user runs. Only sums are kept,
/// so memory does not grow with the rows; the float outputs that the fallback keeps for its rounds are bounded by
/// <see cref="FloatOutputs"/>.
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

    /// <summary>
    /// The worst output's mean over rows of the cosine between the float and the deployed model's values (see
    /// <see cref="OutputComparisons"/>; for one output, its mean cosine).
    /// </summary>
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
            var producer = model.ProducerThroughClamp(kv.Key, out _);
            double upstream = producer?.Input.Where(SqnrDb.ContainsKey).Select(i => Relative(SqnrDb[i])).DefaultIfEmpty(0).Max() ?? 0;
            return Relative(kv.Value) - upstream;
        });
    }

    /// <summary>The quantized tensors by <see cref="AddedNoise"/>, the noisiest first (ties by name).</summary>
    public IEnumerable<string> NoisiestFirst(OnnxGraph model) =>
        AddedNoise(model).OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key);

    /// <summary>
    /// Measures SQNR with <paramref name="probe"/> and the output cosine with <paramref name="deployed"/>; the float
    /// model's outputs on each row are kept in <paramref name="floatOutputs"/> when it is given, for
    /// <see cref="DeployedCosine"/> to reuse.
    /// </summary>
    /// <remarks>
    /// A tensor whose readers clamp it (<see cref="ActivationMark.ReadersClamp"/> in <paramref name="plan"/>) is compared
    /// within the clamp: its quantized range stops there, and past it the readers see no difference.
    /// </remarks>
    public static ErrorMeasurement Measure(OnnxGraph prepared, OnnxGraph probe, IReadOnlyDictionary<string, string> dequantized,
        OnnxGraph deployed, IDataView data, QuantizationSettings settings, QuantizationPlan plan, FloatOutputs? floatOutputs = null)
    {
        var clamps = plan.ReaderClamps();
        var inputs = prepared.RealInputs().Select(i => i.Name).ToHashSet();
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        var tensors = dequantized.Keys.Where(t => !inputs.Contains(t)).ToArray();
        using var floatSession = Sessions.Create(prepared, tensors, "the float model", RowReader.SessionThreads);
        using var probeSession = Sessions.Create(probe, dequantized.Values, "the quantized model", RowReader.SessionThreads);
        // The prepared model's outputs as extra outputs: those that the deployed model no longer declares (a stand-in,
        // taken out of the model Fit returns: StandInOutputs) are then fetched as Fit fetched them; Create skips the others.
        using var deployedSession = Sessions.Create(deployed, outputs, "the quantized model", RowReader.SessionThreads);
        var signal = dequantized.Keys.ToDictionary(t => t, _ => 0.0);
        var noise = dequantized.Keys.ToDictionary(t => t, _ => 0.0);
        var cosines = new OutputComparisons(outputs);
        using var runOptions = new RunOptions();
        var floatNames = outputs.Concat(tensors).Distinct().ToArray();
        var probeNames = dequantized.Values.Distinct().ToArray();
        long rows = RowReader.ForEachInOrder(floatSession, data, settings, 3, settings.Rows.IsMeasurementRow,
            (names, values) => new RowResults(floatSession.Run(runOptions, names, values, floatNames), deployedSession.Run(runOptions, names, values, outputs),
                probeNames.Length == 0 ? null : probeSession.Run(runOptions, names, values, probeNames)),
            (_, names, values, results) =>
        {
            var reference = results[0];
            floatOutputs?.Add(reference, outputs.Length);
            cosines.Add(reference, results[1]);
            if (probeNames.Length == 0) return;
            var quantized = results[2];
            foreach (var (tensor, target) in dequantized)
            {
                var x = inputs.Contains(tensor) ? values[Array.IndexOf(names, tensor)].GetTensorDataAsSpan<float>()
                    : reference[Array.IndexOf(floatNames, tensor)].GetTensorDataAsSpan<float>();
                var y = quantized[Array.IndexOf(probeNames, target)].GetTensorDataAsSpan<float>();
                double s = 0, e = 0;
                if (clamps.TryGetValue(tensor, out var clamp))
                {
                    for (int i = 0; i < x.Length; i++)
                    {
                        double a = Math.Clamp(x[i], clamp.Low, clamp.High), b = Math.Clamp(y[i], clamp.Low, clamp.High), d = a - b;
                        s += a * a;
                        e += d * d;
                    }
                }
                else
                {
                    for (int i = 0; i < x.Length; i++) { s += (double)x[i] * x[i]; double d = x[i] - y[i]; e += d * d; }
                }
                signal[tensor] += s;
                noise[tensor] += e;
            }
        }, results => results.Bytes);
        var sqnr = dequantized.Keys.ToDictionary(t => t, t => noise[t] == 0 ? double.PositiveInfinity : 10 * Math.Log10(signal[t] / noise[t]));
        return new ErrorMeasurement(sqnr, cosines.Worst, rows);
    }

    /// <summary>
    /// The mean output cosine of <paramref name="deployed"/> (run as ML.NET runs it) to the float model's outputs on the
    /// measurement rows: those that <see cref="Measure"/> kept, or, when they outgrew their budget, the float model's
    /// run again beside it.
    /// </summary>
    public static double DeployedCosine(OnnxGraph prepared, OnnxGraph deployed, FloatOutputs floatOutputs,
        IDataView data, QuantizationSettings settings)
    {
        var outputs = prepared.Graph.Output.Select(o => o.Name).ToArray();
        using var session = Sessions.Create(deployed, outputs, "the quantized model", RowReader.SessionThreads); // as in Measure
        using var floatSession = floatOutputs.Complete ? null : Sessions.Create(prepared, Array.Empty<string>(), "the float model", RowReader.SessionThreads);
        using var runOptions = new RunOptions();
        var cosines = new OutputComparisons(outputs);
        int index = 0;
        RowReader.ForEachInOrder(session, data, settings, 3, settings.Rows.IsMeasurementRow,
            (names, values) => new RowResults(session.Run(runOptions, names, values, outputs),
                floatSession?.Run(runOptions, names, values, outputs)),
            (_, _, _, results) =>
            {
                if (floatSession is not null) cosines.Add(results[1], results[0]);
                else cosines.Add(floatOutputs[index++], results[0]);
            }, results => results.Bytes);
        return cosines.Worst;
    }
}
