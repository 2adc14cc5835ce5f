using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

/// <summary>
/// How many of the noisiest layers go back to float: the fewest measured to meet the bound, found by galloping then
/// bisection, never the overshoot of doubling alone.
/// </summary>
[TestClass]
public sealed class FloatLayerSearchTests
{
    [TestMethod]
    public void EveryAnswerOfAMonotoneBoundIsFoundInAboutTwoLogMeasurements()
    {
        foreach (int count in new[] { 1, 2, 3, 7, 8, 100, 213 })
            for (int answer = 1; answer <= count; answer++)
            {
                var measured = new List<int>();
                int found = FloatLayerSearch.Fewest(count, k => { measured.Add(k); return k >= answer; });
                Assert.AreEqual(answer, found, $"{count} layers, the bound met from {answer}: measured {string.Join(", ", measured)}");
                Assert.IsTrue(measured.All(k => k >= 1 && k <= count), string.Join(", ", measured));
                Assert.AreEqual(measured.Count, measured.Distinct().Count(), $"no count measured twice: {string.Join(", ", measured)}");
                int bound = 2 * (int)Math.Ceiling(Math.Log2(answer)) + 1;
                Assert.IsTrue(measured.Count <= bound, $"{count} layers, answer {answer}: {measured.Count} measured, more than {bound}");
                Assert.IsTrue(measured.Max() < 2 * answer, $"never more than twice the answer: {string.Join(", ", measured)}");
            }
    }

    [TestMethod]
    public void WhenNoCountMeetsTheBoundEveryLayerGoesBack()
    {
        var measured = new List<int>();
        Assert.AreEqual(10, FloatLayerSearch.Fewest(10, k => { measured.Add(k); return false; }));
        CollectionAssert.AreEqual(new[] { 1, 2, 4, 8, 10 }, measured);
        Assert.AreEqual(0, FloatLayerSearch.Fewest(0, _ => throw new AssertFailedException("nothing to measure")));
    }

    [TestMethod]
    public void WhereMoreLayersInFloatDoNotLowerTheErrorTheAnswerIsStillACountMeasuredWithin()
    {
        // Within at 1 and at 4 and above, not at 2 or 3: noise that cancels.
        var within = new HashSet<int> { 1, 4, 5, 6, 7, 8, 9 };
        Assert.AreEqual(1, FloatLayerSearch.Fewest(9, within.Contains));
        var later = new HashSet<int> { 3, 6, 7, 8, 9 };
        int found = FloatLayerSearch.Fewest(9, later.Contains);
        Assert.IsTrue(later.Contains(found), $"{found}");
    }

    [TestMethod]
    public void TheFastestModelThatCouldMeetTheBoundIsTimedOnceBeforeTheBisection()
    {
        // 100 layers, the bound met from 40: the galloping brackets the answer in (32, 64], so every answer keeps at
        // least 33 layers in float, and the model with 33 is the one timed.
        foreach (bool fast in new[] { false, true })
        {
            var measured = new List<int>();
            var timed = new List<int>();
            var answer = FloatLayerSearch.Search(100, k => { measured.Add(k); return k >= 40; }, k => { timed.Add(k); return fast; });
            CollectionAssert.AreEqual(fast ? new[] { 33 } : new[] { 33, 64 }, timed, $"fast enough: {fast}");
            if (fast)
            {
                Assert.AreEqual(new FloatLayerSearch.Answer(40, false), answer);
            }
            else
            {
                Assert.AreEqual(new FloatLayerSearch.Answer(33, true), answer);
                CollectionAssert.AreEqual(new[] { 1, 2, 4, 8, 16, 32, 64 }, measured, "no bisection once no answer can gain");
            }
        }

        // More layers in float run faster (int8 layers slower than float ones): 33 is too slow, 64 fast enough, so the
        // bisection asks for both the bound and the speed, and finds the fewest layers that give both.
        {
            var timed = new List<int>();
            var answer = FloatLayerSearch.Search(100, k => k >= 40, k => { timed.Add(k); return k >= 50; });
            Assert.AreEqual(new FloatLayerSearch.Answer(50, false, SpeedDecided: true), answer, $"timed {string.Join(", ", timed)}");
            CollectionAssert.AreEqual(new[] { 33, 64 }, timed.Take(2).ToArray());
        }

        // Nothing to bisect (the first count within, two counts one apart) or nothing within: no timing.
        foreach (var (count, from) in new[] { (100, 1), (100, 2), (10, 11) })
        {
            var answer = FloatLayerSearch.Search(count, k => k >= from, _ => throw new AssertFailedException($"timed: {count} layers, within from {from}"));
            Assert.AreEqual(Math.Min(count, from), answer.Count);
            Assert.IsFalse(answer.NoGain);
        }
    }

