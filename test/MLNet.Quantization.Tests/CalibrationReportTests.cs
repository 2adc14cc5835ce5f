using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests;

[TestClass]
public sealed class CalibrationReportTests
{
    // X → Conv_0 → A → Relu → R → Conv_1 → Y
    internal static string TwoConvs(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 2, 6, 6).Output("Y", 1, 2, 6, 6)
        .Weight("W1", new long[] { 4, 2, 3, 3 }).Weight("W2", new long[] { 2, 4, 3, 3 })
        .Node("Conv", new[] { "X", "W1" }, new[] { "A" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "A" }, new[] { "R" })
        .Node("Conv", new[] { "R", "W2" }, new[] { "Y" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Save(directory.Path);

    internal static IDataView Rows(MLContext ml) => TinyData.X(ml, TinyData.Normal(40, 72, seed: 8), 72);

    [TestMethod]
    public void TheReportDescribesEveryTensorAndWritesCsvAndHtml()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var progress = new List<CalibrationProgress>();
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = TwoConvs(directory), Progress = new SynchronousProgress(progress.Add), CollectHistograms = true,
        }).Fit(Rows(ml));

        var report = model.Report;
        Assert.AreEqual(model.Calibration.Count, report.Tensors.Count);
        Assert.AreEqual(40L, report.Rows, "the report measures the first 64 calibration rows");
        Assert.IsTrue(report.OutputCosine > 0.99 && report.OutputCosine <= 1.0000001, $"{report.OutputCosine}");
        foreach (var t in report.Tensors.Where(t => t.Role == TensorRole.Activation))
        {
            Assert.IsTrue(t.SqnrDb > 10 && t.SqnrDb < 80, $"{t.Tensor}: {t.SqnrDb} dB");
            Assert.IsTrue(t.ClippedFraction is >= 0 and < 0.05, $"{t.Tensor}: {t.ClippedFraction}");
            Assert.IsTrue(double.IsFinite(t.KlDivergence), t.Tensor);
        }
        Assert.IsTrue(report.Tensors.Where(t => t.Role == TensorRole.Weight).All(t => t.SqnrDb > 30), "int8 weights keep > 30 dB");
        CollectionAssert.AreEqual(report.Ranked.Select(t => t.AddedNoise).OrderByDescending(s => s).ToArray(), report.Ranked.Select(t => t.AddedNoise).ToArray());
        var x = report.Tensors.Single(t => t.Tensor == "X");
        Assert.AreEqual(Math.Pow(10, -x.SqnrDb / 10), x.AddedNoise, 1e-12, "the model input has no quantized upstream: all its noise is its own");

        report.WriteCsv(directory.File("report.csv"));
        var csv = File.ReadAllLines(directory.File("report.csv"));
        Assert.AreEqual("tensor,node,op_type,role,method,threshold,scale,zero_point,range_min,range_max,clipped_fraction,kl_divergence,sqnr_db,added_noise", csv[0]);
        Assert.AreEqual(report.Tensors.Count + 1, csv.Length);
        report.WriteHtml(directory.File("report.html"));
        var html = File.ReadAllText(directory.File("report.html"));
        int images = html.Split("data:image/png;base64,").Length - 1;
        Assert.AreEqual(report.Tensors.Count(t => t.Role == TensorRole.Activation && !t.Method.StartsWith("SharedWith")), images);
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => report.WriteHtml(directory.File("missing/report.html")));

        CollectionAssert.AreEquivalent(new[] { 1, 2, 3 }, progress.Select(p => p.Pass).Distinct().ToArray(), "ranges, histograms, then the report's measurement");
        Assert.AreEqual(40L, progress.Where(p => p.Pass == 1).Max(p => p.Rows));
    }

    [TestMethod]
    public void TheFallbackKeepsACrippledLayerInFloat()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var path = TwoConvs(directory);
        QuantizingTransformer Fit(double? target) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = path, MinimumOutputCosine = target,
            // A deliberately bad threshold: R is clipped to a twentieth of its range.
            CustomCalibration = s => s.Tensor == "R" ? new TensorRange(0, (float)s.Max / 20) : null,
        }).Fit(Rows(ml));

        using (var crippled = Fit(null))
            Assert.IsTrue(crippled.Report.OutputCosine < 0.99, $"the crippled model reaches {crippled.Report.OutputCosine}");
        using var rescued = Fit(0.99);
        var report = rescued.Report;
        Assert.AreEqual(8L, report.Rows, "the fallback measures on the held-back fifth of the rows");
        CollectionAssert.IsSubsetOf(new[] { "Conv_2" }, report.FloatNodes.ToArray(), $"kept in float: {string.Join(", ", report.FloatNodes)}");
        using var crippledAgain = Fit(null);
        Assert.AreEqual("R", crippledAgain.Report.Ranked[0].Tensor, "the report ranks the crippled tensor first");
        Assert.IsNull(rescued.Calibration.Find("R", TensorRole.Activation), "R is no longer quantized");
        Assert.IsTrue(report.OutputCosine >= 0.99, $"{report.OutputCosine}");
    }


    [TestMethod]
    public void AsymmetricRangesAreReportedAndCountedAsRealized()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        // Skewed input: mostly positive, so the asymmetric range [min, max] is far from ±max|x|.
        var rows = TinyData.X(ml, TinyData.Normal(40, 72, seed: 8, mean: 2f), 72);
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = TwoConvs(directory), CollectHistograms = true }).Fit(rows);
        var x = model.Report.Tensors.Single(t => t.Tensor == "X" && t.Role == TensorRole.Activation);
        var stats = model.Statistics.Tensors.Single(t => t.Tensor == "X");
        Assert.IsTrue(x.ZeroPoint is > 0 and < 128, $"asymmetric zero point {x.ZeroPoint}");
        Assert.AreEqual(stats.Min, x.RangeMin, 2 * x.Scale, "the range starts at the data's minimum, not at −max|x|");
        Assert.AreEqual(stats.Max, x.RangeMax, 2 * x.Scale);
        Assert.IsTrue(x.ClippedFraction < 0.002, $"max ranges clip only what the rounded zero point moves ({x.ClippedFraction})");
        model.Report.WriteCsv(directory.File("report.csv"));
        StringAssert.Contains(File.ReadAllLines(directory.File("report.csv"))[0], "range_min,range_max");
    }
}
