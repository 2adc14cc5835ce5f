using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Annotate;

/// <summary>
/// Every domain-limited op of the ONNX operator set, fed by a MatMul (through a Reshape, which would quantize
/// pass-through) on inputs that reach the edge of the op's domain: quantization must introduce no NaN or infinity,
/// because the rule keeps what computes the op's input in float, and says so.
/// </summary>
[TestClass]
public sealed class FloatRulesTests
{
    private const int Size = 16, Rows = 48;

    // op, and the float domain its input is drawn from (edges included); Pow has exponent 0.5, Div divides 1 by it.
    public static IEnumerable<object[]> Ops => new[]
    {
        new object[] { "Log", 1e-3f, 8f },
        new object[] { "Sqrt", 0f, 8f },
        new object[] { "Reciprocal", 1e-2f, 8f },
        new object[] { "Acos", -1f, 1f },
        new object[] { "Asin", -1f, 1f },
        new object[] { "Acosh", 1f, 8f },
        new object[] { "Atanh", -0.999f, 0.999f },
        new object[] { "Pow", 0f, 8f },
        new object[] { "Div", 1e-2f, 8f },
    };

    private static string Model(TempDirectory directory, string op)
    {
        var model = new TinyModel().Input("X", 1, Size).Output("Y", 1, Size).Output("P", 1, Size)
            .Constant("I", new long[] { Size, Size }, Enumerable.Range(0, Size * Size).Select(i => i / Size == i % Size ? 1f : 0f).ToArray())
            .Weight("W", new long[] { Size, Size })
            .Node("MatMul", new[] { "X", "I" }, new[] { "M" })
            // A second, quantizable reader of the MatMul, so that without the rule its output would be quantized.
            .Node("MatMul", new[] { "M", "W" }, new[] { "P" });
        model.Graph.Initializer.Add(Tensors.FromLongs("shape", new long[] { 2 }, new long[] { 1, Size }));
        model.Node("Reshape", new[] { "M", "shape" }, new[] { "S" });
        switch (op)
        {
            case "Pow":
                model.Constant("half", new long[] { 1 }, new[] { 0.5f }).Node("Pow", new[] { "S", "half" }, new[] { "Y" });
                break;
            case "Div":
                model.Constant("one", new long[] { 1 }, new[] { 1f }).Node("Div", new[] { "one", "S" }, new[] { "Y" });
                break;
            default:
                model.Node(op, new[] { "S" }, new[] { "Y" });
                break;
        }
        return model.Save(directory.Path);
    }

    private static float[][] Domain(float low, float high)
    {
        var random = new Random(5);
        return Enumerable.Range(0, Rows).Select(r => Enumerable.Range(0, Size).Select(i =>
            r == 0 ? (i % 2 == 0 ? low : high) : low + (high - low) * (float)random.NextDouble()).ToArray()).ToArray();
    }