    // Seven branches from X, each Conv → Relu → Conv to its own output, fitted with the first five Relus crippled.
    private static readonly string[] Crippled = { "R1", "R2", "R3", "R4", "R5" };

    private static readonly string[] CrippledConvs =
        { "Conv_0", "Conv_11", "Conv_12", "Conv_14", "Conv_2", "Conv_3", "Conv_5", "Conv_6", "Conv_8", "Conv_9" };

    private static QuantizingTransformer FitSevenBranches(TempDirectory directory, Action<QuantizingEstimator.Options> set)
    {
        var model = new TinyModel().Input("X", 1, 2, 6, 6);
        for (int i = 1; i <= 7; i++)
            model.Output($"Y{i}", 1, 1, 6, 6)
                .Weight($"W{i}", new long[] { 4, 2, 3, 3 }).Weight($"V{i}", new long[] { 1, 4, 3, 3 })
                .Node("Conv", new[] { "X", $"W{i}" }, new[] { $"A{i}" }, TinyModel.Ints("pads", 1, 1, 1, 1))
                .Node("Relu", new[] { $"A{i}" }, new[] { $"R{i}" })
                .Node("Conv", new[] { $"R{i}", $"V{i}" }, new[] { $"Y{i}" }, TinyModel.Ints("pads", 1, 1, 1, 1));
        var ml = new MLContext(seed: 1);
        var options = new QuantizingEstimator.Options
        {
            ModelFile = model.Save(directory.Path), Tuning = null,
            // Deliberately bad thresholds: R1 to R5 clipped to a fiftieth of their ranges.
            CustomCalibration = s => Crippled.Contains(s.Tensor) ? new TensorRange(0, (float)s.Max / 50) : null,
        };
        set(options);
        return ml.Transforms.QuantizeCalibrated(options).Fit(CalibrationReportTests.Rows(ml));
    }

    [TestMethod]
    public void TheErrorBoundSendsBackTheCrippledLayersAndNoMore()
    {
        using var directory = new TempDirectory();
        using var model = FitSevenBranches(directory, o => (o.MaximumOutputError, o.MinimumSpeedup) = (0.25, 0));

        var check = model.Deployment!;
        Assert.IsFalse(check.KeptFloat, check.Summary);
        Assert.IsTrue(check.WorstRelativeError <= 0.25, $"every output within the bound: {string.Join("; ", check.Outputs)}");
        var sentBack = check.FloatNodes.Where(kv => kv.Value.Contains("MaximumOutputError")).Select(kv => kv.Key).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        // Batches that double send back 1, then 2, then 4 more layers: two more than the five crippled ones. The search
        // measures 1, 2, 4 and 8 layers, then 6 and 5.
        CollectionAssert.AreEqual(CrippledConvs, sentBack,
            $"the crippled branches' Convs, and no more: {string.Join("; ", check.FloatNodes)}");
        foreach (var tensor in new[] { "R6", "R7" })
            Assert.IsNotNull(model.Calibration.Find(tensor, TensorRole.Activation), $"{tensor} stays quantized");
        foreach (var tensor in Crippled)
            Assert.IsNull(model.Calibration.Find(tensor, TensorRole.Activation), $"{tensor} is no longer quantized");
        // Realized vs simulated describes the model returned, measured again after the layers went back to float.
        var agreement = model.Agreement!;
        Assert.AreEqual(model.Calibration.Count(c => c.Role == TensorRole.Activation), agreement.QuantizedActivations, agreement.ToString());
        Assert.IsTrue(agreement.Agrees && agreement.WorstRelativeError < 0.01, agreement.ToString());
        CollectionAssert.AreEquivalent(Enumerable.Range(1, 7).Select(i => $"Y{i}").ToArray(), agreement.Outputs.Select(o => o.Name).ToArray());
        // The two branches that were within the bound from the start are named, with the option that quantizes for them alone.
        Assert.AreEqual(10, check.NodesFloatForErrorBound);
        CollectionAssert.AreEqual(new[] { "Y6", "Y7" }, check.OutputsWithinErrorBound.ToArray());
        StringAssert.Contains(check.Summary, "10 of them went back to float for every output to be within MaximumOutputError; 'Y6', 'Y7' were " +
            "within it with every layer quantized: if only they are read, set OutputColumnNames to them");
    }

