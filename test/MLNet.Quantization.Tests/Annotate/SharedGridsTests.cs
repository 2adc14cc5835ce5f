using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Annotate;

/// <summary>
/// A tensor computed from a quantized one through ops that are the identity on [0, ∞) and bring negative values no
/// further from zero is quantized on that one's grid (SharedGrids), so its non-negative values are rounded once.
/// </summary>
[TestClass]
public sealed class SharedGridsTests
{
    private const int Size = 2 * 6 * 6;

    // X → Conv → C → tail → M → a 1×1 Conv → Y.
    private static (QuantizingTransformer Int8, float[][] Expected, float[][] Actual) Fit(Action<TinyModel> tail)
    {
        using var directory = new TempDirectory();
        var model = new TinyModel()
            .Input("X", 1, 2, 6, 6).Output("Y", 1, 3, 6, 6)
            .Weight("W", new long[] { 4, 2, 3, 3 }).Weight("B", new long[] { 4 }).Weight("W2", new long[] { 3, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1));
        tail(model);
        model.Node("Conv", new[] { "M", "W2" }, new[] { "Y" });
        var path = model.Save(directory.Path);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(32, Size, std: 2), Size);
        var int8 = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, CheckDeployment = false, Tuning = null }).Fit(data);
        var expected = TinyData.Column(ml.Transforms.ApplyOnnxModel(path).Fit(data).Transform(data), "Y");
        var actual = TinyData.Column(int8.Transform(data), "Y");
        return (int8, expected, actual);
    }

    [TestMethod]
    public void TheMaxAfterALeakyReluIsQuantizedOnTheConvolutionsGrid()
    {
        var (int8, expected, actual) = Fit(m => m
            .Constant("floor", new long[] { 1 }, new[] { -0.4f })
            .Node("LeakyRelu", new[] { "C" }, new[] { "L" }, TinyModel.Float("alpha", 0.2f))
            .Node("Max", new[] { "L", "floor" }, new[] { "M" }));
        using (int8)
        {
            var c = int8.Calibration.Find("C", TensorRole.Activation)!;
            var m = int8.Calibration.Find("M", TensorRole.Activation) ?? throw new AssertFailedException("M is not quantized");
            Assert.AreEqual("SharedWith(C)", m.Method);
            Assert.AreEqual(c.Scale, m.Scale);
            Assert.AreEqual(c.ZeroPoint, m.ZeroPoint);
            Assert.IsNull(int8.Calibration.Find("L", TensorRole.Activation), "nothing between them is quantized");
            Assert.IsTrue(int8.Agreement!.WorstCosine > 0.9999, $"realized vs simulated: worst cosine {int8.Agreement.WorstCosine}");
            for (int i = 0; i < expected.Length; i++)
                Assert.IsTrue(TinyData.Cosine(expected[i], actual[i]) > 0.999, $"row {i}: {TinyData.Cosine(expected[i], actual[i])}");
        }
    }

    [TestMethod]
    public void AReluThatCannotBeFoldedSharesTheGridOfWhatItReads()
    {
        // C is read by the Relu and by an Add, so the Relu stays (no fold into C's quantization); M = Relu(C) then
        // shares C's grid, and its non-negative values are C's own.
        var (int8, _, _) = Fit(m => m
            .Node("Relu", new[] { "C" }, new[] { "R" })
            .Node("Add", new[] { "R", "C" }, new[] { "S" })
            .Node("Relu", new[] { "S" }, new[] { "M" }));
        using (int8)
        {
            var r = int8.Calibration.Find("R", TensorRole.Activation) ?? throw new AssertFailedException("R (the Add's input) is not quantized");
            Assert.AreEqual("SharedWith(C)", r.Method);
            Assert.IsTrue(int8.Agreement!.WorstCosine > 0.9999, $"realized vs simulated: worst cosine {int8.Agreement.WorstCosine}");
        }
    }

    [TestMethod]
    public void OpsThatMoveValuesAwayFromZeroOrChangePositiveOnesKeepTheirOwnGrid()
    {
        foreach (var (name, tail) in new (string, Action<TinyModel>)[]
        {
            ("Max with a positive constant", m => m
                .Constant("floor", new long[] { 1 }, new[] { 0.5f })
                .Node("Max", new[] { "C", "floor" }, new[] { "M" })),
            ("LeakyRelu with α > 1", m => m
                .Node("LeakyRelu", new[] { "C" }, new[] { "M" }, TinyModel.Float("alpha", 2f))),
            ("a Sigmoid", m => m
                .Node("Sigmoid", new[] { "C" }, new[] { "M" })),
        })
        {
            var (int8, _, _) = Fit(tail);
            using (int8)
            {
                var m = int8.Calibration.Find("M", TensorRole.Activation) ?? throw new AssertFailedException($"{name}: M is not quantized");
                Assert.IsFalse(m.Method.StartsWith("SharedWith", StringComparison.Ordinal), $"{name}: {m.Method}");
            }
        }
    }
}
