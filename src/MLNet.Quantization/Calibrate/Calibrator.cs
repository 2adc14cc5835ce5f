using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Calibration;

/// <summary>Calibrate (see <see cref="CalibratePass"/>): turns statistics into ranges, scales and zero points, and weights into int8.</summary>
internal static class Calibrator
{
    public static QuantizationParameters Calibrate(OnnxGraph graph, QuantizationPlan plan, IReadOnlyDictionary<string, TensorStatistics> statistics,
        ActivationSettings activationSettings, WeightSettings weightSettings, WeightCache? cache = null)
    {
        var table = new List<TensorCalibration>();
        var activations = new Dictionary<string, ActivationParameters>();
        var search = activationSettings.ThresholdSearch;
        var own = plan.Activations.Where(a => a.ShareScaleWith is null).ToList();
        // The built-in searches are pure functions of one histogram: they run on every core at once (the KL search costs
        // tens of milliseconds a tensor). A user's search or calibration function is called on this thread, in order.
        bool meanMinMax = activationSettings.Method == CalibrationMethod.MeanMinMax && activationSettings.Search is null;
        var searched = new TensorRange?[own.Count];
        if (activationSettings.Search is null && activationSettings.Custom is null && !meanMinMax)
            OnEveryCore(own.Count, i =>
            {
                if (statistics[own[i].Tensor].Histogram is { } histogram) searched[i] = search.Search(histogram);
            });
        for (int index = 0; index < own.Count; index++)
        {
            var mark = own[index];
            var stats = statistics[mark.Tensor];
            var custom = Custom(stats, activationSettings);
            var range = custom ?? (meanMinMax ? MeanSampleRange(stats)
                : stats.Histogram is null ? Extremes(stats) : searched[index] ?? search.Search(stats.Histogram));
            if (activationSettings.Asymmetric && custom is null && range.Min < 0)
                range = new TensorRange((float)Math.Max(stats.Min, range.Min), (float)Math.Min(stats.Max, range.Max));
            // Past its readers' clamp the tensor's values are all alike to them: the range stops there (ReaderClamps).
            var unclamped = range;
            if (custom is null && mark.ReadersClamp is { } clamp)
                range = clamp.Narrow(range);
            var p = ActivationParameters(range, activationSettings.Asymmetric);
            if (!float.IsFinite(range.Min) || !float.IsFinite(range.Max) || !float.IsFinite(p.Scale) || !(p.Scale > 0))
                throw new InvalidOperationException(
                    $"Tensor '{mark.Tensor}' ({mark.OpType} '{mark.Node}') ranges over [{stats.Min:G6}, {stats.Max:G6}] on the calibration rows, " +
                    $"which gives no finite uint8 scale ({p.Scale:G6}). Keep its node in float with ExcludeNodes, or calibrate on data without such values.");
            activations[mark.Tensor] = p;
            table.Add(Entry(mark, range.Threshold, p, custom is not null ? "Custom" : activationSettings.Search?.GetType().Name ?? activationSettings.Method.ToString())
                with { Note = range == unclamped ? "" : $"range [{unclamped.Min:G4}, {unclamped.Max:G4}] cut to [{range.Min:G4}, {range.Max:G4}], where its readers clamp it" });
        }
        // Shared scales may chain (a Reshape after a MaxPool); resolve them in as many rounds as the chains are long.
        var pending = plan.Activations.Where(a => a.ShareScaleWith is not null).ToList();
        while (pending.Count > 0)
        {
            var ready = pending.Where(m => activations.ContainsKey(m.ShareScaleWith!)).ToList();
            if (ready.Count == 0)
                throw new InvalidOperationException($"Tensor '{pending[0].Tensor}' shares the scale of '{pending[0].ShareScaleWith}', which has none.");
            foreach (var mark in ready)
            {
                var p = activations[mark.ShareScaleWith!];
                activations[mark.Tensor] = p;
                var source = table.First(e => e.Tensor == mark.ShareScaleWith);
                table.Add(Entry(mark, source.Threshold, p, $"SharedWith({mark.ShareScaleWith})"));
                pending.Remove(mark);
            }
        }

        var weights = new Dictionary<string, QuantizedWeight>();
        // One job per weight, in the order of its first reader; every node that reads it decides its format and axis.
        var jobs = plan.Weights.GroupBy(w => w.Tensor, StringComparer.Ordinal).Select(readers =>
        {
            var mark = readers.First();
            // The pair bound binds a weight unless every node that reads it multiplies each product on its own.
            bool unpaired = readers.All(w => w.UnpairedProducts);
            var tensor = graph.FindConstant(mark.Tensor)!;
            var dims = Tensors.Dims(tensor);
            // A weight read by several nodes is per channel only when they all read its channels along the same axis.
            bool oneAxis = readers.All(w => w.Axis == mark.Axis);
            int? channelAxis = oneAxis && mark.Axis < dims.Length ? mark.Axis : null; // null: one scale
            return new WeightJob(mark, tensor, dims, channelAxis, unpaired, unpaired ? weightSettings.Format.Unpaired : weightSettings.Format);
        }).ToList();
        var customs = new TensorRange?[jobs.Count];
        (QuantizedWeight, int) Quantize(int i)
        {
            var job = jobs[i];
            var values = Tensors.ReadFloats(job.Tensor);
            var custom = customs[i] = activationSettings.Custom is null ? null : Custom(WeightStatistics(job.Mark, values, activationSettings.Bins), activationSettings);
            var q = WeightQuantizer.Quantize(job.Mark.Tensor, job.Dims, values, job.ChannelAxis, weightSettings.PerChannel,
                weightSettings.Scale, job.Format, custom?.Threshold, weightSettings.Rounding);
            return (q, job.Unpaired ? 0 : WeightQuantizer.LargestPairSum(q.Values, job.Dims, job.ChannelAxis));
        }
        var made = new (QuantizedWeight Weight, int LargestPairSum)[jobs.Count];
        // A user's calibration function sees every weight on every calibration, in order, on this thread: those are not
        // cached. Otherwise each weight is a pure function of its values and the settings, made on every core at once.
        if (activationSettings.Custom is not null)
            for (int i = 0; i < jobs.Count; i++) made[i] = Quantize(i);
        else
            OnEveryCore(jobs.Count, i => made[i] = cache is null ? Quantize(i)
                : cache.GetOrAdd(jobs[i].Tensor.RawData, jobs[i].Mark.Tensor, jobs[i].Dims, jobs[i].ChannelAxis, weightSettings, jobs[i].Format, () => Quantize(i)));
        for (int i = 0; i < jobs.Count; i++)
        {
            var (mark, format, custom) = (jobs[i].Mark, jobs[i].Format, customs[i]);
            var (w, largestPairSum) = made[i];
            weights[mark.Tensor] = w;
            float maxScale = w.Scales.Max();
            table.Add(new TensorCalibration
            {
                Tensor = mark.Tensor, Role = TensorRole.Weight, Node = mark.Node, OpType = mark.OpType,
                Threshold = custom?.Threshold ?? maxScale * (weightSettings.Scale == WeightScaleMethod.PowerOfTwo ? format.QMax + 1 : format.QMax),
                Scale = maxScale, ZeroPoint = 0, ElementType = format.Name,
                Method = custom is null ? weightSettings.Scale.ToString() : "Custom",
                ChannelScales = w.Axis is null ? Array.Empty<float>() : w.Scales,
                WeightRange = weightSettings.Range,
                LargestPairSum = largestPairSum,
            });
        }

        var biases = new Dictionary<(string, string), QuantizedBias>();
        foreach (var mark in plan.Biases)
        {
            if (!activations.TryGetValue(mark.Activation, out var input) || !weights.TryGetValue(mark.Weight, out var weight))
                continue;
            var tensor = graph.FindConstant(mark.Tensor)!;
            var values = Tensors.ReadFloats(tensor);
            if (weight.Scales.Length != 1 && weight.Scales.Length != values.Length)
                continue; // A bias that does not match the weight's channels stays float.
            var entry = new TensorCalibration
            {
                Tensor = mark.Tensor, Role = TensorRole.Bias, Node = mark.Node, OpType = mark.OpType,
                Threshold = values.Length == 0 ? 0 : values.Max(Math.Abs), ZeroPoint = 0,
            };
            var problem = WeightQuantizer.BiasProblem(values, input.Scale, weight.Scales);
            if (problem is not null)
            {
                table.Add(entry with { ElementType = "float", Method = "KeptFloat", Note = problem });
                continue;
            }
            var b = WeightQuantizer.QuantizeBias(mark.Tensor, Tensors.Dims(tensor), values, input.Scale, weight.Scales);
            biases[(mark.Node, mark.Tensor)] = b;
            table.Add(entry with
            {
                Scale = b.Scales.Max(), ElementType = "int32", Method = "InputScaleTimesWeightScale",
                ChannelScales = b.Scales.Length == 1 ? Array.Empty<float>() : b.Scales,
            });
        }
        return new QuantizationParameters(activations, weights, biases, new CalibrationTable(table));
    }

