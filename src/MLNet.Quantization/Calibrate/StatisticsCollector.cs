using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>
/// Collect: streams the calibration rows through the float model, with every marked activation exposed as
/// an extra graph output. Pass 1 finds each tensor's range; pass 2 counts values into a histogram fixed to ±max|x|,
/// when the method needs it or <c>CollectHistograms</c> asks for it (the report's clipping and KL columns, and refitting
/// from saved statistics with a method that searches histograms, use it). With
/// <c>RangesFrom</c>, a single pass (reported as pass 2) fills histograms over the given ranges. Only the statistics are kept, so memory does not grow with the number of rows, and the
/// counts do not depend on batch size or row order.
/// </summary>
internal static class StatisticsCollector
{
    private delegate void TensorVisitor(string tensor, ReadOnlySpan<float> values, long row);

    /// <summary>
    /// How far, relative to it, a known range read on another model (<see cref="TensorStatistics.ReadOnAnotherModel"/>)
    /// may miss this model's own and still hold: 2⁻¹⁸. The histogram is then counted over the known range widened by as
    /// much, in the same pass that finds the range.
    /// </summary>
    /// <remarks>
    /// After SmoothQuant a tensor's values differ from the model before the rewrite by the float rounding of
    /// X·diag(1/s)·diag(s)·W: all-MiniLM-L6-v2's ranges moved by at most 6.2·10⁻⁷ relative (18 of its 48 activations),
    /// within 2⁻¹⁸ ≈ 3.8·10⁻⁶ six times over. Each such range once cost the trial a second pass over the rows. A histogram over
    /// ±m·(1 + δ) instead of ±m moves every bin edge by at most δ·m: a percentile, squared-error or KL threshold, a
    /// bin edge, moves by at most δ·m plus one bin where a count sits on the boundary (with 8,001 bins, 2.5·10⁻⁴ of m):
    /// well within the rounding of a uint8 grid (1/255 of the range). The range itself (Min, Max) is always the one this
    /// pass found. The trials' scores still move, as under any change of a few ulps: on MiniLM's 40 held-back rows, by
    /// one row's nearest neighbour (docs/benchmarks.md, sixteenth session).
    /// </remarks>
    public const double RangeSlack = 1.0 / (1 << 18);

    // The range the histogram of a known range is counted over: the range itself where it was read on this model (the
    // pass then finds it again exactly), else widened by RangeSlack.
    private static double CountingRange(TensorStatistics known) => known.ReadOnAnotherModel ? known.AbsMax * (1 + RangeSlack) : known.AbsMax;

    // Whether the range this pass found keeps the histogram counted over the known one: the same range, or for a range read
    // on another model one within RangeSlack of it.
    private static bool Holds(TensorStatistics known, double found) => known.ReadOnAnotherModel
        ? found <= known.AbsMax * (1 + RangeSlack) && found >= known.AbsMax * (1 - RangeSlack)
        : found == known.AbsMax;

    private static long _tensorsRecounted;

    /// <summary>
    /// How many tensors' histograms were counted a second time because the ranges given as known did not hold, in every
    /// collection of this process so far (for tests).
    /// </summary>
    internal static long TensorsRecounted => Interlocked.Read(ref _tensorsRecounted);

