using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.ML;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization;

/// <summary>
/// What calibration did to each layer, and which layers cost the most: per tensor the method, threshold, scale, zero
/// point, clipped fraction, KL divergence and SQNR, the activation histograms, and the layers ranked by the noise they
/// add themselves (largest first, the main contributors to output error). Write it as one self-contained HTML page or as CSV.
/// </summary>
public sealed class CalibrationReport
{
    private readonly IReadOnlyDictionary<string, Histogram> _histograms;

    private CalibrationReport(IReadOnlyList<TensorReport> tensors, IReadOnlyDictionary<string, Histogram> histograms,
        IReadOnlyList<string> floatNodes, double outputCosine, long rows, RealizationAgreement? agreement)
    {
        Agreement = agreement;
        Tensors = tensors;
        _histograms = histograms;
        FloatNodes = floatNodes;
        OutputCosine = outputCosine;
        Rows = rows;
    }

    /// <summary>Every quantized tensor, in calibration-table order.</summary>
    public IReadOnlyList<TensorReport> Tensors { get; }

    /// <summary>Activations ranked by the noise they add themselves, largest first: the main contributors to output error.</summary>
    public IReadOnlyList<TensorReport> Ranked => Tensors.Where(t => t.Role == TensorRole.Activation && !double.IsNaN(t.AddedNoise))
        .OrderByDescending(t => t.AddedNoise).ToList();

    /// <summary>What the deployment check measured and kept in float (see <see cref="DeploymentCheck"/>); null when it was off.</summary>
    public DeploymentCheck? Deployment { get; private init; }

    /// <summary>The tuner's trials and choice (see <see cref="TuningResult"/>; its <c>WriteCsv</c> writes the table); null when tuning was off.</summary>
    public TuningResult? Tuning { get; private init; }

    /// <summary>Nodes that <c>MinimumOutputCosine</c> kept in float, in the order they were chosen.</summary>
    public IReadOnlyList<string> FloatNodes { get; }

    /// <summary>
    /// Mean cosine of the quantized model's outputs to the float model's on the measured rows, with the quantized model
    /// run exactly as ML.NET runs it (its QDQ pairs fused into int8 kernels by ONNX Runtime, on this machine's CPU); with
    /// several outputs, that of the worst output (each output's per-row cosines averaged, then the smallest taken).
    /// </summary>
    public double OutputCosine { get; }

    /// <summary>The realized-vs-simulated agreement measured at <c>Fit</c> (null in simulated mode).</summary>
    public RealizationAgreement? Agreement { get; }

    /// <summary>Calibration rows measured.</summary>
    public long Rows { get; }

    internal static CalibrationReport Create(OnnxGraph model, QuantizationPlan plan, QuantizationParameters parameters, OnnxGraph realized,
        CalibrationStatistics statistics, IReadOnlyList<string> floatNodes, RealizationAgreement? agreement, IDataView data, QuantizationSettings settings,
        DeploymentCheck? deployment = null, TuningResult? tuning = null)
    {
        var dequantized = new Dictionary<string, string>();
        var simulated = QdqWriter.Realize(model, plan, parameters, QuantizationMode.Simulated, dequantized);
        var measured = ErrorMeasurement.Measure(model, simulated, dequantized, realized, data, settings, plan);
        var stats = statistics.ByTensor();
        var added = measured.AddedNoise(model);
        var histograms = new Dictionary<string, Histogram>();
        var clamps = plan.ReaderClamps();
        var rows = parameters.Table.Select(entry =>
        {
            var histogram = entry.Role == TensorRole.Activation ? stats.GetValueOrDefault(entry.Tensor)?.Histogram : null;
            if (histogram is not null) histograms[entry.Tensor] = histogram;
            var (low, high) = entry.Role == TensorRole.Activation
                ? ((entry.QuantizedMin - entry.ZeroPoint) * (double)entry.Scale, (entry.QuantizedMax - entry.ZeroPoint) * (double)entry.Scale)
                : (-(double)entry.Threshold, entry.Threshold);
            return new TensorReport
            {
                Tensor = entry.Tensor, Node = entry.Node, OpType = entry.OpType, Role = entry.Role, Method = entry.Method,
                Threshold = entry.Threshold, Scale = entry.Scale, ZeroPoint = entry.ZeroPoint, RangeMin = low, RangeMax = high,
                ClippedFraction = histogram is null ? double.NaN
                    : Clipped(histogram, low, high, entry.Role == TensorRole.Activation ? clamps.GetValueOrDefault(entry.Tensor, ClampBounds.Unbounded) : ClampBounds.Unbounded),
                KlDivergence = histogram is null ? double.NaN : Divergence(histogram, entry, settings),
                SqnrDb = entry.Role switch
                {
                    TensorRole.Activation => measured.SqnrDb.GetValueOrDefault(entry.Tensor, double.NaN),
                    TensorRole.Weight when parameters.Weights.TryGetValue(entry.Tensor, out var w) =>
                        Sqnr(Onnx.Tensors.ReadFloats(model.FindConstant(entry.Tensor)!), w.Dequantize()),
                    TensorRole.Bias when parameters.Biases.FirstOrDefault(b => b.Key.Tensor == entry.Tensor).Value is { } b =>
                        Sqnr(Onnx.Tensors.ReadFloats(model.FindConstant(entry.Tensor)!), b.Dequantize()),
                    _ => double.NaN,
                },
                AddedNoise = entry.Role == TensorRole.Activation ? added.GetValueOrDefault(entry.Tensor, double.NaN) : double.NaN,
            };
        }).ToList();
        return new CalibrationReport(rows, histograms, floatNodes, measured.OutputCosine, measured.Rows, agreement) { Deployment = deployment, Tuning = tuning };
    }

