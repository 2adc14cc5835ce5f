using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class StatisticsCollectorTests
{
    private static string ConvModel(TempDirectory directory) => CalibratorTests.ConvModel(directory);

    // Collects with or without histograms on these rows; the passes that reported progress land in passes.
    private static CalibrationStatistics Collect(string model, IDataView rows, bool histograms, CalibrationStatistics? known, ISet<int> passes)
    {
        var context = Contexts.For(model, rows, new QuantizingEstimator.Options
        {
            CollectHistograms = histograms, Progress = new SynchronousProgress(p => passes.Add(p.Pass)),
        }).Run(new AnnotatePass());
        return StatisticsCollector.Collect(context.Model, context.Plan, context.Data, context.Settings, "", new Dictionary<string, string>(), known);
    }

    private static void AssertSame(CalibrationStatistics expected, CalibrationStatistics actual)
    {
        var e = expected.ByTensor();
        var a = actual.ByTensor();
        CollectionAssert.AreEquivalent(e.Keys.ToList(), a.Keys.ToList());
        foreach (var (tensor, stats) in e)
        {
            Assert.AreEqual(stats.Min, a[tensor].Min, tensor);
            Assert.AreEqual(stats.Max, a[tensor].Max, tensor);
            Assert.AreEqual(stats.MeanSampleMax, a[tensor].MeanSampleMax, tensor);
            Assert.AreEqual(stats.Histogram!.Max, a[tensor].Histogram!.Max, tensor);
            CollectionAssert.AreEqual(stats.Histogram.Counts.ToArray(), a[tensor].Histogram!.Counts.ToArray(), tensor);
        }
    }

    [TestMethod]
    public void WhereEveryTensorKeptItsValueNothingIsStreamedAndNoSessionOpened()
    {
        // As after a rewrite that keeps every tensor's value: the statistics of before describe every tensor of the plan.
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ConvModel(directory);
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72);
        var before = Collect(model, rows, histograms: true, known: null, new HashSet<int>());
        var passes = new HashSet<int>();
        var context = Contexts.For(model, rows, new QuantizingEstimator.Options
        {
            CollectHistograms = true, Progress = new SynchronousProgress(p => passes.Add(p.Pass)),
        }).Run(new AnnotatePass());
        long opened = global::MLNet.Quantization.Realize.Sessions.Opened;
        var after = StatisticsCollector.Collect(context.Model, context.Plan, context.Data, context.Settings, "", new Dictionary<string, string>(),
            kept: before);
        Assert.AreEqual(opened, global::MLNet.Quantization.Realize.Sessions.Opened, "no session is opened");
        Assert.AreEqual(0, passes.Count, "no rows are streamed");
        Assert.AreEqual(before.Rows, after.Rows);
        AssertSame(before, after);
    }

    [TestMethod]
    public void HistogramsOverTheRangesOfTheSameRowsTakeOnePassAndEqualTheTwoPasses()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ConvModel(directory);
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72);
        var passes = new HashSet<int>();
        var ranges = Collect(model, rows, histograms: false, known: null, passes);
        Assert.IsTrue(ranges.ByTensor().Values.All(s => s.Histogram is null));

        var twoPasses = new HashSet<int>();
        var expected = Collect(model, rows, histograms: true, known: null, twoPasses);
        CollectionAssert.AreEquivalent(new[] { 1, 2 }, twoPasses.ToList());
        var onePass = new HashSet<int>();
        var actual = Collect(model, rows, histograms: true, known: ranges, onePass);
        CollectionAssert.AreEquivalent(new[] { 2 }, onePass.ToList(), "the range pass is left out");
        AssertSame(expected, actual);
    }

    [TestMethod]
    public void RangesThatDoNotHoldOnTheseRowsCostASecondPassAndChangeNothing()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ConvModel(directory);
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72);
        // Ranges of other rows, half as wide: most of these rows' values fall outside their bins.
        var other = Collect(model, TinyData.X(ml, TinyData.Normal(40, 72, seed: 4).Select(r => r.Select(v => v / 2).ToArray()).ToArray(), 72),
            histograms: false, known: null, new HashSet<int>());
        var expected = Collect(model, rows, histograms: true, known: null, new HashSet<int>());
        var actual = Collect(model, rows, histograms: true, known: other, new HashSet<int>());
        AssertSame(expected, actual);
    }

    // The ranges of ranges, each copied and marked as read on another model (as after SmoothQuant) or not; the range of
    // tensor "off" multiplied by factor.
    private static CalibrationStatistics Known(CalibrationStatistics ranges, bool readOnAnotherModel, string off, double factor) =>
        new(ranges.ModelFingerprint, ranges.Inputs, ranges.Bins, ranges.Rows, ranges.Tensors.Select(t =>
        {
            var copy = t.Clone(t.Node, t.OpType);
            if (t.Tensor == off) copy.Restore(t.Min * factor, t.Max * factor, t.Count);
            copy.ReadOnAnotherModel = readOnAnotherModel;
            return copy;
        }).ToList());

    [TestMethod]
    public void OnlyTheTensorsWhoseKnownRangeDidNotHoldAreCountedAgain()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ConvModel(directory);
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72);
        var ranges = Collect(model, rows, histograms: false, known: null, new HashSet<int>());
        Assert.IsTrue(ranges.Tensors.Count >= 2, "the model has several activations");
        // Read on this model, so a range must hold exactly: one of them a few ulps wider does not.
        var off = ranges.Tensors[^1].Tensor;
        var known = Known(ranges, readOnAnotherModel: false, off, 1 + 1e-15);
        Assert.AreNotEqual(ranges.ByTensor()[off].AbsMax, known.ByTensor()[off].AbsMax);

        var expected = Collect(model, rows, histograms: true, known: null, new HashSet<int>());
        long before = StatisticsCollector.TensorsRecounted;
        var passes = new HashSet<int>();
        var actual = Collect(model, rows, histograms: true, known: known, passes);
        Assert.AreEqual(1, StatisticsCollector.TensorsRecounted - before, $"only '{off}' is counted again");
        CollectionAssert.AreEquivalent(new[] { 2 }, passes.ToList());
        AssertSame(expected, actual);

        // Every range held: nothing is counted again.
        before = StatisticsCollector.TensorsRecounted;
        AssertSame(expected, Collect(model, rows, histograms: true, known: ranges, new HashSet<int>()));
        Assert.AreEqual(0, StatisticsCollector.TensorsRecounted - before);
    }

    [TestMethod]
    public void RangesReadOnAnotherModelThatHoldWithinTheirSlackAreCountedOverInOnePass()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ConvModel(directory);
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72);
        var ranges = Collect(model, rows, histograms: false, known: null, new HashSet<int>());
        var expected = Collect(model, rows, histograms: true, known: null, new HashSet<int>());
        // As after SmoothQuant: ranges read on the model before the rewrite, one of them 10⁻⁶ too wide (within 2⁻¹⁸).
        var off = ranges.Tensors[^1].Tensor;
        var known = Known(ranges, readOnAnotherModel: true, off, 1 + 1e-6);

        long before = StatisticsCollector.TensorsRecounted;
        var passes = new HashSet<int>();
        var actual = Collect(model, rows, histograms: true, known: known, passes).ByTensor();
        Assert.AreEqual(0, StatisticsCollector.TensorsRecounted - before, "no histogram is counted again");
        CollectionAssert.AreEquivalent(new[] { 2 }, passes.ToList(), "one pass");
        var percentile = new PercentileSearch();
        foreach (var e in expected.Tensors)
        {
            var a = actual[e.Tensor];
            // The range is this pass's own; the histogram is over the known one widened, and counts every value.
            Assert.AreEqual(e.Min, a.Min, e.Tensor);
            Assert.AreEqual(e.Max, a.Max, e.Tensor);
            Assert.AreEqual(known.ByTensor()[e.Tensor].AbsMax * (1 + StatisticsCollector.RangeSlack), a.Histogram!.Max, e.Tensor);
            Assert.AreEqual(e.Histogram!.Total, a.Histogram.Total, e.Tensor);
            Assert.IsFalse(a.ReadOnAnotherModel, $"{e.Tensor}: its range was read on this model");
            // A threshold moves by at most the widening and one bin.
            double tolerance = a.Histogram.Max - e.Histogram.Max + Math.Max(e.Histogram.BinWidth, a.Histogram.BinWidth);
            Assert.AreEqual(percentile.Search(e.Histogram).Max, percentile.Search(a.Histogram).Max, tolerance, e.Tensor);
        }

        // Off by more than the slack: that histogram is counted again, over this pass's range, as the two passes count it.
        var far = Known(ranges, readOnAnotherModel: true, off, 1 + 1e-3);
        before = StatisticsCollector.TensorsRecounted;
        var recounted = Collect(model, rows, histograms: true, known: far, new HashSet<int>()).ByTensor()[off];
        Assert.AreEqual(1, StatisticsCollector.TensorsRecounted - before, $"only '{off}' is counted again");
        Assert.AreEqual(expected.ByTensor()[off].Histogram!.Max, recounted.Histogram!.Max);
        CollectionAssert.AreEqual(expected.ByTensor()[off].Histogram!.Counts.ToArray(), recounted.Histogram.Counts.ToArray());
    }

    [TestMethod]
    public void ATunerTrialThatOnlyAsksForHistogramsReadsTheRowsOnce()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var passes = new List<int>();
        // Max first (ranges), then percentile on the same float model: one more pass, not two.
        var context = Contexts.For(ConvModel(directory), TinyData.X(ml, TinyData.Normal(40, 72, seed: 3), 72), new QuantizingEstimator.Options
        {
            Progress = new SynchronousProgress(p => { if (passes.Count == 0 || passes[^1] != p.Pass) passes.Add(p.Pass); }),
        }).Run(new AnnotatePass(), new ActivationStatisticsPass());
        CollectionAssert.AreEqual(new[] { 1 }, passes);
        var percentile = context.Fork(context.Settings with
        {
            Activations = context.Settings.Activations with { Method = CalibrationMethod.Percentile },
        }, cloneModel: false);
        Assert.AreEqual(1, new ActivationStatisticsPass().EstimatedStreams(percentile), "the tuner's estimate counts one stream");
        percentile.Run(new AnnotatePass(), new ActivationStatisticsPass());
        CollectionAssert.AreEqual(new[] { 1, 2 }, passes);
        Assert.IsTrue(percentile.Statistics.HasHistograms);
    }
}
