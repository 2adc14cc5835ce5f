using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

[TestClass]
public sealed class CalibrationStatisticsTests
{
    // Conv → Relu → MaxPool → Conv: a fused Relu and a shared (MaxPool) scale.
    private static string Model(TempDirectory directory, string name = "tiny.onnx", int seed = 7) => new TinyModel(seed: seed)
        .Input("X", 1, 2, 6, 6).Output("Y", 1, 3, 3, 3)
        .Weight("W", new long[] { 3, 2, 3, 3 }).Weight("B", new long[] { 3 }, 0.2f).Weight("W2", new long[] { 3, 3, 1, 1 })
        .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C" }, new[] { "R" })
        .Node("MaxPool", new[] { "R" }, new[] { "P" }, TinyModel.Ints("kernel_shape", 2, 2), TinyModel.Ints("strides", 2, 2))
        .Node("Conv", new[] { "P", "W2" }, new[] { "Y" })
        .Save(directory.Path, name);

    private static QuantizingTransformer Fit(string model, IDataView rows, Action<QuantizingEstimator.Options>? configure = null)
    {
        // Statistics that serve every method later keep histograms, which max alone would not collect.
        var options = new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = model, CollectHistograms = true };
        configure?.Invoke(options);
        return new MLContext(seed: 1).Transforms.QuantizeCalibrated(options).Fit(rows);
    }

    private static void AssertSameTable(CalibrationTable expected, CalibrationTable actual)
    {
        Assert.IsTrue(expected.Any(e => e.Method.StartsWith("SharedWith")), "the model has a shared scale");
        Assert.AreEqual(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.AreEqual(expected[i].Tensor, actual[i].Tensor);
            Assert.AreEqual(expected[i].Threshold, actual[i].Threshold, expected[i].Tensor);
            Assert.AreEqual(expected[i].Scale, actual[i].Scale, expected[i].Tensor);
            Assert.AreEqual(expected[i].ZeroPoint, actual[i].ZeroPoint, expected[i].Tensor);
        }
    }

    [TestMethod]
    public void MaxReadsTheRowsOnceUnlessHistogramsAreAskedFor()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(48, 72), 72);
        var model = Model(directory);
        var passes = new List<CalibrationProgress>();
        using var once = Fit(model, rows, o => { o.CollectHistograms = null; o.Progress = new SynchronousProgress(passes.Add); });
        CollectionAssert.DoesNotContain(passes.Select(p => p.Pass).ToArray(), 2, "no histogram pass for max");
        Assert.IsFalse(once.Statistics.HasHistograms);
        Assert.IsTrue(double.IsNaN(once.Report.Tensors.First(t => t.Role == TensorRole.Activation).ClippedFraction), "no histogram, no clipping column");
        using var twice = Fit(model, rows);
        Assert.IsTrue(twice.Statistics.HasHistograms);
        AssertSameTable(twice.Calibration, once.Calibration);

        var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(model, rows,
            o => { o.Statistics = once.Statistics; o.ActivationCalibration = CalibrationMethod.KlDivergence; }));
        StringAssert.Contains(error.Message, "ranges only");
        using var kl = Fit(model, rows, o => { o.CollectHistograms = null; o.ActivationCalibration = CalibrationMethod.KlDivergence; });
        Assert.IsTrue(kl.Statistics.HasHistograms, "KL collects them whatever");
    }

    [TestMethod]
    public void SavedStatisticsRecalibrateWithAnotherMethodExactlyAsAFreshCalibration()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(48, 72), 72);
        var model = Model(directory);
        using var kl = Fit(model, rows);
        kl.Statistics.Save(directory.File("stats.bin"));
        var loaded = CalibrationStatistics.Load(directory.File("stats.bin"));
        Assert.AreEqual(48L, loaded.Rows);
        Assert.IsTrue(loaded.HasHistograms);

        var noRows = TinyData.X(ml, Array.Empty<float[]>(), 72);
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            using var fresh = Fit(model, rows, o => o.ActivationCalibration = method);
            using var reused = Fit(model, noRows, o => { o.ActivationCalibration = method; o.Statistics = loaded; });
            AssertSameTable(fresh.Calibration, reused.Calibration);
        }
    }

    [TestMethod]
    public void ShardsMergedByTheTwoRoundProtocolEqualOnePassExactly()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var all = TinyData.Normal(60, 72, seed: 3);
        var shards = new[] { all[..17], all[17..41], all[41..] };
        var model = Model(directory);
        using var whole = Fit(model, TinyData.X(ml, all, 72));

        var ranges = CalibrationStatistics.Merge(shards.Select(s =>
        {
            using var t = Fit(model, TinyData.X(ml, s, 72));
            return t.Statistics;
        }).ToArray());
        Assert.IsFalse(ranges.HasHistograms);
        var merged = CalibrationStatistics.Merge(shards.Reverse().Select(s =>
        {
            using var t = Fit(model, TinyData.X(ml, s, 72), o => o.RangesFrom = ranges);
            return t.Statistics;
        }).ToArray());

        Assert.AreEqual(60L, merged.Rows);
        foreach (var (expected, actual) in whole.Statistics.Tensors.Zip(merged.Tensors))
        {
            Assert.AreEqual(expected.Min, actual.Min);
            Assert.AreEqual(expected.Max, actual.Max);
            Assert.AreEqual(expected.Count, actual.Count);
            CollectionAssert.AreEqual(expected.Histogram!.Counts.ToArray(), actual.Histogram!.Counts.ToArray(), expected.Tensor);
        }
        using var fromShards = Fit(model, TinyData.X(ml, Array.Empty<float[]>(), 72), o => o.Statistics = merged);
        AssertSameTable(whole.Calibration, fromShards.Calibration);

        var error = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(model, TinyData.X(ml, all, 72),
            o => { o.Statistics = ranges; o.ActivationCalibration = CalibrationMethod.KlDivergence; }));
        StringAssert.Contains(error.Message, "RangesFrom");
        using var fromRanges = Fit(model, TinyData.X(ml, Array.Empty<float[]>(), 72), o => o.Statistics = ranges);
        AssertSameTable(whole.Calibration, fromRanges.Calibration);
    }

    [TestMethod]
    public void StatisticsOfAnotherModelOrSettingsAreRefusedWithWhatDiffers()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(8, 72), 72);
        using var first = Fit(Model(directory, "a.onnx", seed: 1), rows);
        var other = Model(directory, "b.onnx", seed: 2);

        var model = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(other, rows, o => o.Statistics = first.Statistics));
        StringAssert.Contains(model.Message, "the model differs");
        var bins = Assert.ThrowsExactly<InvalidOperationException>(() =>
            Fit(directory.File("a.onnx"), rows, o => { o.Statistics = first.Statistics; o.Bins = 2001; }));
        StringAssert.Contains(bins.Message, "8001 bins");
        File.WriteAllText(directory.File("junk.bin"), "junk");
        Assert.ThrowsExactly<InvalidDataException>(() => CalibrationStatistics.Load(directory.File("junk.bin")));
        Assert.ThrowsExactly<ArgumentException>(() => CalibrationStatistics.Merge(first.Statistics, Fit(other, rows).Statistics));
    }
    [TestMethod]
    public void EveryCorruptionOfASavedFileIsRefusedAsInvalidDataNamingTheFile()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = Fit(Model(directory), TinyData.X(ml, TinyData.Normal(16, 72), 72));
        var file = directory.File("stats.bin");
        fitted.Statistics.Save(file);
        var good = File.ReadAllBytes(file);
        Assert.AreEqual(fitted.Statistics.Tensors.Count, CalibrationStatistics.Load(file).Tensors.Count, "the file itself loads");

        var random = new Random(17);
        var broken = directory.File("broken.bin");
        void Refused(byte[] bytes, string what)
        {
            File.WriteAllBytes(broken, bytes);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => CalibrationStatistics.Load(broken), what);
            StringAssert.Contains(e.Message, broken, what);
        }
        for (int trial = 0; trial < 200; trial++)
        {
            var bytes = (byte[])good.Clone();
            int at = random.Next(bytes.Length);
            bytes[at] ^= (byte)(1 << random.Next(8));
            Refused(bytes, $"bit flip at byte {at}");
        }
        foreach (int length in new[] { 0, 1, 5, 12, good.Length / 3, good.Length / 2, good.Length - 33, good.Length - 1 })
            Refused(good.Take(length).ToArray(), $"truncated to {length} bytes");
        Refused(good.Concat(new byte[] { 0 }).ToArray(), "one byte appended");
        var garbage = new byte[4096];
        random.NextBytes(garbage);
        Refused(garbage, "random bytes");
    }

    [TestMethod]
    public void MergingANullShardIsAnArgumentError()
    {
        using var directory = new TempDirectory();
        using var fitted = Fit(Model(directory), TinyData.X(new MLContext(seed: 1), TinyData.Normal(8, 72), 72));
        var e = Assert.ThrowsExactly<ArgumentException>(() => CalibrationStatistics.Merge(fitted.Statistics, null!));
        Assert.AreEqual("shards", e.ParamName);
        StringAssert.Contains(e.Message, "Shard 1");
    }
}