    // The fraction of the histogram's values in bins that lie wholly outside [low, high], the range the tensor represents
    // (a bin the range cuts counts as kept, so the figure can miss up to one bin's worth at each end), and not wholly
    // past the readers' clamp, where no reader sees the difference.
    private static double Clipped(Histogram h, double low, double high, ClampBounds clamp)
    {
        if (h.Total == 0) return 0;
        long beyond = 0;
        for (int i = 0; i < h.Bins; i++)
            if ((h.Edge(i) >= high && h.Edge(i + 1) <= clamp.High) || (h.Edge(i + 1) <= low && h.Edge(i) >= clamp.Low)) beyond += h.Counts[i];
        return (double)beyond / h.Total;
    }

    private static double Divergence(Histogram h, TensorCalibration entry, QuantizationSettings settings)
    {
        int q = h.NonNegative ? 2 * settings.Activations.QuantizedBins + 1 : settings.Activations.QuantizedBins;
        if (h.Bins % 2 == 0 || q > h.Bins) return double.NaN;
        var divergences = KlDivergenceSearch.Divergences(h, q, out int first);
        if (divergences is null) return double.NaN;
        int i = Math.Clamp((int)Math.Round(entry.Threshold / h.BinWidth - 0.5), first, h.Bins / 2);
        return divergences[i - first];
    }

    private static double Sqnr(float[] reference, float[] quantized)
    {
        double signal = 0, noise = 0;
        for (int i = 0; i < reference.Length; i++) { signal += (double)reference[i] * reference[i]; double d = reference[i] - quantized[i]; noise += d * d; }
        return noise == 0 ? double.PositiveInfinity : 10 * Math.Log10(signal / noise);
    }

    /// <summary>Writes the report as CSV, one row per tensor; on failure no partial file is left.</summary>
    public void WriteCsv(string path)
    {
        var csv = new StringBuilder("tensor,node,op_type,role,method,threshold,scale,zero_point,range_min,range_max,clipped_fraction,kl_divergence,sqnr_db,added_noise\n");
        foreach (var t in Tensors)
            csv.AppendLine(string.Join(",", Csv.Quote(t.Tensor), Csv.Quote(t.Node), Csv.Quote(t.OpType), t.Role, Csv.Quote(t.Method),
                Number(t.Threshold), Number(t.Scale), t.ZeroPoint, Number(t.RangeMin), Number(t.RangeMax), Number(t.ClippedFraction), Number(t.KlDivergence), Number(t.SqnrDb), Number(t.AddedNoise)));
        WriteAtomically(path, csv.ToString());
    }