    // [mean of the rows' minima, mean of their maxima]; [0, mean max] for never-negative tensors; the extremes when
    // the statistics carry no per-row sums (files of format 1).
    private static TensorRange MeanSampleRange(TensorStatistics stats)
    {
        if (stats.Samples == 0) return Extremes(stats);
        double low = Math.Min(stats.MeanSampleMin, 0), high = Math.Max(stats.MeanSampleMax, 0);
        return stats.NonNegative ? new TensorRange(0, (float)high)
            : new TensorRange((float)low, (float)high) is var r && r.Max > r.Min ? r : Extremes(stats);
    }

    private static TensorRange Extremes(TensorStatistics stats) =>
        TensorRange.FromThreshold(stats.NonNegative ? stats.Max : stats.AbsMax, stats.NonNegative);

    private static TensorRange? Custom(TensorStatistics stats, ActivationSettings activationSettings)
    {
        var range = activationSettings.Custom?.Invoke(stats);
        if (range is { } r && (!float.IsFinite(r.Min) || !float.IsFinite(r.Max) || r.Max < r.Min))
            throw new InvalidOperationException(
                $"CustomCalibration returned the invalid range [{r.Min}, {r.Max}] for tensor '{stats.Tensor}' ({stats.OpType} '{stats.Node}').");
        return range;
    }

