using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class CalibratorTests
{
    /// <summary>A 3×3 Conv of 2 into 3 channels with a bias, then a Relu.</summary>
    internal static string ConvModel(TempDirectory directory, float biasOffset = 0) => new TinyModel()
        .Input("X", 1, 2, 6, 6).Output("Y", 1, 3, 6, 6)
        .Weight("W", new long[] { 3, 2, 3, 3 }).Weight("B", new long[] { 3 }, 0.2f, biasOffset)
        .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C" }, new[] { "Y" })
        .Save(directory.Path);

    private static IDataView Rows(MLContext ml, int seed = 11, int count = 32) => TinyData.X(ml, TinyData.Normal(count, 72, seed), 72);

    private static QuantizingTransformer Fit(string model, IDataView rows, Action<QuantizingEstimator.Options>? configure = null)
    {
        var options = new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = model };
        configure?.Invoke(options);
        return new MLContext(seed: 1).Transforms.QuantizeCalibrated(options).Fit(rows);
    }

    [TestMethod]
    public void CustomCalibrationOverridesTheChosenTensorsOnly()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var seen = new List<TensorStatistics>();
        using var model = Fit(ConvModel(directory), Rows(ml), o => o.CustomCalibration = stats =>
        {
            seen.Add(stats);
            return stats.Tensor == "X" ? new TensorRange(-8, 8) : null;
        });

        CollectionAssert.AreEquivalent(new[] { "X", "Y", "W" }, seen.Select(s => s.Tensor).ToArray());
        Assert.IsTrue(seen.All(s => s.Histogram is not null), "the callback gets histograms");
        Assert.AreEqual(TensorRole.Weight, seen.Single(s => s.Tensor == "W").Role);
        var x = model.Calibration.Find("X", TensorRole.Activation)!;
        Assert.AreEqual("Custom", x.Method);
        Assert.AreEqual(8f, x.Threshold);
        Assert.AreEqual(16f / 255, x.Scale, "asymmetric by default: [-8, 8] over 255 steps");
        Assert.AreEqual("Max", model.Calibration.Find("Y", TensorRole.Activation)!.Method);
    }

    [TestMethod]
    public void AnInvalidCustomRangeNamesTheTensor()
    {
        using var directory = new TempDirectory();
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(ConvModel(directory), Rows(new MLContext()),
            o => o.CustomCalibration = s => s.Tensor == "Y" ? new TensorRange(1, float.NaN) : null));
        StringAssert.Contains(error.Message, "'Y'");
    }

    [TestMethod]
    public void ABiasBeyondInt32StaysFloatWithANote()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var path = ConvModel(directory, biasOffset: 3e7f);
        using var model = Fit(path, Rows(ml), o => o.ActivationCalibration = CalibrationMethod.Max);

        var bias = model.Calibration.Find("B", TensorRole.Bias)!;
        Assert.AreEqual("float", bias.ElementType);
        Assert.AreEqual("KeptFloat", bias.Method);
        StringAssert.Contains(bias.Note, "beyond int32");
        var expected = TinyData.Column(ml.Transforms.ApplyOnnxModel(path).Fit(Rows(ml)).Transform(Rows(ml)), "Y");
        var actual = TinyData.Column(model.Transform(Rows(ml)), "Y");
        Assert.IsTrue(expected.Zip(actual, TinyData.Cosine).Min() > 0.9999, $"the float bias keeps the output right: {expected[0][0]} vs {actual[0][0]}, {string.Join(",", model.Calibration)}");
    }

    [TestMethod]
    public void ThresholdsDoNotDependOnRowOrder()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.Normal(40, 72, seed: 5);
        var shuffled = rows.OrderBy(r => r[3]).ToArray();
        // Max ranges cannot depend on order; the histogram searches could (through the pass-1 range or the counts).
        foreach (var method in new[] { CalibrationMethod.KlDivergence, CalibrationMethod.Percentile })
        {
            using var a = Fit(ConvModel(directory), TinyData.X(ml, rows, 72), o => o.ActivationCalibration = method);
            using var b = Fit(ConvModel(directory), TinyData.X(ml, shuffled, 72), o => o.ActivationCalibration = method);
            Assert.IsTrue(a.Calibration.Any(c => c.Role == TensorRole.Activation && c.Method == method.ToString()));
            CollectionAssert.AreEqual(a.Calibration.Select(c => c.Threshold).ToArray(), b.Calibration.Select(c => c.Threshold).ToArray(), method.ToString());
            CollectionAssert.AreEqual(a.Calibration.Select(c => c.Scale).ToArray(), b.Calibration.Select(c => c.Scale).ToArray(), method.ToString());
        }
    }

    [TestMethod]
    public void EveryMethodCalibratesAndPowerOfTwoGivesPowersOfTwo()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            using var model = Fit(ConvModel(directory), Rows(ml), o => { o.ActivationCalibration = method; o.WeightScale = WeightScaleMethod.PowerOfTwo; });
            foreach (var entry in model.Calibration.Where(c => c.Role == TensorRole.Activation))
            {
                Assert.AreEqual(method.ToString(), entry.Method);
                Assert.IsTrue(entry.Threshold > 0 && float.IsFinite(entry.Scale));
                if (method == CalibrationMethod.KlDivergencePowerOfTwo)
                    Assert.AreEqual(Math.Round(Math.Log2(entry.Threshold)), Math.Log2(entry.Threshold), 1e-9, entry.ToString());
            }
            var weight = model.Calibration.Find("W", TensorRole.Weight)!;
            Assert.IsTrue(weight.ChannelScales.All(s => Math.Log2(s) == Math.Round(Math.Log2(s))), "power-of-two weight scales");
        }
    }
    [TestMethod]
    public void MeanMinMaxAveragesEachRowsExtremesAndSurvivesSavedStatistics()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.Normal(30, 72, seed: 9);
        rows[4][7] = 40; // one outlier row: max moves to 40, the mean of the rows' maxima by about 40 / 30
        var data = TinyData.X(ml, rows, 72);
        using var mean = Fit(ConvModel(directory), data, o => o.ActivationCalibration = CalibrationMethod.MeanMinMax);
        using var max = Fit(ConvModel(directory), data, o => o.ActivationCalibration = CalibrationMethod.Max);
        var x = mean.Calibration.Find("X", TensorRole.Activation)!;
        Assert.AreEqual("MeanMinMax", x.Method);
        double meanMin = rows.Average(r => r.Min()), meanMax = rows.Average(r => r.Max());
        Assert.AreEqual(Math.Max(Math.Abs(meanMin), meanMax), x.Threshold, 1e-4, "the threshold of [mean min, mean max]");
        Assert.AreEqual(-meanMin / ((meanMax - meanMin) / 255), x.ZeroPoint, 1.0, "asymmetric over the mean range");
        Assert.IsTrue(x.Threshold < max.Calibration.Find("X", TensorRole.Activation)!.Threshold / 5, "the outlier moves it by its share only");

        var file = directory.File("stats.bin");
        mean.Statistics.Save(file);
        using var again = Fit(ConvModel(directory), data, o =>
        {
            o.ActivationCalibration = CalibrationMethod.MeanMinMax;
            o.Statistics = CalibrationStatistics.Load(file);
        });
        CollectionAssert.AreEqual(mean.Calibration.Select(c => c.Scale).ToArray(), again.Calibration.Select(c => c.Scale).ToArray());
    }

    private sealed class FixedSearch : IThresholdSearch
    {
        public TensorRange Search(Histogram histogram) => TensorRange.FromThreshold(0.5, histogram.NonNegative);
    }

    [TestMethod]
    public void AnActivationSearchOfOnesOwnReplacesTheMethod()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = Fit(ConvModel(directory), TinyData.X(ml, TinyData.Normal(16, 72), 72), o => o.ActivationSearch = new FixedSearch());
        var activations = fitted.Calibration.Where(c => c.Role == TensorRole.Activation && !c.Method.StartsWith("SharedWith")).ToList();
        Assert.IsTrue(activations.Count > 0);
        foreach (var a in activations)
        {
            Assert.AreEqual(nameof(FixedSearch), a.Method);
            Assert.AreEqual(0.5f, a.Threshold, 1e-6f, a.Tensor);
        }
    }

    [TestMethod]
    public void TheWeightCacheServesTheSameBytesUnderTheSameSettingsOnly()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var context = Contexts.For(ConvModel(directory), Rows(ml))
            .Run(new AnnotatePass(), new ActivationStatisticsPass());
        var settings = context.Settings;
        var cache = new WeightCache();
        QuantizedWeight Weight(OnnxGraph g, WeightSettings weights, WeightCache? c) =>
            Calibrator.Calibrate(g, context.Plan, context.Statistics.ByTensor(), settings.Activations, weights, c).Weights["W"];
        var model = context.Model;
        var uncached = Weight(model, settings.Weights, null);
        var first = Weight(model, settings.Weights, cache);
        CollectionAssert.AreEqual(uncached.Values, first.Values);
        CollectionAssert.AreEqual(uncached.Scales, first.Scales);
        Assert.AreSame(first.Values, Weight(model, settings.Weights, cache).Values, "the same bytes and settings: quantized once");
        Assert.AreSame(first.Values, Weight(context.Model.Clone(), settings.Weights, cache).Values, "a copy of the model shares the bytes");
        var perTensor = Weight(model, settings.Weights with { PerChannel = false }, cache);
        Assert.AreNotSame(first.Values, perTensor.Values);
        Assert.AreEqual(1, perTensor.Scales.Length);

        // New bytes under the same name (a rewritten weight) are quantized again.
        var changed = context.Model.Clone();
        var w = changed.FindConstant("W")!;
        var doubled = Tensors.ReadFloats(w).Select(v => 2 * v).ToArray();
        changed.RemoveInitializer(w);
        changed.AddInitializer(Tensors.FromFloats("W", Tensors.Dims(w), doubled));
        var rewritten = Weight(changed, settings.Weights, cache);
        CollectionAssert.AreEqual(first.Scales.Select(s => 2 * s).ToArray(), rewritten.Scales);
    }

    [TestMethod]
    public void TheBuiltInSearchesOnEveryCoreGiveTheThresholdsOfTheSameSearchRunInOrder()
    {
        // A search passed as ActivationSearch is the user's own, called on the calling thread in order; the same search
        // as ActivationCalibration runs on every core at once. Every tensor's threshold must come out the same.
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var path = ConvModel(directory);
        foreach (var (method, search) in new (CalibrationMethod, IThresholdSearch)[]
        {
            (CalibrationMethod.KlDivergence, new KlDivergenceSearch()), (CalibrationMethod.Percentile, new PercentileSearch()),
            (CalibrationMethod.MeanSquaredError, new MeanSquaredErrorSearch()),
        })
        {
            using var parallel = Fit(path, Rows(ml), o => o.ActivationCalibration = method);
            using var inOrder = Fit(path, Rows(ml), o => o.ActivationSearch = search);
            var expected = inOrder.Calibration.Where(e => e.Role == TensorRole.Activation).ToList();
            Assert.IsTrue(expected.Count >= 2, method.ToString());
            foreach (var e in expected)
            {
                var actual = parallel.Calibration.Find(e.Tensor, TensorRole.Activation)!;
                Assert.AreEqual(e.Threshold, actual.Threshold, $"{method}: {e.Tensor}");
                Assert.AreEqual(e.Scale, actual.Scale, $"{method}: {e.Tensor}");
                Assert.AreEqual(e.ZeroPoint, actual.ZeroPoint, $"{method}: {e.Tensor}");
            }
        }
    }

    [TestMethod]
    public void WorkOnEveryCoreRunsEveryIndexAndLetsTheFirstFailureOutUnwrapped()
    {
        var done = new bool[64];
        Calibrator.OnEveryCore(done.Length, i => done[i] = true);
        Assert.IsTrue(done.All(d => d));

        var error = Assert.ThrowsExactly<InvalidDataException>(() => Calibrator.OnEveryCore(64, i =>
        {
            if (i == 40 || i == 7) throw new InvalidDataException($"tensor {i}");
        }));
        Assert.AreEqual("tensor 7", error.Message, "the first failure in index order, as a loop in order would throw");
    }
}
