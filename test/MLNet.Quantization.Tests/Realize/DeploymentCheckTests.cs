using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

/// <summary>
/// The last pass of <c>Fit</c>: every output compared, the deployed model timed, disagreeing layers sent back to float
/// and a model that int8 made slower returned as the float model. Timing decides, so the tests assert the contract
/// whichever way this CPU's timing goes.
/// </summary>
[TestClass]
public sealed class DeploymentCheckTests
{
    private const int Size = 64;

    // Two outputs: a classifier-like head and the hidden features, both float.
    private static string TwoOutputs(TempDirectory directory) => new TinyModel()
        .Input("X", 1, Size).Output("Y", 1, 8).Output("H", 1, 32)
        .Weight("W", new long[] { Size, 32 }).Weight("W2", new long[] { 32, 8 })
        .Node("MatMul", new[] { "X", "W" }, new[] { "H" })
        .Node("Relu", new[] { "H" }, new[] { "R" })
        .Node("MatMul", new[] { "R", "W2" }, new[] { "Y" })
        .Save(directory.Path);

    [TestMethod]
    public void AModelOfSecondsARowIsStillTimedOnSeveralRunsOfEach()
    {
        using var directory = new TempDirectory();
        var path = TwoOutputs(directory);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(2, Size), Size); // two rows: the first is the warm-up, one row is timed
        var prepared = OnnxGraph.Load(path);
        var settings = new QuantizingEstimator.Options { ModelFile = path, Tuning = null }.Freeze();

