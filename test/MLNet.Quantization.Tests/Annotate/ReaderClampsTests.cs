using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Annotate;

/// <summary>
/// A tensor read only through clamps is quantized up to the clamp's preimage (ReaderClamps): half the uint8 step where
/// a LeakyRelu and a Max(x, c) follow a convolution, as TensorFlow exports write it, and the same outputs.
/// </summary>
[TestClass]
public sealed class ReaderClampsTests
{
    private const int Size = 2 * 6 * 6;

    // X → Conv → C → tail → a 1×1 Conv → Y; `tail` writes M from C.
    private static string Model(string directory, Action<TinyModel> tail, bool cIsOutput = false)
    {
        var model = new TinyModel()
            .Input("X", 1, 2, 6, 6).Output("Y", 1, 3, 6, 6)
            .Weight("W", new long[] { 4, 2, 3, 3 }).Weight("B", new long[] { 4 }).Weight("W2", new long[] { 3, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1));
        if (cIsOutput) model.Output("C", 1, 4, 6, 6);
        tail(model);
        model.Node("Conv", new[] { "M", "W2" }, new[] { "Y" });
        return model.Save(directory);
    }

    private static (QuantizingTransformer Int8, float[][] Expected, float[][] Actual, TensorStatistics Statistics) Fit(string path, string tensor = "C",
        CalibrationMethod method = CalibrationMethod.Max)
    {
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(32, Size, std: 2), Size);
        var int8 = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = path, CheckDeployment = false, Tuning = null, ActivationCalibration = method,
        }).Fit(data);
        var expected = TinyData.Column(ml.Transforms.ApplyOnnxModel(path).Fit(data).Transform(data), "Y");
        var actual = TinyData.Column(int8.Transform(data), "Y");
        return (int8, expected, actual, int8.Statistics.Tensors.Single(t => t.Tensor == tensor));
    }

    // The lowest and highest values the uint8 grid of `tensor` represents.
    private static (double Low, double High) Grid(QuantizingTransformer int8, string tensor)
    {
        var entry = int8.Calibration.Find(tensor, TensorRole.Activation) ?? throw new AssertFailedException($"{tensor} is not quantized");
        return ((entry.QuantizedMin - entry.ZeroPoint) * (double)entry.Scale, (entry.QuantizedMax - entry.ZeroPoint) * (double)entry.Scale);
    }

    [TestMethod]
    [DataRow(CalibrationMethod.Max)]
    [DataRow(CalibrationMethod.Percentile)]
    public void AConvolutionReadThroughLeakyReluAndMaxIsQuantizedOnlyDownToTheClampsPreimage(CalibrationMethod method)
    {
        using var directory = new TempDirectory();
        var path = Model(directory.Path, m => m
            .Constant("floor", new long[] { 1 }, new[] { -0.4f })
            .Node("LeakyRelu", new[] { "C" }, new[] { "L" }, TinyModel.Float("alpha", 0.2f))
            .Node("Max", new[] { "L", "floor" }, new[] { "M" }));
        var (int8, expected, actual, c) = Fit(path, method: method);
        using (int8)
        {
            Assert.IsTrue(c.Min < -5, $"the data must reach far below the clamp's preimage −2 (C's minimum {c.Min})");
            var (low, high) = Grid(int8, "C");
            var entry = int8.Calibration.Find("C", TensorRole.Activation)!;
            // −0.4 / 0.2 = −2: the grid starts within one step of it, not at C's minimum.
            Assert.AreEqual(-2, low, entry.Scale, $"C's grid [{low}, {high}]");
            Assert.IsTrue(high >= c.Max - entry.Scale, "the top of the range is the calibrated one");
            StringAssert.Contains(entry.Note, "readers clamp it");
            // The report (and the deployment check, which ranks layers by it) compares C within the clamp: past it the
            // float and the quantized C differ by up to C's minimum + 2, which no reader sees.
            var c2 = int8.Report.Tensors.Single(t => t.Tensor == "C" && t.Role == TensorRole.Activation);
            var m = int8.Report.Tensors.Single(t => t.Tensor == "M" && t.Role == TensorRole.Activation);
            Assert.IsTrue(c2.SqnrDb > 30, $"C's SQNR within the clamp: {c2.SqnrDb:F1} dB");
            Assert.IsTrue(c2.AddedNoise < m.AddedNoise + 0.01, $"C adds {c2.AddedNoise}, M {m.AddedNoise}");
            if (method == CalibrationMethod.Percentile) // the method that keeps histograms
                Assert.IsTrue(c2.ClippedFraction < 0.01, $"the values below −2 are not clipped for C's readers ({c2.ClippedFraction:P1} counted)");
            for (int i = 0; i < expected.Length; i++)
                Assert.IsTrue(TinyData.Cosine(expected[i], actual[i]) > 0.999, $"row {i}: {TinyData.Cosine(expected[i], actual[i])}");
        }
    }

    [TestMethod]
    public void AClipAwayFromZeroBoundsBothEnds()
    {
        using var directory = new TempDirectory();
        var path = Model(directory.Path, m => m
            .Constant("lo", Array.Empty<long>(), new[] { -1f }).Constant("hi", Array.Empty<long>(), new[] { 1.5f })
            .Node("Clip", new[] { "C", "lo", "hi" }, new[] { "M" }));
        var (int8, expected, actual, c) = Fit(path);
        using (int8)
        {
            Assert.IsTrue(c.Min < -3 && c.Max > 3.5, $"C ranges over [{c.Min}, {c.Max}]");
            var (low, high) = Grid(int8, "C");
            var scale = int8.Calibration.Find("C", TensorRole.Activation)!.Scale;
            Assert.AreEqual(-1, low, scale, $"C's grid [{low}, {high}]");
            Assert.AreEqual(1.5, high, scale, $"C's grid [{low}, {high}]");
            Assert.IsTrue(TinyData.MaxAbsDifference(expected, actual) < 0.05 * expected.Max(r => r.Max(Math.Abs)));
        }
    }

    [TestMethod]
    public void AMinimumAfterAFoldedReluBoundsTheTop()
    {
        using var directory = new TempDirectory();
        var path = Model(directory.Path, m => m
            .Constant("six", new long[] { 1 }, new[] { 2f })
            .Node("Relu", new[] { "C" }, new[] { "R" })
            .Node("Min", new[] { "R", "six" }, new[] { "M" }));
        var (int8, _, _, r) = Fit(path, "R");
        using (int8)
        {
            Assert.IsTrue(r.Max > 4, $"R's maximum {r.Max}");
            // The Relu folds into the quantization of its output R, which the Min then bounds at 2.
            var (low, high) = Grid(int8, "R");
            Assert.AreEqual(0, low);
            Assert.AreEqual(2, high, int8.Calibration.Find("R", TensorRole.Activation)!.Scale, $"R's grid [{low}, {high}]");
        }
    }

    [TestMethod]
    public void AReaderThatIsNoClampOrAGraphOutputKeepsTheWholeRange()
    {
        foreach (var (name, cIsOutput, tail) in new (string, bool, Action<TinyModel>)[]
        {
            ("also read by an Add", false, m => m
                .Constant("floor", new long[] { 1 }, new[] { -0.4f })
                .Node("Max", new[] { "C", "floor" }, new[] { "F" })
                .Node("Add", new[] { "F", "C" }, new[] { "M" })),
            ("a graph output", true, m => m
                .Constant("floor", new long[] { 1 }, new[] { -0.4f })
                .Node("Max", new[] { "C", "floor" }, new[] { "M" })),
            ("a Max of two tensors", false, m => m
                .Node("Neg", new[] { "C" }, new[] { "N" })
                .Node("Max", new[] { "C", "N" }, new[] { "M" })),
        })
        {
            using var directory = new TempDirectory();
            var (int8, _, _, c) = Fit(Model(directory.Path, tail, cIsOutput));
            using (int8)
            {
                var entry = int8.Calibration.Find("C", TensorRole.Activation) ?? throw new AssertFailedException($"{name}: C is not quantized");
                var (low, _) = Grid(int8, "C");
                Assert.IsTrue(low <= c.Min + entry.Scale && low < -3, $"{name}: C's grid starts at {low}, its minimum is {c.Min}");
                Assert.AreEqual("", entry.Note, name);
            }
        }
    }
}
