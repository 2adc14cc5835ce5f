using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using Onnx;

namespace MLNet.Quantization.Equalize;

/// <summary>
/// SmoothQuant (Xiao et al. 2023) for MatMuls with constant 2-D weights (initializers or Constant nodes), on the float model: activation outliers move
/// into the weights, which quantize per channel.
/// </summary>
/// <remarks>
/// For the MatMuls that read an activation X with constant weights W (all of them together when several read the same
/// X, as the query, key and value projections do), with a_k = max|X[…, k]| over the calibration rows and
/// w_k = max_n |W[k, n]| over all of those weights, <c>s_k = a_k^α / w_k^(1−α)</c> (1 where either is 0). A Mul by 1/s
/// (along X's last axis) is inserted before them and row k of each W is multiplied by s_k, so that
/// <c>(X·diag(1/s))·(diag(s)·W) = X·W</c>: the float function is unchanged, up to rounding. α = 1 moves all of the
/// range into the weights; α = 0 none. Other readers of X keep reading it unscaled.
/// </remarks>
internal sealed class SmoothQuantPass : IQuantizationPass
{
    private readonly double _alpha;
    private readonly Dictionary<string, StatisticPoint> _points = new(StringComparer.Ordinal);

    public SmoothQuantPass(double alpha) => _alpha = alpha;

    public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context)
    {
        _points.Clear();
        foreach (var group in Groups(context))
            _points[group.Key] = new StatisticPoint(group.Key, -1) { RowExtremes = true }; // the smoothed input's statistics derive from them (ScaledStatistics)
        return _points.Values.ToList();
    }

    public double EstimatedStreams(QuantizationContext context) => 1;

    public void Apply(QuantizationContext context, StatisticValues statistics)
    {
        var model = context.Model;
        foreach (var group in Groups(context))
        {
            if (!_points.TryGetValue(group.Key, out var point)) continue;
            var activation = statistics[point].AbsMax;
            var matMuls = group.ToList();
            var weights = matMuls.Select(n => model.FindConstant(n.Input[1])!).ToList();
            int rows = (int)weights[0].Dims[0];
            if (activation.Length != rows || weights.Any(w => w.Dims[0] != rows)) continue;
            var values = weights.Select(Tensors.ReadFloats).ToList();
            var scales = new float[rows];
            for (int k = 0; k < rows; k++)
            {
                double w = 0;
                for (int i = 0; i < values.Count; i++)
                {
                    int columns = (int)weights[i].Dims[1];
                    for (int n = 0; n < columns; n++) w = Math.Max(w, Math.Abs(values[i][k * columns + n]));
                }
                double a = activation[k];
                scales[k] = a > 0 && w > 0 ? (float)Math.Clamp(Math.Pow(a, _alpha) / Math.Pow(w, 1 - _alpha), 1e-5, 1e5) : 1f;
            }
            var inverse = model.UniqueName(group.Key + "_smooth_inverse_scale");
            model.AddInitializer(Tensors.FromFloats(inverse, new long[] { rows }, scales.Select(s => 1 / s).ToArray()));
            var smoothed = model.UniqueName(group.Key + "_smoothed");
            model.AddNode(OnnxGraph.MakeNode("Mul", model.UniqueName(group.Key + "_SmoothQuant"), new[] { group.Key, inverse }, new[] { smoothed }));
            for (int i = 0; i < weights.Count; i++)
            {
                int columns = (int)weights[i].Dims[1];
                var source = values[i];
                var scaled = new float[source.Length];
                for (int k = 0, j = 0; k < rows; k++)
                    for (int n = 0; n < columns; n++, j++) scaled[j] = source[j] * scales[k];
                var name = model.UniqueName(weights[i].Name + "_smoothed");
                model.AddInitializer(Tensors.FromFloats(name, Tensors.Dims(weights[i]), scaled));
                model.SetInput(matMuls[i], 1, name);
                model.SetInput(matMuls[i], 0, smoothed);
            }
        }
        model.SortTopologically();
        GraphPreparation.RemoveUnusedInitializers(model);
        GraphPreparation.RemoveDeadConstants(model);
    }

    /// <summary>Whether the model has a MatMul to smooth (the tuner searches α only then).</summary>
    internal static bool Applies(QuantizationContext context) => Groups(context).Any();

    // The quantizable MatMuls with a constant 2-D float weight, by the activation they read.
    private static IEnumerable<IGrouping<string, NodeProto>> Groups(QuantizationContext context) =>
        context.Model.Graph.Node
            .Where(n => n.OpType == "MatMul" && n.Domain is "" or "ai.onnx" && n.Input.Count == 2 && !context.Exclusions.Excludes(n)
                && context.Model.FindConstant(n.Input[0]) is null
                && context.Model.FindConstant(n.Input[1]) is { DataType: Tensors.Float, Dims.Count: 2 })
            .GroupBy(n => n.Input[0], StringComparer.Ordinal)
            .ToList();
}