    private static TensorStatistics WeightStatistics(WeightMark mark, float[] values, int bins)
    {
        var stats = new TensorStatistics(mark.Tensor, TensorRole.Weight, mark.Node, mark.OpType);
        stats.AddRange(values);
        stats.Histogram = Histogram.Build(values, bins);
        return stats;
    }

    /// <summary>
    /// Parameters of a range in <paramref name="format"/> (uint8 by default, qmin..qmax = 0..255): zero point qmin and
    /// scale T/(qmax − qmin) over [0, T] when the range is non-negative; else the symmetric zero point z = 128 and scale
    /// T/(qmax − z) over [−T, T], or, when <paramref name="asymmetric"/>, scale (max − min)/(qmax − qmin) and the zero
    /// point that maps 0 exactly. T = 0 (an all-zero tensor) gets scale 1, which represents 0 exactly.
    /// </summary>
    internal static ActivationParameters ActivationParameters(TensorRange range, bool asymmetric = false, ActivationFormat? format = null)
    {
        var f = format ?? ActivationFormat.UInt8;
        float t = range.Threshold;
        bool nonNegative = range.Min >= 0;
        if (asymmetric && !nonNegative && range.Max > range.Min)
        {
            double lo = Math.Min(range.Min, 0), hi = Math.Max(range.Max, 0);
            float scale = (float)((hi - lo) / f.Levels); // in double: a range near ±float.MaxValue keeps a finite scale
            return new ActivationParameters(scale, (int)Math.Clamp(Math.Round(f.QMin - lo / scale, MidpointRounding.ToEven), f.QMin, f.QMax), f);
        }
        return t <= 0 ? new ActivationParameters(1f, nonNegative ? f.QMin : f.SymmetricZeroPoint, f)
            : nonNegative ? new ActivationParameters(t / f.Levels, f.QMin, f)
            : new ActivationParameters(t / (f.QMax - f.SymmetricZeroPoint), f.SymmetricZeroPoint, f);
    }

    private static TensorCalibration Entry(ActivationMark mark, float threshold, ActivationParameters p, string method) => new()
    {
        Tensor = mark.Tensor, Role = TensorRole.Activation, Node = mark.Node, OpType = mark.OpType,
        Threshold = threshold, Scale = p.Scale, ZeroPoint = p.ZeroPoint, ElementType = p.Format.Name, Method = method,
        QuantizedMin = p.Format.QMin, QuantizedMax = p.Format.QMax,
    };

    private sealed record WeightJob(WeightMark Mark, global::Onnx.TensorProto Tensor, long[] Dims, int? ChannelAxis, bool Unpaired, WeightFormat Format);

    // Runs body(0 … count − 1) on every core; the first exception (in index order) comes out as it was thrown, not
    // wrapped in an AggregateException.
    internal static void OnEveryCore(int count, Action<int> body)
    {
        var errors = new Exception?[count];
        Parallel.For(0, count, i =>
        {
            try
            {
                body(i);
            }
            catch (Exception e)
            {
                errors[i] = e;
            }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } first)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
    }
}