    /// <remarks>
    /// <c>known</c>: statistics collected before on the same float model and rows (the tuner's recipes that differ only in the
    /// calibration method): with histograms to collect, their ranges fix the bins, so one pass both checks the ranges and
    /// counts. Should a tensor's range come out different, its histogram is counted again in a second pass over the new
    /// range, so the result is that of the two passes. A known range read on another model (a tuner's SmoothQuant
    /// candidate, whose ranges come from the model before the rewrite) holds within <see cref="RangeSlack"/>, and its
    /// histogram is counted over it widened by as much.
    /// <c>kept</c>: statistics collected on a model that this one rewrote keeping every tensor's value (SmoothQuant): the
    /// tensors they describe are taken from them, and only the others are collected.
    /// <c>alongside</c>: per-channel reductions that the first pass over every calibration row also feeds, from the
    /// tensors it streams anyway (a tensor it does not stream is left out of them).
    /// </remarks>
    public static CalibrationStatistics Collect(OnnxGraph prepared, QuantizationPlan plan, IDataView data,
        QuantizationSettings settings, string fingerprint, IReadOnlyDictionary<string, string> inputShapes,
        CalibrationStatistics? known = null, CalibrationStatistics? kept = null, Pipeline.ChannelReducer? alongside = null)
    {
        var inputs = prepared.RealInputs().Select(i => i.Name).ToHashSet();
        var reused = kept?.ByTensor() is { } byTensor
            ? plan.Activations.Where(a => a.ShareScaleWith is null && byTensor.ContainsKey(a.Tensor))
                .ToDictionary(a => a.Tensor, a =>
                {
                    var copy = byTensor[a.Tensor].Clone(a.Node, a.OpType);
                    copy.ReadOnAnotherModel = true;
                    return copy;
                })
            : new Dictionary<string, TensorStatistics>();
        // Every marked activation as an extra output (inputs and graph outputs are already readable). Opened on first use:
        // where every tensor kept its value through a rewrite, nothing reads it.
        using var session = new Realize.LazySession(() => Realize.Sessions.Create(prepared,
            plan.Activations.Select(a => a.Tensor).Where(t => !reused.ContainsKey(t)), $"the float model '{settings.ModelFile}'", RowReader.SessionThreads));
        // ONNX Runtime reports the inferred type of every extra output: only float tensors are quantized.
        plan.KeepActivations(t => reused.ContainsKey(t) || (inputs.Contains(t)
            ? session.Value.InputMetadata[t].ElementDataType == TensorElementType.Float
            : session.Value.OutputMetadata.TryGetValue(t, out var meta) && meta.ElementDataType == TensorElementType.Float));

        var stats = plan.Activations.Where(a => a.ShareScaleWith is null && !reused.ContainsKey(a.Tensor))
            .ToDictionary(a => a.Tensor, a => new TensorStatistics(a.Tensor, TensorRole.Activation, a.Node, a.OpType));
        string[] outputNames = stats.Keys.Where(t => !inputs.Contains(t)).ToArray();
        var quantizedInputs = stats.Keys.Where(inputs.Contains).ToHashSet();

        // A tensor that the float model makes NaN or infinite on calibration rows (Log of a negative value, say) has no
        // uint8 range: it stays float, and so does every tensor that shares its scale. Non-finite input data is an error.
        var nonFinite = new HashSet<string>(StringComparer.Ordinal);
        void Check(string name, ReadOnlySpan<float> values, long row)
        {
            if (nonFinite.Contains(name)) return;
            int bad = stats[name].AddRange(values);
            if (bad < 0) return;
            if (inputs.Contains(name)) // the data itself, not the model, is at fault
                throw new InvalidDataException(
                    $"Input '{name}' has a non-finite value ({values[bad]}) at row {row}. Calibration data must be finite.");
            nonFinite.Add(name);
        }
        void DropNonFinite()
        {
            foreach (var name in nonFinite) stats.Remove(name);
            plan.KeepActivations(t => !nonFinite.Contains(t));
            outputNames = outputNames.Where(stats.ContainsKey).ToArray();
            quantizedInputs.RemoveWhere(nonFinite.Contains);
        }

        // Each of these tensors' histogram over ±absMax (every tensor's when null).
        void Bins(Func<TensorStatistics, double> absMax, IReadOnlySet<string>? only = null)
        {
            foreach (var s in stats.Values.Where(s => only?.Contains(s.Tensor) ?? true))
                s.Histogram = Histogram.Symmetric(absMax(s), settings.Activations.Bins);
        }
        // A pass that counts the histograms of these tensors over the ranges this collection found, streaming only them.
        void CountOverTheseRanges(IReadOnlySet<string> tensors)
        {
            Bins(s => s.AbsMax, tensors);
            Pass(session.Value, data, settings, 2, quantizedInputs.Where(tensors.Contains).ToHashSet(), outputNames.Where(tensors.Contains).ToArray(),
                (name, values, _) => stats[name].Histogram!.Add(values));
        }

        long rows;
        if (kept is not null && stats.Count == 0)
            rows = kept.Rows; // every tensor kept its value: nothing to stream
        else if (settings.Rows.RangesFrom is { } ranges)
        {
            // Second round of sharded calibration: histograms over the merged ranges, in the same pass as this shard's range.
            var difference = ranges.Difference(fingerprint, inputShapes, settings.Activations.Bins);
            if (difference is not null)
                throw new InvalidOperationException($"RangesFrom does not fit this model and these settings: {difference}.");
            var given = ranges.ByTensor();
            Bins(s => (given.GetValueOrDefault(s.Tensor) ?? throw new InvalidOperationException(
                $"RangesFrom has no range for tensor '{s.Tensor}'.")).AbsMax);
            // One pass that both checks ranges and fills histograms: reported as pass 2, the histogram pass.
            rows = Pass(session.Value, data, settings, 2, quantizedInputs, outputNames, (name, values, row) =>
            {
                Check(name, values, row);
                if (nonFinite.Contains(name)) return;
                var histogram = stats[name].Histogram!;
                long before = histogram.Total;
                histogram.Add(values);
                if (histogram.Total - before != values.Length)
                    throw new InvalidOperationException(
                        $"Tensor '{name}' has values beyond the range in RangesFrom (±{histogram.Max:G6}) at row {row}: merge the ranges of every shard first.");
            });
            DropNonFinite();
        }
        else if (settings.Activations.CollectHistograms && known?.ByTensor() is { } knownRanges && knownRanges.Count > 0
            && stats.Keys.All(t => knownRanges.TryGetValue(t, out var r) && r.Count > 0))
        {
            // Pass 1 and 2 in one: the bins over the ranges already known, checked against the ranges this pass finds.
            // Only the histograms whose range did not hold are counted again.
            Bins(s => CountingRange(knownRanges[s.Tensor]));
            rows = Pass(session.Value, data, settings, 2, quantizedInputs, outputNames, (name, values, row) =>
            {
                Check(name, values, row);
                if (!nonFinite.Contains(name)) stats[name].Histogram!.Add(values);
            }, alongside);
            DropNonFinite();
            var moved = stats.Values.Where(s => !Holds(knownRanges[s.Tensor], s.AbsMax)).Select(s => s.Tensor).ToHashSet(StringComparer.Ordinal);
            if (rows > 0 && moved.Count > 0)
            {
                Interlocked.Add(ref _tensorsRecounted, moved.Count);
                CountOverTheseRanges(moved);
            }
        }
        else
        {
            rows = Pass(session.Value, data, settings, 1, quantizedInputs, outputNames, Check, alongside);
            DropNonFinite();
            if (rows > 0 && settings.Activations.CollectHistograms)
                CountOverTheseRanges(stats.Keys.ToHashSet(StringComparer.Ordinal));
        }
        if (rows == 0)
            throw new InvalidOperationException("The calibration data has no rows: Fit needs at least one row to calibrate on.");
        var tensors = plan.Activations.Select(a => stats.GetValueOrDefault(a.Tensor) ?? reused.GetValueOrDefault(a.Tensor))
            .OfType<TensorStatistics>().ToList();
        return new CalibrationStatistics(fingerprint, inputShapes, settings.Activations.Bins, rows, tensors);
    }

    /// <summary>
    /// One pass over the rows; <paramref name="visit"/> sees every requested tensor of every row, and
    /// <paramref name="alongside"/> those it reduces.
    /// </summary>
    private static long Pass(InferenceSession session, IDataView data, QuantizationSettings settings, int pass,
        IReadOnlySet<string> quantizedInputNames, string[] outputNames, TensorVisitor visit, Pipeline.ChannelReducer? alongside = null) =>
        TensorStream.ForEach(session, data, settings, pass, settings.Rows.IsCalibrationRow, quantizedInputNames, outputNames,
            (name, values, shape, row) =>
            {
                visit(name, values, row);
                if (alongside?.Reads(name) == true) alongside.Add(name, values, shape);
            });
}
