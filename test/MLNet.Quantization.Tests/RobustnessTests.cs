using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Onnx;

namespace MLNet.Quantization.Tests;

/// <summary>
/// Every elementwise op of the default domain that takes a float tensor, between two quantized Convs, at opset 13 and
/// at opset 9 where it exists there: Fit in both modes, score, and compare with the float model.
/// </summary>
[TestClass]
public sealed class RobustnessTests
{
    private sealed record Op(string Type, int Since, bool Smooth = true, Func<TinyModel, string, string, TinyModel>? Build = null);

    private static TinyModel Unary(TinyModel m, string type, string input, string output, params AttributeProto[] attributes) =>
        m.Node(type, new[] { input }, new[] { output }, attributes);

    private static readonly Op[] Ops =
    {
        new("Abs", 6), new("Neg", 6), new("Exp", 6), new("Log", 6), new("Sqrt", 6), new("Reciprocal", 6),
        new("Floor", 6, Smooth: false), new("Ceil", 6, Smooth: false), new("Relu", 6), new("Sigmoid", 6), new("Tanh", 6),
        new("Elu", 6), new("Selu", 6), new("HardSigmoid", 6), new("LeakyRelu", 6), new("Softplus", 1), new("Softsign", 1),
        new("Sin", 7), new("Cos", 7), new("Tan", 7, Smooth: false), new("Asin", 7), new("Acos", 7), new("Atan", 7),
        new("Sinh", 9), new("Cosh", 9), new("Asinh", 9), new("Acosh", 9), new("Atanh", 9), new("Erf", 9),
        new("Sign", 9, Smooth: false), new("Round", 11, Smooth: false), new("Shrink", 9, Smooth: false),
        new("ThresholdedRelu", 10, Smooth: false), new("Celu", 12), new("Identity", 1), new("Dropout", 1),
        new("Softmax", 1), new("LogSoftmax", 1), new("Hardmax", 1, Smooth: false),
        new("Clip", 11, Build: (m, i, o) => m.Constant("lo", Array.Empty<long>(), new[] { -0.5f }).Constant("hi", Array.Empty<long>(), new[] { 0.5f })
            .Node("Clip", new[] { i, "lo", "hi" }, new[] { o })),
        new("PRelu", 9, Build: (m, i, o) => m.Constant("slope", new long[] { 4, 1, 1 }, new[] { 0.1f, 0.2f, 0.3f, 0.4f }).Node("PRelu", new[] { i, "slope" }, new[] { o })),
        new("Add", 7, Build: (m, i, o) => m.Node("Add", new[] { i, i }, new[] { o })),
        new("Sub", 7, Build: (m, i, o) => m.Constant("half", Array.Empty<long>(), new[] { 0.5f }).Node("Sub", new[] { i, "half" }, new[] { o })),
        new("Mul", 7, Build: (m, i, o) => m.Node("Mul", new[] { i, i }, new[] { o })),
        new("Div", 7, Build: (m, i, o) => m.Constant("two", Array.Empty<long>(), new[] { 2f }).Node("Div", new[] { "two", i }, new[] { o })),
        new("Pow", 7, Build: (m, i, o) => m.Constant("p", Array.Empty<long>(), new[] { 0.5f }).Node("Pow", new[] { i, "p" }, new[] { o })),
        new("Max", 8, Build: (m, i, o) => m.Node("Max", new[] { i, i }, new[] { o })),
        new("Min", 8, Build: (m, i, o) => m.Node("Min", new[] { i, i }, new[] { o })),
        new("Mean", 8, Build: (m, i, o) => m.Node("Mean", new[] { i, i }, new[] { o })),
        new("Sum", 8, Build: (m, i, o) => m.Node("Sum", new[] { i, i }, new[] { o })),
    };

    private static string Model(TempDirectory directory, Op op, long opset)
    {
        var m = new TinyModel(opset: opset).Input("X", 1, 3, 4, 4).Output("Y", 1, 4, 4, 4)
            .Weight("W", new long[] { 4, 3, 1, 1 }).Weight("W2", new long[] { 4, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" });
        m = op.Build is null
            ? Unary(m, op.Type, "C", "O", op.Type is "Softmax" or "LogSoftmax" or "Hardmax" && opset < 13 ? new[] { TinyModel.Int("axis", 1) } : Array.Empty<AttributeProto>())
            : op.Build(m, "C", "O");
        return m.Node("Conv", new[] { "O", "W2" }, new[] { "Y" }).Save(directory.Path, $"{op.Type}-{opset}.onnx");
    }

    [TestMethod]
    public void EveryElementwiseFloatOpQuantizesAroundItOrPassesThrough()
    {
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(24, 48), 48);
        var failures = new List<string>();
        int tried = 0, quantized = 0, passedThrough = 0;
        using var directory = new TempDirectory();
        foreach (var op in Ops)
            foreach (long opset in new long[] { 13, 9 }.Where(v => v >= op.Since).Distinct())
            {
                tried++;
                var file = Model(directory, op, opset);
                var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(file).Fit(rows).Transform(rows), "Y");
                foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
                {
                    string where = $"{op.Type} at opset {opset}, {mode}";
                    try
                    {
                        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = file, Mode = mode }).Fit(rows);
                        var output = TinyData.Column(fitted.Transform(rows), "Y");
                        if (mode == QuantizationMode.Int8)
                        {
                            if (fitted.Calibration.Any(c => c.Node.StartsWith(op.Type, StringComparison.Ordinal))) quantized++;
                            else passedThrough++;
                        }
                        double worst = 1;
                        bool nonFinite = false;
                        for (int r = 0; r < reference.Length; r++)
                        {
                            var finite = Enumerable.Range(0, reference[r].Length).Where(i => float.IsFinite(reference[r][i])).ToArray();
                            nonFinite |= finite.Any(i => !float.IsFinite(output[r][i]));
                            var a = finite.Select(i => reference[r][i]).ToArray();
                            var b = finite.Select(i => output[r][i]).ToArray();
                            if (a.Any(v => v != 0) && b.All(float.IsFinite)) worst = Math.Min(worst, TinyData.Cosine(a, b));
                        }
                        if (nonFinite) failures.Add($"{where}: non-finite output where float is finite");
                        if (op.Smooth && worst < 0.98) failures.Add($"{where}: worst row cosine to float {worst:F4}");
                    }
                    catch (Exception e) when (e is NullReferenceException or IndexOutOfRangeException or KeyNotFoundException
                        or Microsoft.ML.OnnxRuntime.OnnxRuntimeException or InvalidCastException)
                    {
                        failures.Add($"{where}: internal exception {e.GetType().Name}: {e.Message}");
                    }
                    catch (Exception e)
                    {
                        failures.Add($"{where}: refused with {e.GetType().Name}: {e.Message}");
                    }
                }
            }
        Console.WriteLine($"Robustness: {tried} models, {quantized} with the op itself quantized, {passedThrough} with it passed through in float, {failures.Count} failures");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Distinct().Take(30)));
    }
}