    [TestMethod]
    [DynamicData(nameof(Ops))]
    public void QuantizationIntroducesNoNonFiniteValueAtTheEdgeOfTheDomain(string op, float low, float high)
    {
        using var directory = new TempDirectory();
        var path = Model(directory, op);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, Domain(low, high), Size);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(path).Fit(rows).Transform(rows), "Y");
        foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
        {
            using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, Mode = mode }).Fit(rows);
            var output = TinyData.Column(model.Transform(rows), "Y");
            long introduced = reference.Zip(output).Sum(p => p.First.Zip(p.Second).Count(v => float.IsFinite(v.First) && !float.IsFinite(v.Second)));
            Assert.AreEqual(0L, introduced, $"{op}, {mode}: non-finite values that the float model does not give");
            Assert.IsTrue(TinyData.MaxAbsDifference(reference, output) < 1e-4f, $"{op}, {mode}: the input of {op} is computed in float");
            var kept = model.Deployment!.FloatNodes;
            Assert.IsTrue(kept.ContainsKey("MatMul_0"), $"{op}: the MatMul that computes its input stays float; kept: {string.Join(", ", kept.Keys)}");
            StringAssert.Contains(kept["MatMul_0"], op);
        }
    }

    [TestMethod]
    public void AWholeExponentAndANormalizedVarianceKeepNothingInFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, Size).Output("Y", 1, Size)
            .Weight("W", new long[] { Size, Size })
            .Constant("two", new long[] { 1 }, new[] { 2f })
            .Constant("eps", new long[] { 1 }, new[] { 1e-5f })
            .Node("MatMul", new[] { "X", "W" }, new[] { "M" })
            .Node("Pow", new[] { "M", "two" }, new[] { "Q" })
            .Node("ReduceMean", new[] { "Q" }, new[] { "V" }, TinyModel.Ints("axes", -1))
            .Node("Add", new[] { "V", "eps" }, new[] { "E" })
            .Node("Sqrt", new[] { "E" }, new[] { "D" })
            .Node("Div", new[] { "M", "D" }, new[] { "Y" })
            .Save(directory.Path);
        var graph = GraphPreparation.Prepare(OnnxGraph.Load(model));

        var kept = FloatRules.Find(graph);

        Assert.IsFalse(kept.ContainsKey("MatMul_0"), "x² is defined everywhere, and ReduceMean renormalizes above the Sqrt and the divisor");
        Assert.IsTrue(kept.ContainsKey("Add_3") && kept.ContainsKey("Sqrt_4"), "the divisor's own computation stays float: " + string.Join(", ", kept.Keys));
        Assert.AreEqual(1, Annotator.Annotate(graph).Weights.Count, "the MatMul is still quantized");
    }

    [TestMethod]
    public void APeakTestKeepsItsInputsFreeOfQuantizationTies()
    {
        // A heatmap head with the peak test of CenterNet-style detectors: Y = S · (S == MaxPool3×3(S)), S = Sigmoid(Conv(H)),
        // H = Conv(X). As in M-LSD, one channel of the head (a box or offset regression) spans a range 40 times the
        // others', so one scale for the head's output rounds the heatmap channels' neighbouring values to the same step,
        // and the peak test then finds plateaus of peaks.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 4, 16, 16).Output("Y", 1, 4, 16, 16)
            .Weight("W0", new long[] { 8, 4, 3, 3 }, 0.3f).Constant("W", new long[] { 4, 8, 3, 3 }, HeadWeights())
            .Node("Conv", new[] { "X", "W0" }, new[] { "H" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Conv", new[] { "H", "W" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Sigmoid", new[] { "C" }, new[] { "S" })
            .Node("MaxPool", new[] { "S" }, new[] { "M" }, TinyModel.Ints("kernel_shape", 3, 3), TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Equal", new[] { "S", "M" }, new[] { "E" })
            .Node("Cast", new[] { "E" }, new[] { "F" }, TinyModel.Int("to", 1))
            .Node("Mul", new[] { "S", "F" }, new[] { "Y" })
            .Save(directory.Path);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(32, 4 * 256, seed: 3), 4 * 256);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
        using var int8 = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false, Tuning = null }).Fit(rows);
        var output = TinyData.Column(int8.Transform(rows), "Y");

        var kept = FloatRules.Find(GraphPreparation.Prepare(OnnxGraph.Load(model)));
        foreach (var node in new[] { "Conv_1", "Sigmoid_2", "MaxPool_3" })
            Assert.IsTrue(kept.TryGetValue(node, out var reason) && reason.Contains("Equal", StringComparison.Ordinal), $"{node} kept float for the Equal: {string.Join(", ", kept.Keys)}");
        Assert.IsFalse(kept.ContainsKey("Conv_0") || kept.ContainsKey("Mul_6"), "the body above the head, and what reads the comparison, are not kept");
        Assert.IsNotNull(int8.Calibration.Find("H", TensorRole.Activation), "the body's output, the head's input, is still quantized");
        Assert.IsNull(int8.Calibration.Find("C", TensorRole.Activation), "the head's output is not");
        int peaks = reference.Sum(r => r.Count(v => v != 0)), found = output.Sum(r => r.Count(v => v != 0));
        int shared = reference.Zip(output).Sum(p => p.First.Zip(p.Second).Count(v => v.First != 0 && v.Second != 0));
        Assert.IsTrue(found <= peaks * 1.05 && shared >= peaks * 0.9, $"float finds {peaks} peaks, int8 {found}, {shared} of them the same");
    }

    private static float[] HeadWeights()
    {
        var random = new Random(9);
        return Enumerable.Range(0, 4 * 8 * 9).Select(i => (float)(random.NextDouble() * 0.6 - 0.3) * (i / (8 * 9) == 3 ? 40 : 1)).ToArray();
    }
}