        var fast = DeploymentMeasurement.Measure(prepared, prepared, data, settings);
        Assert.AreEqual(DeploymentMeasurement.MinimumSamples, fast.TimedRuns, "a fast model: the first row runs again until there are enough");
        // A budget already spent by the one timed row, as a model of seconds a row spends it: still several runs of each.
        var slow = DeploymentMeasurement.Measure(prepared, prepared, data, settings, budgetMilliseconds: 0);
        Assert.AreEqual(DeploymentMeasurement.MinimumTimedPairs, slow.TimedRuns);
        Assert.IsTrue(slow.TimedRuns > 1, "more runs than the one timed row gives");
        Assert.IsTrue(double.IsFinite(slow.FloatMs) && double.IsFinite(slow.DeployedMs));
        Assert.AreEqual(0, DeploymentMeasurement.Measure(prepared, prepared, data, settings, time: false).TimedRuns);
    }

    [TestMethod]
    public void FloatOutputsKeptByTheTunerStandForTheFloatModelsRuns()
    {
        using var directory = new TempDirectory();
        var path = TwoOutputs(directory);
        var ml = new MLContext(seed: 1);
        var data = TinyData.X(ml, TinyData.Normal(40, Size), Size);
        using (var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, Tuning = null, CheckDeployment = false }).Fit(data))
            fitted.ExportOnnx(directory.File("q.onnx"));
        var prepared = OnnxGraph.Load(path);
        var deployed = OnnxGraph.Load(directory.File("q.onnx"));
        var settings = new QuantizingEstimator.Options { ModelFile = path, Tuning = null }.Freeze();
        var scored = ml.Transforms.ApplyOnnxModel(path).Fit(data).Transform(data);
        var y = TinyData.Column(scored, "Y");
        var h = TinyData.Column(scored, "H");
        var kept = y.Zip(h, (a, b) => new float[]?[] { a, b }).ToList();

        var run = DeploymentMeasurement.Measure(prepared, deployed, data, settings, time: false);
        var reused = DeploymentMeasurement.Measure(prepared, deployed, data, settings, time: false, floatOutputs: kept);
        Assert.AreEqual(40, reused.Rows);
        for (int k = 0; k < 2; k++)
        {
            Assert.AreEqual(run.Outputs[k].RelativeError, reused.Outputs[k].RelativeError, 1e-6, run.Outputs[k].Name);
            Assert.AreEqual(run.Outputs[k].MeanCosine, reused.Outputs[k].MeanCosine, 1e-6, run.Outputs[k].Name);
        }
        // Kept outputs twice the float model's: the comparison reads them, not a float run.
        var doubled = kept.Select(r => r.Select(v => v!.Select(x => 2 * x).ToArray()).ToArray<float[]?>()).ToList();
        var wrong = DeploymentMeasurement.Measure(prepared, deployed, data, settings, time: false, floatOutputs: doubled);
        Assert.IsTrue(wrong.Outputs.All(o => o.RelativeError > 0.4), string.Join("; ", wrong.Outputs));

        // Every row kept and nothing timed (the error bound's rounds): the float model is not even loaded, so one that
        // ONNX Runtime cannot load measures all the same.
        var unloadable = prepared.Clone();
        unloadable.Graph.Node[0].OpType = "NoSuchOp";
        Assert.ThrowsExactly<InvalidOperationException>(() => DeploymentMeasurement.Measure(unloadable, deployed, data, settings, time: false));
        var unloaded = DeploymentMeasurement.Measure(unloadable, deployed, data, settings, time: false, floatOutputs: kept);
        Assert.AreEqual(reused.Outputs[0].RelativeError, unloaded.Outputs[0].RelativeError, 1e-9);
    }

    [TestMethod]
    public void EveryOutputIsComparedAndTheReturnedModelIsNeverSlowerThanMeasured()
    {
        using var directory = new TempDirectory();
        var path = TwoOutputs(directory);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(40, Size), Size);
        // The recipe as set (the tuner's own measurement is tested in Tune/): the check then measures the first 64 rows.
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, Tuning = null }).Fit(rows);
        var check = model.Deployment!;

        CollectionAssert.AreEqual(new[] { "Y", "H" }, check.Outputs.Select(o => o.Name).ToArray(), "every output, in order");
        Assert.AreEqual(40, check.Rows);
        Assert.IsTrue(check.Outputs.All(o => o.RelativeError < 0.05 && o.MeanCosine > 0.998 && o.NonFiniteIntroduced == 0),
            string.Join("; ", check.Outputs));
        Assert.IsTrue(check.FloatMillisecondsPerRow > 0 && check.MeasuredQuantizedMillisecondsPerRow > 0);
        using var exported = new TempDirectory();
        model.ExportOnnx(exported.File("m.onnx"));
        int quantizeNodes = OnnxGraph.Load(exported.File("m.onnx")).Graph.Node.Count(n => n.OpType == "QuantizeLinear");
        Assert.AreEqual(check.Speedup < QuantizationDefaults.MinimumSpeedup, check.KeptFloat, check.Summary);
        if (check.KeptFloat)
        {
            Assert.AreEqual(0, quantizeNodes, "the float model is returned");
            Assert.AreEqual(0, model.Calibration.Count);
            Assert.AreEqual(check.FloatMillisecondsPerRow, check.QuantizedMillisecondsPerRow);
            StringAssert.Contains(check.Summary, "stays float");
        }
        else
        {
            Assert.IsTrue(quantizeNodes > 0 && check.Speedup >= QuantizationDefaults.MinimumSpeedup, check.Summary);
        }
    }

    [TestMethod]
    public void WithTheCheckOffTheModelIsReturnedAsRealizedAndUnmeasured()
    {
        using var directory = new TempDirectory();
        var path = TwoOutputs(directory);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(16, Size), Size);
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, CheckDeployment = false, Tuning = null }).Fit(rows);

        Assert.IsNull(model.Deployment);
        Assert.IsNotNull(model.Calibration.Find("W", TensorRole.Weight));
    }

    // Five rows, tuned: one is held back, and the summaries say "on 1 row", not "on 1 rows".
    [TestMethod]
    public void OneMeasuredRowIsNamedInTheSingular()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = TwoOutputs(directory), MinimumSpeedup = 0 })
            .Fit(TinyData.X(ml, TinyData.Normal(5, Size), Size));

        Assert.AreEqual(1, model.Deployment!.Rows, model.Deployment.Summary);
        StringAssert.Contains(model.Deployment.Summary, " on 1 row.");
        StringAssert.Contains(model.Agreement!.ToString(), " on 1 row,");
        Assert.IsFalse(model.Deployment.Summary.Contains("1 rows", StringComparison.Ordinal) || model.Agreement.ToString().Contains("1 rows", StringComparison.Ordinal));
    }

    // Fitting on one CPU and deploying on another (an AVX2 laptop, a VNNI server) is common, and the speed verdict is the
    // fitting CPU's: the summary of a model returned in float for speed says how to keep int8, and that way works.
    [TestMethod]
    public void AModelReturnedInFloatForSpeedSaysHowToReturnItsInt8Form()
    {
        using var directory = new TempDirectory();
        var path = TwoOutputs(directory);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(24, Size), Size);
        QuantizingTransformer Fit(double minimumSpeedup) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = path, Tuning = null, MinimumSpeedup = minimumSpeedup,
        }).Fit(rows);

        using var slow = Fit(1000); // no int8 model is 1000 times as fast
        var check = slow.Deployment!;
        Assert.IsTrue(check.KeptFloat, check.Summary);
        Assert.AreEqual(CpuFeatures.HasVnni, check.CpuHasVnni);
        StringAssert.Contains(check.Summary, "set MinimumSpeedup = 0");
        StringAssert.Contains(check.Summary, check.CpuHasVnni ? "return the int8 model anyway" : "This CPU has no VNNI");
        // On an Arm CPU VNNI is not the question: the summary does not speak of it.
        var arm = new DeploymentCheck(check.Outputs, 1, 1, 2, keptFloat: true, new Dictionary<string, string>(), Array.Empty<string>(), 16,
            "Arm64", QuantizationMode.Int8) { CpuHasVnni = false, CpuIsX86 = false };
        StringAssert.Contains(arm.Summary, "return the int8 model anyway");
        Assert.IsFalse(arm.Summary.Contains("VNNI", StringComparison.Ordinal), arm.Summary);

        using var kept = Fit(0);
        Assert.IsFalse(kept.Deployment!.KeptFloat, kept.Deployment.Summary);
        using var exported = new TempDirectory();
        kept.ExportOnnx(exported.File("m.onnx"));
        Assert.IsTrue(OnnxGraph.Load(exported.File("m.onnx")).Graph.Node.Any(n => n.OpType == "QuantizeLinear"), "the int8 model is returned");
        Assert.IsTrue(kept.Deployment.Outputs.All(o => o.RelativeError < 0.05), string.Join("; ", kept.Deployment.Outputs));
    }

    // The saturating model of AgreementCheckTests, with full-range weights: on a CPU without VNNI its int8 kernels part
    // from the simulation after the first MatMul, and the check must send that layer back to float until they agree.
    [TestMethod]
    public void LayersWhereTheInt8KernelsDisagreeGoBackToFloat()
    {
        using var directory = new TempDirectory();
        var path = AgreementCheckTests.Saturating(directory);
        var ml = new MLContext(seed: 1);
        var rows = AgreementCheckTests.Bright(ml);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(path).Fit(rows).Transform(rows), "Y");
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, WeightRange = WeightRange.Full }).Fit(rows);
        var check = model.Deployment!;
        var output = TinyData.Column(model.Transform(rows), "Y");
        double cosine = reference.Zip(output, TinyData.Cosine).Average();

        if (CpuFeatures.PairsSaturate)
        {
            var reasons = check.FloatNodes.Where(kv => kv.Value.Contains("part from the simulation")).ToList();
            Assert.IsTrue(reasons.Count > 0, $"the disagreeing layer goes back to float on {check.Cpu}: {string.Join("; ", check.FloatNodes)}");
            Assert.IsTrue(model.Agreement is null || model.Agreement.Agrees || check.KeptFloat, model.Agreement?.ToString());
        }
        else
        {
            Assert.IsFalse(check.FloatNodes.Values.Any(r => r.Contains("part from the simulation")), "VNNI kernels agree: nothing goes back");
        }
        Assert.IsTrue(cosine > 0.99, $"the model returned is right on {check.Cpu}: cosine {cosine} to fp32 ({check.Summary})");
    }

    [TestMethod]
    public void AnOutputPastTheErrorBoundSendsTheNoisiestLayerBackToFloat()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var path = CalibrationReportTests.TwoConvs(directory);
        QuantizingTransformer Fit(double? bound) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = path, MaximumOutputError = bound,
            // A deliberately bad threshold: R is clipped to a fiftieth of its range.
            CustomCalibration = s => s.Tensor == "R" ? new MLNet.Quantization.Calibration.TensorRange(0, (float)s.Max / 50) : null,
        }).Fit(CalibrationReportTests.Rows(ml));

        using (var unbounded = Fit(null))
        {
            var check = unbounded.Deployment!;
            Assert.IsTrue(check.WorstRelativeError > 0.25, $"the crippled model's error {check.WorstRelativeError}");
            Assert.IsFalse(check.FloatNodes.Values.Any(r => r.Contains("MaximumOutputError")), "no bound, nothing sent back for error");
        }
        using var guarded = Fit(0.25);
        var guard = guarded.Deployment!;
        Assert.IsTrue(guard.WorstRelativeError <= 0.25, $"every output within the bound: {string.Join("; ", guard.Outputs)}");
        Assert.IsTrue(guard.FloatNodes.TryGetValue("Conv_2", out var reason), $"the Conv reading the crippled R: {string.Join("; ", guard.FloatNodes)}");
        StringAssert.Contains(reason, "MaximumOutputError");
        Assert.IsNull(guarded.Calibration.Find("R", TensorRole.Activation), "R is no longer quantized");
    }

    [TestMethod]
    public void TheCheckNamesTheRuleForWhatItKeepsInFloat()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel().Input("X", 1, Size).Output("Y", 1, 32)
            .Weight("W", new long[] { Size, 32 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "M" })
            .Node("Abs", new[] { "M" }, new[] { "A" })
            .Node("Log", new[] { "A" }, new[] { "Y" })
            .Save(directory.Path);
        var ml = new MLContext(seed: 1);
        using var model = ml.Transforms.QuantizeCalibrated(path).Fit(TinyData.X(ml, TinyData.Normal(16, Size), Size));

        var reason = model.Deployment!.FloatNodes["MatMul_0"];
        StringAssert.Contains(reason, "Log");
        Assert.AreEqual(0, model.Calibration.Count, "nothing else to quantize");
        Assert.IsFalse(model.Deployment.KeptFloat, "nothing was quantized, so there was no int8 model to reject");
        Assert.IsTrue(model.Deployment.QuantizedNothing);
        StringAssert.Contains(model.Deployment.Summary, "Nothing in this model is quantized");
        model.Report.WriteHtml(directory.File("report.html"));
        var html = File.ReadAllText(directory.File("report.html"));
        StringAssert.Contains(html, "Deployment check");
        StringAssert.Contains(html, "MatMul_0: computes the input of Log", "the report says which node stays float and why");
    }
}
