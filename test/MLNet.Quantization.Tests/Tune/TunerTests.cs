using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Calibrate;
using MLNet.Quantization.Tests.Equalize;
using MLNet.Quantization.Tests.Pipeline;
using MLNet.Quantization.Tune;

namespace MLNet.Quantization.Tests.Tune;

[TestClass]
public sealed class TunerTests
{
    private static QuantizingTransformer Fit(MLContext ml, IDataView rows, QuantizingEstimator.Options options) =>
        ml.Transforms.QuantizeCalibrated(options).Fit(rows);

    private static string OneMatMul(TempDirectory directory) => new TinyModel().Input("X", 1, 64).Output("Y", 1, 8)
        .Weight("W", new long[] { 64, 8 }).Node("MatMul", new[] { "X", "W" }, new[] { "Y" }).Save(directory.Path);

    private static void AssertBestIsNeverWorseThanTheRecipeAsSet(TuningResult tuning)
    {
        var best = tuning.Best!;
        var first = tuning.Trials[0];
        Assert.IsTrue(best.Score > first.Score || (best.Score == first.Score && best.MeanCosine >= first.MeanCosine),
            $"the chosen trial is never worse than the first:\n{tuning.ToCsv()}");
    }

    [TestMethod]
    public void OnOutlierChannelsBeforeAMatMulTheTunerSmooths()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = Fit(ml, SmoothQuantPassTests.Outliers(ml, 80), new QuantizingEstimator.Options
        {
            ModelFile = SmoothQuantPassTests.TwoMatMuls(directory), CheckDeployment = false,
            ActivationCalibration = CalibrationMethod.Max, WeightRounding = WeightRounding.Nearest, // pinned: SmoothQuant is the only knob
            // Every α, however slow the machine (the default budget scales with the first trial, at least 10 s in all).
            Tuning = new TuningOptions { TimeBudget = TimeSpan.FromMinutes(10) },
        });
        var tuning = fitted.Tuning!;
        Assert.IsFalse(tuning.Trials.Any(t => t.Knob == nameof(QuantizingEstimator.Options.ActivationCalibration)), "an explicit option pins its knob");
        Assert.AreEqual(4, tuning.Trials.Count, tuning.ToCsv()); // the recipe as set, then α = 0.8, 0.5, 0.95
        StringAssert.DoesNotMatch(tuning.Best!.Recipe, new System.Text.RegularExpressions.Regex("SmoothQuantAlpha=off"), tuning.ToCsv());
        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor.EndsWith("_smoothed", StringComparison.Ordinal)), "the returned model is the smoothed one");
        AssertBestIsNeverWorseThanTheRecipeAsSet(tuning);
        // The three α candidates read the same statistics of the same float model, which the first trial's activation
        // stream reduced: no stream of their own.
        var streams = fitted.FitTimings.Count(t => t.Pass == "statistics for SmoothQuant");
        var applied = fitted.FitTimings.Count(t => t.Pass == "SmoothQuant");
        Assert.AreEqual(3, applied, string.Join(", ", fitted.FitTimings.Select(t => t.Pass)));
        Assert.AreEqual(0, streams, string.Join(", ", fitted.FitTimings.Select(t => t.Pass)));
    }

    [TestMethod]
    public void OnceTheTunerHasChosenWhatItCollectedForLaterTrialsIsDroppedAndTheChecksStillRun()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var root = Contexts.For(SmoothQuantPassTests.TwoMatMuls(directory), SmoothQuantPassTests.Outliers(ml, 80),
            new QuantizingEstimator.Options { CheckDeployment = false, ActivationCalibration = CalibrationMethod.Max, WeightRounding = WeightRounding.Nearest },
            new TuningOptions { TimeBudget = TimeSpan.FromMinutes(10) });
        var chosen = Tuner.Run(root);
        Tuner.ReleaseTrialMemory(chosen);
        // The SmoothQuant trials read the maxima and the rows' extremes that the first stream reduced, and each candidate's
        // activation statistics were kept: all of it is dropped, in the recipe as set too, which shares it.
        Assert.AreEqual(4, chosen.Tuning!.Trials.Count(t => t.Skipped is null), chosen.Tuning.ToCsv());
        Assert.AreEqual(0, chosen.Collected.Count + chosen.CollectedActivations.Count + chosen.Foreseen.Count);
        Assert.IsNotNull(chosen.RecipeAsSet, "SmoothQuant was chosen, so the recipe as set is kept for the deployment check");
        Assert.AreEqual(0, chosen.RecipeAsSet!.Collected.Count + chosen.RecipeAsSet.CollectedActivations.Count);
        Assert.IsTrue(chosen.Statistics.Tensors.Count > 0, "the chosen recipe's statistics stay, for the report");

        QuantizationPipeline.Run(chosen, QuantizationPipeline.Checks(chosen.Settings));
        Assert.IsTrue(chosen.Agreement is { Rows: > 0 }, "the checks need nothing that was dropped");
        Assert.AreEqual(1, chosen.Timings.Count(t => t.Pass == nameof(Tuner.ReleaseTrialMemory)));
    }

    [TestMethod]
    public void AfterTuningTheChecksMeasureTheHeldBackRowsAgainstTheKeptFloatOutputs()
    {
        using var directory = new TempDirectory();
        var model = OneMatMul(directory);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(400, 64), 64); // 80 rows held back
        using var unchecked_ = Fit(ml, data, new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false });
        Assert.AreEqual(MLNet.Quantization.Realize.AgreementCheck.MeasuredRows, unchecked_.Agreement!.Rows, "the agreement compares the first 64 held-back rows");
        using var checked_ = Fit(ml, data, new QuantizingEstimator.Options { ModelFile = model });
        var deployment = checked_.Deployment!;
        Assert.AreEqual(80, deployment.Rows, "the deployment check compares every held-back row");
        Assert.IsTrue(deployment.Outputs.Single().RelativeError is > 0 and < 0.05 && deployment.Outputs.Single().MeanCosine > 0.998,
            deployment.Outputs.Single().ToString());
        Assert.IsTrue(deployment.FloatMillisecondsPerRow > 0 && deployment.MeasuredQuantizedMillisecondsPerRow > 0);
    }

    [TestMethod]
    public void WhenTheChosenRecipeIsReturnedInFloatTheRecipeAsSetIsCheckedToo()
    {
        using var directory = new TempDirectory();
        var model = OneMatMul(directory);
        var ml = new MLContext(seed: 1);
        // As below: the tuner chooses a clipping method over max, the recipe as set.
        var data = TinyData.X(ml, TinyData.Normal(100, 64).Select((r, i) => i % 10 == 3 ? r.Select((v, j) => j == i % 64 ? 300f : v).ToArray() : r).ToArray(), 64);
        QuantizingTransformer Checked(double minimumSpeedup) => Fit(ml, data, new QuantizingEstimator.Options
        {
            ModelFile = model, SmoothQuantAlpha = null, MinimumSpeedup = minimumSpeedup,
        });
        int Checks(QuantizingTransformer fitted) => fitted.FitTimings.Count(t => t.Pass == "DeploymentCheck");

        // No int8 model is 1000x faster: the chosen recipe is returned in float, the recipe as set is checked, fails too,
        // and the float model stays, with the best trial still the chosen one.
        using (var slow = Checked(1000))
        {
            Assert.IsTrue(slow.Deployment!.KeptFloat);
            Assert.AreEqual(2, Checks(slow), string.Join(", ", slow.FitTimings.Select(t => t.Pass)));
            Assert.IsNull(slow.Tuning!.Fallback);
            Assert.AreNotEqual(1, slow.Tuning.Best!.Number, slow.Tuning.ToCsv());
            StringAssert.Contains(slow.Deployment.Summary, "below 1000x");
        }
        // Any int8 model is fast enough at 0: one check, the chosen recipe returned.
        using (var fast = Checked(0))
        {
            Assert.IsFalse(fast.Deployment!.KeptFloat);
            Assert.AreEqual(1, Checks(fast));
            Assert.IsNull(fast.Tuning!.Fallback);
            Assert.AreNotEqual(1, fast.Tuning.Best!.Number);
        }
    }

    [TestMethod]
    public void TiesCannotLetTheObjectiveDriftDownOneRowPerKnob()
    {
        // Nearest-neighbour agreement on 40 rows (a row is 0.025): the recipe as set agrees on 38, the first knob's best
        // on 37 with closer outputs (a tie, the cosines decide). A candidate on 36 with closer outputs still ties the
        // last best, but is two rows below the recipe as set: it does not lead.
        const double row = 1.0 / 40;
        var asSet = new TrialScore(38 * row, 0.990, 0.90, row);
        var firstKnob = new TrialScore(37 * row, 0.995, 0.95, row);
        var drifting = new TrialScore(36 * row, 0.999, 0.98, row);
        var weakLeader = new TrialScore(0.5, 0.5, 0.5, row);
        Assert.IsTrue(firstKnob >= asSet && drifting >= firstKnob, "each one a tie with the one before, won on the cosines");
        Assert.IsTrue(Tuner.Leads(drifting, drifting, weakLeader, new[] { firstKnob }), "against the last best alone it would lead");
        Assert.IsFalse(Tuner.Leads(drifting, drifting, weakLeader, new[] { asSet, firstKnob }));
        var steady = new TrialScore(37 * row, 0.999, 0.98, row);
        Assert.IsTrue(Tuner.Leads(steady, steady, weakLeader, new[] { asSet, firstKnob }), "one row below every best, with closer outputs");
        Assert.IsFalse(Tuner.Leads(steady, steady, steady, new[] { asSet }), "not better than the leader on the hard rows");
    }

    [TestMethod]
    public void ARecipeKeptFloatOnlyBecauseTheErrorBoundSlowedItDoesNotCheckTheRecipeAsSet()
    {
        DeploymentCheck Check(bool keptFloat, int nodesForBound, bool fastBefore) =>
            new(Array.Empty<OutputComparison>(), 1, 1, 1, keptFloat, new Dictionary<string, string>(), Array.Empty<string>(), 16, "cpu",
                QuantizationMode.Int8) { NodesFloatForErrorBound = nodesForBound, FastBeforeErrorBound = fastBefore, MinimumSpeedup = 1.1 };

        // Fast enough (say 1.8x) until 40 nodes went back to float for accuracy: another, less accurate, recipe would not gain.
        Assert.IsTrue(Check(true, 40, fastBefore: true).SlowedByErrorBoundOnly);
        // Too slow with every layer quantized (SmoothQuant's Muls without VNNI): the recipe as set may be faster.
        Assert.IsFalse(Check(true, 40, fastBefore: false).SlowedByErrorBoundOnly);
        Assert.IsFalse(Check(true, 0, fastBefore: false).SlowedByErrorBoundOnly);
        Assert.IsFalse(Check(false, 40, fastBefore: true).SlowedByErrorBoundOnly);
    }

    [TestMethod]
    public void ARecipeAsSetReturnedInsteadIsTheChosenTrialWithTheReason()
    {
        var tuning = new TuningResult(new[]
        {
            new TuningTrial { Number = 1, Knob = "recipe as set", Value = "", Recipe = "a", Score = 0.8 },
            new TuningTrial { Number = 2, Knob = "k", Value = "v", Recipe = "b", Score = 0.9, Chosen = true },
        }, "mean cosine", 1, 20, "every knob searched", 1.0);
        var returned = tuning.WithRecipeAsSet("too slow");
        Assert.AreEqual(2, tuning.Best!.Number);
        Assert.AreEqual(1, returned.Best!.Number);
        Assert.AreEqual(1, returned.Trials.Count(t => t.Chosen));
        Assert.AreEqual("too slow", returned.Fallback);
        StringAssert.Contains(returned.Summary, "too slow");
        StringAssert.Contains(returned.ToCsv().Split('\n')[1], ",true,", "the first trial's row is marked chosen");
    }

    [TestMethod]
    public void TheSummarySaysWhenTheTrialsWereScoredOnFewerRowsThanWereHeldBack()
    {
        var trials = new[] { new TuningTrial { Number = 1, Knob = "recipe as set", Value = "", Recipe = "a", Score = 0.9, Chosen = true } };
        var all = new TuningResult(trials, "mean cosine", 1, 2, "every knob searched", 1.0, heldBack: 2);
        StringAssert.Contains(all.Summary, "on 2 held-back rows;");
        Assert.AreEqual(2L, all.HeldBackRows);
        var first = new TuningResult(trials, "mean cosine", 1, 1, "every knob searched", 1.0, heldBack: 2);
        StringAssert.Contains(first.Summary, "on 1 of 2 held-back rows (the float outputs of the others did not fit the 64 MB kept for scoring)");
        StringAssert.Contains(first.WithRecipeAsSet("too slow").Summary, "1 of 2 held-back rows");
        var sampled = new TuningResult(trials, "mean cosine", 1, 2, "every knob searched", 1.0, heldBack: 2, sampledEvery: 16);
        StringAssert.Contains(sampled.Summary, "on 2 held-back rows (large outputs compared on every 16th value, to fit the 64 MB kept for scoring);");
        Assert.AreEqual(16, sampled.WithRecipeAsSet("too slow").SampledEvery);
        Assert.AreEqual(1, all.SampledEvery);
        // Both at once: one parenthesis, not two.
        var both = new TuningResult(trials, "mean cosine", 1, 1, "every knob searched", 1.0, heldBack: 2, sampledEvery: 4);
        StringAssert.Contains(both.Summary,
            "on 1 of 2 held-back rows (large outputs compared on every 4th value; the float outputs of the others did not fit the 64 MB kept for scoring even so);");
    }

    [TestMethod]
    public void TheSummarySaysWhenTooFewHeldBackRowsScoredTheTrials()
    {
        var trials = new[]
        {
            new TuningTrial { Number = 1, Knob = "recipe as set", Value = "", Recipe = "a", Score = 0.9 },
            new TuningTrial { Number = 2, Knob = "SmoothQuantAlpha", Value = "0.8", Recipe = "b", Score = 0.95, Chosen = true },
        };
        StringAssert.Contains(new TuningResult(trials, "mean cosine", 1, 1, "every knob searched", 1.0, heldBack: 1).Summary,
            "Only 1 held-back row scored the trials, so one row can decide them: give at least 40 rows (every fifth is held back).");
        StringAssert.Contains(new TuningResult(trials, "mean cosine", 1, 7, "every knob searched", 1.0, heldBack: 7).Summary, "Only 7 held-back rows");
        Assert.IsFalse(new TuningResult(trials, "mean cosine", 1, 8, "every knob searched", 1.0, heldBack: 8).Summary.Contains("Only", StringComparison.Ordinal),
            "8 rows: as many as the tuner ranks on");
        Assert.IsFalse(new TuningResult(trials.Take(1).ToList(), "mean cosine", 1, 1, "the time budget is spent", 1.0, heldBack: 1).Summary
            .Contains("Only", StringComparison.Ordinal), "one trial: nothing was decided");
    }

    [TestMethod]
    public void TheSummarySaysWhenTheCloserOutputsChoseARecipeThatAgreesOnFewerRows()
    {
        var trials = new[]
        {
            new TuningTrial { Number = 1, Knob = "recipe as set", Value = "", Recipe = "a", Score = 0.95, MeanCosine = 0.9897 },
            new TuningTrial { Number = 2, Knob = "SmoothQuantAlpha", Value = "0.8", Recipe = "b", Score = 0.90, MeanCosine = 0.9969, Chosen = true },
        };
        var result = new TuningResult(trials, "nearest-neighbour agreement", 1, 40, "every knob searched", 1.0, heldBack: 40);
        StringAssert.Contains(result.Summary,
            "nearest-neighbour agreement 0.9000 (recipe as set 0.9500; within the noise of 40 rows, so the closer outputs decided: mean cosine 0.9969 against 0.9897)");
        StringAssert.Contains(result.WithRecipeAsSet("too slow").Summary, "(recipe as set 0.9500),", "the recipe as set itself: nothing to explain");
    }

    [TestMethod]
    public void OnRareSpikesInTheCalibrationRowsTheTunerClipsInsteadOfMax()
    {
        using var directory = new TempDirectory();
        var model = OneMatMul(directory);
        var ml = new MLContext(seed: 1);
        // A spike of 300 in one calibration row in ten; the held-back rows (every fifth) are plain.
        var data = TinyData.Normal(100, 64).Select((r, i) => i % 10 == 3 ? r.Select((v, j) => j == i % 64 ? 300f : v).ToArray() : r).ToArray();
        using var fitted = Fit(ml, TinyData.X(ml, data, 64), new QuantizingEstimator.Options
        {
            ModelFile = model, CheckDeployment = false, SmoothQuantAlpha = null, WeightRounding = WeightRounding.Nearest, // pinned: the method is the only knob
        });
        var tuning = fitted.Tuning!;
        Assert.IsTrue(tuning.Trials.All(t => t.Knob is "recipe as set" or nameof(QuantizingEstimator.Options.ActivationCalibration)), tuning.ToCsv());
        foreach (var method in new[] { CalibrationMethod.MeanMinMax, CalibrationMethod.MeanSquaredError, CalibrationMethod.Percentile, CalibrationMethod.KlDivergence })
            Assert.IsTrue(tuning.Trials.Any(t => t.Value == method.ToString() && t.Skipped is null), $"{method} tried: {tuning.ToCsv()}");
        Assert.IsFalse(tuning.Best!.Recipe.Contains("ActivationCalibration=Max", StringComparison.Ordinal), tuning.ToCsv());
        Assert.IsTrue(tuning.Best.MeanCosine > tuning.Trials[0].MeanCosine + 1e-3, tuning.ToCsv());
        Assert.AreNotEqual("Max", fitted.Calibration.Find("X", TensorRole.Activation)!.Method);
    }

    [TestMethod]
    public void OnAConvChainWithUnevenChannelsAndPerTensorWeightsTheTunerEqualizes()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = Fit(ml, TinyData.X(ml, TinyData.Normal(40, 192), 192), new QuantizingEstimator.Options
        {
            ModelFile = CrossLayerEqualizationPassTests.Chain(directory), CheckDeployment = false, PerChannelWeights = false,
            ActivationCalibration = CalibrationMethod.Max, BiasCorrection = BiasCorrection.None, WeightRounding = WeightRounding.Nearest,
        });
        var tuning = fitted.Tuning!;
        Assert.AreEqual(2, tuning.Trials.Count, tuning.ToCsv());
        StringAssert.Contains(tuning.Best!.Recipe, "CrossLayerEqualization=on", tuning.ToCsv());
    }

    [TestMethod]
    public void WhenRoundingLosesAChannelsMeanTheTunerCorrectsTheBias()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = BiasCorrectionTests.PositiveRows(ml, 200);
        using var fitted = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = BiasCorrectionTests.Conv(directory), CheckDeployment = false, PerChannelWeights = false,
            ActivationCalibration = CalibrationMethod.Max, WeightRounding = WeightRounding.Nearest,
        });
        var tuning = fitted.Tuning!;
        Assert.AreEqual(3, tuning.Trials.Count, tuning.ToCsv()); // none, fast, full
        Assert.IsFalse(tuning.Best!.Recipe.Contains("BiasCorrection=None", StringComparison.Ordinal), tuning.ToCsv());
        AssertBestIsNeverWorseThanTheRecipeAsSet(tuning);
    }

    [TestMethod]
    public void WhereNearestRoundingLosesAChannelsMeanTheTunerKeepsBalancedRounding()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = BiasCorrectionTests.PositiveRows(ml, 200);
        using var fitted = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = BiasCorrectionTests.Conv(directory), CheckDeployment = false, PerChannelWeights = false,
            ActivationCalibration = CalibrationMethod.Max, BiasCorrection = BiasCorrection.None, // pinned: rounding is the only knob
            Tuning = new TuningOptions { Objective = TuningObjective.OutputCosine },
        });
        var tuning = fitted.Tuning!;
        Assert.AreEqual(2, tuning.Trials.Count, tuning.ToCsv()); // balanced (the default), nearest
        var nearest = tuning.Trials[1];
        Assert.AreEqual(nameof(QuantizingEstimator.Options.WeightRounding), nearest.Knob, tuning.ToCsv());
        Assert.AreEqual(nameof(WeightRounding.Nearest), nearest.Value, tuning.ToCsv());
        Assert.IsTrue(nearest.MeanCosine < tuning.Trials[0].MeanCosine - 1e-3, tuning.ToCsv());
        StringAssert.Contains(tuning.Best!.Recipe, "WeightRounding=Balanced", tuning.ToCsv());
    }

    [TestMethod]
    public void TheTrialAndTimeBudgetsAreHonouredAndTheBestSoFarIsReturned()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = SmoothQuantPassTests.TwoMatMuls(directory);
        var rows = SmoothQuantPassTests.Outliers(ml, 80);
        using var two = Fit(ml, rows, new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false, Tuning = new TuningOptions { MaximumTrials = 2 } });
        Assert.AreEqual(2, two.Tuning!.Trials.Count(t => t.Skipped is null), two.Tuning.ToCsv());
        StringAssert.Contains(two.Tuning.StoppedBecause, "trial budget");

        using var hurried = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = model, CheckDeployment = false, Tuning = new TuningOptions { TimeBudget = TimeSpan.FromMilliseconds(1) },
        });
        var tuning = hurried.Tuning!;
        Assert.AreEqual(1, tuning.Trials.Count(t => t.Skipped is null), tuning.ToCsv());
        Assert.IsTrue(tuning.Trials.Skip(1).All(t => t.Skipped!.StartsWith("the time budget", StringComparison.Ordinal) && double.IsNaN(t.Score)));
        Assert.IsTrue(tuning.Trials[0].Chosen, "the only trial that ran is the model returned");
        Assert.IsTrue(hurried.Calibration.Count > 0);
    }

    [TestMethod]
    public void TheDefaultBudgetIsAMultipleOfWhatFitTookUntilTheFirstTrialWasScoredWithAFloor()
    {
        // Above the floor: the first trial, then the factor times everything until it was scored, reading the model included.
        Assert.AreEqual(20 + TuningOptions.DefaultBudgetFactor * (10 + 20), Tuner.DefaultBudgetSeconds(10, 20), 1e-9);
        Assert.IsTrue(Tuner.DefaultBudgetSeconds(10, 20) > Tuner.DefaultBudgetSeconds(0, 20), "the time before the search counts");
        Assert.AreEqual(TuningOptions.DefaultBudgetFactor * 10, Tuner.DefaultBudgetSeconds(10, 20) - Tuner.DefaultBudgetSeconds(0, 20), 1e-9);
        // A small model's trials are mostly fixed costs: the floor leaves room for them.
        Assert.AreEqual(TuningOptions.MinimumDefaultBudgetSeconds, Tuner.DefaultBudgetSeconds(0.1, 0.2), 1e-9);
        Assert.AreEqual(TuningOptions.MinimumDefaultBudgetSeconds, Tuner.DefaultBudgetSeconds(0, 0), 1e-9);
    }

    [TestMethod]
    public void AUserMetricDecidesAndSeesTheHeldBackRows()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        int calls = 0;
        var seen = new List<int>();
        // A perverse metric that prefers the noisiest model: the tuner must follow it, not its own objective.
        double Noise(TuningOutputs o)
        {
            calls++;
            seen.Add(o.Float.Count);
            Assert.AreEqual(o.Float.Count, o.Quantized.Count);
            CollectionAssert.AreEqual(new[] { "Y1", "Y2" }, o.OutputNames.ToArray());
            return o.Float.Zip(o.Quantized, (f, q) => f[0].Zip(q[0], (a, b) => (double)(a - b) * (a - b)).Sum()).Sum();
        }
        using var fitted = Fit(ml, SmoothQuantPassTests.Outliers(ml, 80), new QuantizingEstimator.Options
        {
            ModelFile = SmoothQuantPassTests.TwoMatMuls(directory), CheckDeployment = false, ActivationCalibration = CalibrationMethod.Max,
            Tuning = new TuningOptions { Metric = Noise },
        });
        var tuning = fitted.Tuning!;
        Assert.AreEqual("user metric", tuning.Objective);
        Assert.AreEqual(0, tuning.ReferenceScore, "the float outputs against themselves have no noise");
        Assert.IsTrue(calls >= 2 * tuning.Trials.Count, "all rows and the hardest rows, per trial");
        Assert.AreEqual(16, seen.Max(), "every fifth of 80 rows is held back");
        var ran = tuning.Trials.Where(t => t.Skipped is null).ToList();
        Assert.AreEqual(ran.Max(t => t.Score), tuning.Best!.Score, tuning.ToCsv());
        Assert.IsTrue(tuning.Best.MeanCosine < ran.Max(t => t.MeanCosine), $"the metric, not the cosine, chose:\n{tuning.ToCsv()}");
    }

    [TestMethod]
    public void ToleranceStopsTheSearchOnceTheScoreIsCloseEnough()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = Fit(ml, SmoothQuantPassTests.Outliers(ml, 80), new QuantizingEstimator.Options
        {
            ModelFile = SmoothQuantPassTests.TwoMatMuls(directory), CheckDeployment = false,
            Tuning = new TuningOptions { Objective = TuningObjective.OutputCosine, AbsoluteTolerance = 0.5 },
        });
        Assert.AreEqual(1, fitted.Tuning!.Trials.Count, fitted.Tuning.ToCsv());
        Assert.AreEqual("the tolerance is met", fitted.Tuning.StoppedBecause);
    }

    // One MatMul calibrated by max on rows with rare spikes of 300: the held-back rows (plain) lose most of their resolution.
    private static (string Model, IDataView Rows) SpikedMatMul(MLContext ml, TempDirectory directory)
    {
        var model = OneMatMul(directory);
        var data = TinyData.Normal(100, 64).Select((r, i) => i % 10 == 3 ? r.Select((v, j) => j == i % 64 ? 300f : v).ToArray() : r).ToArray();
        return (model, TinyData.X(ml, data, 64));
    }

    [TestMethod]
    public void WithAToleranceTheLastKnobKeepsLayersInFloatUntilTheScoreIsWithinIt()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var (model, rows) = SpikedMatMul(ml, directory);
        using var fitted = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = model, CheckDeployment = false, ActivationCalibration = CalibrationMethod.Max, SmoothQuantAlpha = null, // the fallback is the only knob
            WeightRounding = WeightRounding.Nearest,
            Tuning = new TuningOptions { Objective = TuningObjective.OutputCosine, AbsoluteTolerance = 1e-6 },
        });
        var tuning = fitted.Tuning!;
        var first = tuning.Trials[0];
        Assert.IsTrue(first.Score < 1 - 1e-4, $"max on spiky rows is far from float:\n{tuning.ToCsv()}");
        Assert.IsTrue(tuning.Trials.Skip(1).All(t => t.Knob == nameof(QuantizingEstimator.Options.MinimumOutputCosine)), tuning.ToCsv());
        var best = tuning.Best!;
        Assert.AreEqual(nameof(QuantizingEstimator.Options.MinimumOutputCosine), best.Knob, tuning.ToCsv());
        Assert.IsTrue(best.Score >= 1 - 1e-6, tuning.ToCsv());
        Assert.AreSame(best, tuning.Trials[^1], $"the first value within the tolerance ends the search:\n{tuning.ToCsv()}");
        Assert.AreEqual("the tolerance is met", tuning.StoppedBecause);
        CollectionAssert.Contains(fitted.Report.FloatNodes.ToList(), "MatMul_0", "the returned model is the one with the layer in float");
    }

    [TestMethod]
    public void WithoutAToleranceNoLayerIsKeptInFloatAndAnExplicitMinimumOutputCosinePinsTheKnob()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var (model, rows) = SpikedMatMul(ml, directory);
        using var plain = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = model, CheckDeployment = false, ActivationCalibration = CalibrationMethod.Max,
        });
        Assert.IsFalse(plain.Tuning!.Trials.Any(t => t.Knob == nameof(QuantizingEstimator.Options.MinimumOutputCosine)), plain.Tuning.ToCsv());
        Assert.AreEqual(0, plain.Report.FloatNodes.Count, "slower, so never by default");

        using var pinned = Fit(ml, rows, new QuantizingEstimator.Options
        {
            ModelFile = model, CheckDeployment = false, ActivationCalibration = CalibrationMethod.Max, MinimumOutputCosine = 0.5,
            Tuning = new TuningOptions { AbsoluteTolerance = 1e-6 },
        });
        Assert.IsFalse(pinned.Tuning!.Trials.Any(t => t.Knob == nameof(QuantizingEstimator.Options.MinimumOutputCosine)), pinned.Tuning.ToCsv());
    }

    [TestMethod]
    public void FewerThanFiveRowsHoldNothingBackAndTheRecipeAsSetIsReturned()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = SmoothQuantPassTests.TwoMatMuls(directory);
        using var fitted = Fit(ml, SmoothQuantPassTests.Outliers(ml, 4), new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false });
        Assert.AreEqual(0, fitted.Tuning!.Trials.Count);
        StringAssert.Contains(fitted.Tuning.StoppedBecause, "at least 5 rows");
        Assert.AreEqual(4, fitted.Statistics.Rows);
        Assert.IsTrue(fitted.Calibration.Count > 0);
        // Not unchecked in silence: the agreement and the deployment check measure on the 4 calibration rows.
        Assert.AreEqual(4, fitted.Agreement?.Rows, "the realized model is compared with its simulation");
        using var checkedFit = Fit(ml, SmoothQuantPassTests.Outliers(ml, 4), new QuantizingEstimator.Options { ModelFile = model });
        Assert.IsNotNull(checkedFit.Deployment, "the deployment check measured the model");
        Assert.AreEqual(4, checkedFit.Deployment.Rows, "on the 4 calibration rows");
        Assert.IsTrue(checkedFit.Deployment.Outputs.Count > 0, "every output compared");
    }

    [TestMethod]
    public void TuningOffCalibratesOnEveryRow()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = SmoothQuantPassTests.TwoMatMuls(directory);
        using var off = Fit(ml, SmoothQuantPassTests.Outliers(ml, 80), new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false, Tuning = null });
        using var on = Fit(ml, SmoothQuantPassTests.Outliers(ml, 80), new QuantizingEstimator.Options { ModelFile = model, CheckDeployment = false });
        Assert.IsNull(off.Tuning);
        Assert.AreEqual(80, off.Statistics.Rows);
        Assert.AreEqual(64, on.Statistics.Rows, "every fifth row is held back for the trials");
    }

    [TestMethod]
    public void TuningOptionsOutOfRangeNameTheOption()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = SmoothQuantPassTests.TwoMatMuls(directory);
        var rows = SmoothQuantPassTests.Outliers(ml, 10);
        foreach (var (tuning, name) in new (TuningOptions, string)[]
        {
            (new() { MaximumTrials = 0 }, "Tuning.MaximumTrials"),
            (new() { AbsoluteTolerance = -1 }, "Tuning.AbsoluteTolerance"),
            (new() { RelativeTolerance = 2 }, "Tuning.RelativeTolerance"),
            (new() { TimeBudget = TimeSpan.Zero }, "Tuning.TimeBudget"),
            (new() { Objective = (TuningObjective)42 }, "Tuning.Objective"),
        })
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Fit(ml, rows, new QuantizingEstimator.Options { ModelFile = model, Tuning = tuning }));
            Assert.AreEqual(name, e.ParamName);
        }
    }

    // The contract of tuning through the public entry point: on by default, a trials table on the transformer and in the
    // report, the CSV, a model that saves and loads, and no temp file left.
    [TestMethod]
    public void TuningWorkout()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = SmoothQuantPassTests.TwoMatMuls(directory);
        var rows = SmoothQuantPassTests.Outliers(ml, 80);
        var progress = new List<CalibrationProgress>();
        int before = TempDirectory.ModelFiles().Count;
        using (var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = model, Progress = new SynchronousProgress(progress.Add),
        }).Fit(rows))
        {
            var tuning = fitted.Tuning!;
            Assert.IsTrue(tuning.Trials.Count >= 2 && tuning.Trials[0].Knob == "recipe as set", tuning.ToCsv());
            Assert.AreEqual(1, tuning.Trials.Count(t => t.Chosen));
            Assert.AreEqual(16, tuning.Rows);
            StringAssert.Contains(tuning.Objective, "Y1");
            StringAssert.Contains(tuning.Summary, tuning.Best!.Recipe);
            Assert.AreEqual(tuning.Trials.Count, progress.Count(p => p.Pass == 5 && p.Trial is not null), "one progress report per trial");
            Assert.AreSame(tuning, fitted.Report.Tuning);
            fitted.Report.WriteHtml(directory.File("report.html"));
            StringAssert.Contains(File.ReadAllText(directory.File("report.html")), "<h2>Tuning</h2>");
            tuning.WriteCsv(directory.File("trials.csv"));
            Assert.AreEqual(tuning.Trials.Count + 1, File.ReadAllLines(directory.File("trials.csv")).Length);
            ml.Model.Save(fitted, rows.Schema, directory.File("model.zip"));
            var loaded = ml.Model.Load(directory.File("model.zip"), out _);
            var expected = TinyData.Column(fitted.Transform(rows), "Y1");
            var actual = TinyData.Column(loaded.Transform(rows), "Y1");
            Assert.AreEqual(0, TinyData.MaxAbsDifference(expected, actual));
            (loaded as IDisposable)?.Dispose();
        }
        Assert.AreEqual(before, TempDirectory.ModelFiles().Count, "no temp model left behind");
    }
}