    [TestMethod]
    public void WhereTheFastestModelWithinReachGainsNothingTheSearchStopsAndTheFloatModelIsReturned()
    {
        // No int8 model runs 1000 times as fast as the float one: once the search has bracketed the answer (more than 4
        // layers, at most 8), the model with 5 in float is timed, gains nothing, and no bisection follows.
        using var directory = new TempDirectory();
        using var model = FitSevenBranches(directory, o => (o.MaximumOutputError, o.MinimumSpeedup) = (0.25, 1000));

        var check = model.Deployment!;
        Assert.IsTrue(check.KeptFloat, check.Summary);
        var stopped = check.FloatNodes.Where(kv => kv.Value.Contains("the search stopped there")).Select(kv => kv.Key)
            .OrderBy(n => n, StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(CrippledConvs, stopped, $"the five noisiest layers, timed: {string.Join("; ", check.FloatNodes)}");
        StringAssert.Contains(check.FloatNodes["Conv_0"], "below MinimumSpeedup 1000");
        Assert.IsTrue(check.Speedup < 1000, check.Summary);
        StringAssert.Contains(check.Summary, "The model stays float");
        StringAssert.Contains(check.Summary, "10 of them went back to float in the search for every output to be within MaximumOutputError, " +
            "which stopped there: no model within it ran MinimumSpeedup times as fast; 'Y6', 'Y7' were within it");
    }

    [TestMethod]
    public void OutputsAskedForAreNotNamedAsAChoice()
    {
        using var directory = new TempDirectory();
        using var model = FitSevenBranches(directory, o => (o.MaximumOutputError, o.MinimumSpeedup, o.OutputColumnNames) =
            (0.25, 0, Enumerable.Range(1, 7).Select(i => $"Y{i}").ToArray()));

        Assert.AreEqual(10, model.Deployment!.NodesFloatForErrorBound, string.Join("; ", model.Deployment.FloatNodes));
        Assert.AreEqual(0, model.Deployment.OutputsWithinErrorBound.Count);
        Assert.IsFalse(model.Deployment.Summary.Contains("OutputColumnNames"), model.Deployment.Summary);
    }

    [TestMethod]
    public void TheFallbackKeepsTheCrippledLayersInFloatAndGivesTheOthersTheirParametersBack()
    {
        using var directory = new TempDirectory();
        using var model = FitSevenBranches(directory, o => (o.MinimumOutputCosine, o.CheckDeployment) = (0.99, false));

        var report = model.Report;
        Assert.IsTrue(report.OutputCosine >= 0.99, $"{report.OutputCosine}");
        CollectionAssert.AreEqual(CrippledConvs, report.FloatNodes.OrderBy(n => n, StringComparer.Ordinal).ToArray(),
            $"kept in float: {string.Join(", ", report.FloatNodes)}");
        // The search measured eight layers in float before it settled on five: the others come back with their parameters.
        foreach (var tensor in new[] { "R6", "R7" })
            Assert.IsNotNull(model.Calibration.Find(tensor, TensorRole.Activation), $"{tensor} stays quantized");
    }
}