    /// <summary>Writes the report as one self-contained HTML page (histograms embedded as PNG); no partial file on failure.</summary>
    public void WriteHtml(string path)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Calibration report</title><style>")
            .Append("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}")
            .Append("td:first-child,th:first-child{text-align:left}.low{background:#fdd}.chosen{background:#dfd}</style></head><body>")
            .Append("<h1>Calibration report</h1>")
            .Append(CultureInfo.InvariantCulture, $"<p>Quantized vs float output cosine, run as ML.NET runs it: <b>{OutputCosine:F5}</b> on {Rows} calibration rows.</p>");
        if (Agreement is { } agreement)
        {
            html.Append(CultureInfo.InvariantCulture, $"<p{(agreement.Agrees ? "" : " class=\"low\"")}>Realized int8 vs simulated output cosine: <b>{agreement.OutputCosine:F5}</b> ")
                .Append(CultureInfo.InvariantCulture, $"(worst {agreement.WorstCosine:F5}), relative error {agreement.WorstRelativeError:F4}, on {Plural.Of(agreement.Rows, "row")}; CPU {Encode(agreement.Cpu)}; ")
                .Append(CultureInfo.InvariantCulture, $"weights {agreement.WeightRange}, largest pair sum {agreement.LargestPairSum}.</p>");
            if (!agreement.Agrees)
            {
                html.Append("<p>").Append(Encode(agreement.Explanation)).Append("</p><ol>");
                foreach (var layer in agreement.Layers)
                    html.Append(CultureInfo.InvariantCulture,
                        $"<li>{Encode(layer.Tensor)} ({Encode(layer.OpType)} {Encode(layer.Node)}): {layer.MismatchFraction:P2} of values differ by more than one step, {layer.MeanStepDifference:F2} steps on average</li>");
                html.Append("</ol>");
            }
        }
        if (FloatNodes.Count > 0)
            html.Append("<p>Kept in float by the fallback: ").Append(string.Join(", ", FloatNodes.Select(Encode))).Append("</p>");
        if (Tuning is { } tuning)
        {
            html.Append("<h2>Tuning</h2><p>").Append(Encode(tuning.Summary)).Append("</p><p>Objective: ").Append(Encode(tuning.Objective))
                .Append("</p><table><tr><th>#</th><th>knob</th><th>value</th><th>recipe</th><th>score</th><th>hardest rows</th><th>mean cosine</th><th>worst cosine</th><th>seconds</th><th>note</th></tr>");
            foreach (var t in tuning.Trials)
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr{(t.Chosen ? " class=\"chosen\"" : "")}><td>{t.Number}</td><td>{Encode(t.Knob)}</td><td>{Encode(t.Value)}</td><td>{Encode(t.Recipe)}</td>" +
                    $"<td>{Cell(t.Score, "F4")}</td><td>{Cell(t.HardRowsScore, "F4")}</td><td>{Cell(t.MeanCosine, "F5")}</td><td>{Cell(t.WorstCosine, "F5")}</td>" +
                    $"<td>{Cell(t.Seconds, "F1")}</td><td>{Encode(t.Chosen ? "chosen" : t.Skipped is { } why ? "skipped: " + why : "")}</td></tr>");
            html.Append("</table>");
        }
        if (Deployment is { } check)
        {
            html.Append("<h2>Deployment check</h2><p").Append(check.KeptFloat ? " class=\"low\"" : "").Append('>').Append(Encode(check.Summary)).Append("</p>")
                .Append("<table><tr><th>output</th><th>mean cosine</th><th>worst cosine</th><th>relative error</th><th>NaN/∞ introduced</th></tr>");
            foreach (var o in check.Outputs)
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr><td>{Encode(o.Name)}{(o.ComparedByEquality ? " (integers: the fraction of values equal, and that differ)" : "")}</td><td>{o.MeanCosine:F5}</td><td>{o.WorstCosine:F5}</td><td>{o.RelativeError:F4}</td><td>{o.NonFiniteIntroduced}</td></tr>");
            html.Append("</table>");
            foreach (var conversion in check.Conversions) html.Append("<p>").Append(Encode(conversion)).Append("</p>");
            if (check.FloatNodes.Count > 0)
            {
                html.Append("<p>Kept in float, and why:</p><ul>");
                foreach (var (node, reason) in check.FloatNodes)
                    html.Append("<li>").Append(Encode(node)).Append(": ").Append(Encode(reason)).Append("</li>");
                html.Append("</ul>");
            }
        }
        html.Append("<h2>Layers ranked by the noise they add (largest first)</h2><ol>");
        foreach (var t in Ranked.Take(10))
            html.Append(CultureInfo.InvariantCulture,
                $"<li>{Encode(t.Tensor)} ({Encode(t.OpType)} {Encode(t.Node)}): adds {t.AddedNoise:E2} of noise-to-signal; SQNR {t.SqnrDb:F1} dB</li>");
        html.Append("</ol><h2>Tensors</h2><table><tr><th>tensor</th><th>node</th><th>op</th><th>role</th><th>method</th><th>threshold</th>")
            .Append("<th>scale</th><th>zero point</th><th>range</th><th>clipped</th><th>KL</th><th>SQNR (dB)</th></tr>");
        var worst = Ranked.Take(5).Select(t => t.Tensor).ToHashSet();
        foreach (var t in Tensors)
            html.Append(CultureInfo.InvariantCulture,
                $"<tr{(worst.Contains(t.Tensor) ? " class=\"low\"" : "")}><td>{Encode(t.Tensor)}</td><td>{Encode(t.Node)}</td><td>{Encode(t.OpType)}</td><td>{t.Role}</td>" +
                $"<td>{Encode(t.Method)}</td><td>{t.Threshold:G5}</td><td>{t.Scale:G5}</td><td>{t.ZeroPoint}</td><td>[{t.RangeMin:G4}, {t.RangeMax:G4}]</td><td>{Cell(t.ClippedFraction, "P4")}</td>" +
                $"<td>{Cell(t.KlDivergence, "G4")}</td><td>{Cell(t.SqnrDb, "F1")}</td></tr>");
        html.Append("</table><h2 id=\"histograms\">Activation histograms</h2><p>log10(1 + count) per value; red: the clipping range; grey: the largest |value| seen.</p>");
        foreach (var t in Tensors.Where(t => _histograms.ContainsKey(t.Tensor)))
            html.Append(CultureInfo.InvariantCulture, $"<h3>{Encode(t.Tensor)} ({Encode(t.OpType)}, {Encode(t.Method)}, threshold {t.Threshold:G5})</h3>")
                .Append("<img alt=\"histogram\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(Plot(_histograms[t.Tensor], t))).Append("\">");
        html.Append("</body></html>");
        WriteAtomically(path, html.ToString());
    }

    private static byte[] Plot(Histogram h, TensorReport t)
    {
        const int Groups = 400;
        int width = Math.Max(1, (h.Bins + Groups - 1) / Groups);
        var xs = new List<double>();
        var ys = new List<double>();
        for (int start = 0; start < h.Bins; start += width)
        {
            long count = 0;
            for (int i = start; i < Math.Min(h.Bins, start + width); i++) count += h.Counts[i];
            xs.Add((h.Edge(start) + h.Edge(Math.Min(h.Bins, start + width))) / 2);
            ys.Add(Math.Log10(1 + count));
        }
        var plot = new ScottPlot.Plot();
        var bars = plot.Add.Bars(xs.ToArray(), ys.ToArray());
        foreach (var bar in bars.Bars) { bar.Size = h.BinWidth * width; bar.LineWidth = 0; }
        foreach (var edge in t.RangeMin == 0 ? new[] { t.RangeMax } : new[] { t.RangeMin, t.RangeMax })
            plot.Add.VerticalLine(edge, 1.5f, ScottPlot.Colors.Red);
        plot.Add.VerticalLine(Math.Max(Math.Abs(h.ObservedMin), Math.Abs(h.ObservedMax)), 1, ScottPlot.Colors.Gray);
        plot.Axes.Left.Label.Text = "log10(1 + count)";
        return plot.GetImageBytes(640, 220, ScottPlot.ImageFormat.Png);
    }

    private static string Encode(string text) => WebUtility.HtmlEncode(text);

    private static string Cell(double value, string format) => double.IsNaN(value) ? "–" : value.ToString(format, CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static void WriteAtomically(string path, string text) =>
        AtomicFile.Write(path, stream => stream.Write(Encoding.UTF8.GetBytes(text)));
}
