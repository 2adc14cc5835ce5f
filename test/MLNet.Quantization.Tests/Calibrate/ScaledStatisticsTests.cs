using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Equalize;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Equalize;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibrate;

[TestClass]
public sealed class ScaledStatisticsTests
{
    [TestMethod]
    public void DerivedStatisticsEqualThoseOfTheScaledValuesThemselves()
    {
        // 6 rows of 5 positions × 7 channels; Y = X·c per channel, in float, as ONNX Runtime's Mul computes it.
        var random = new Random(3);
        var scale = Enumerable.Range(0, 7).Select(_ => (float)Math.Exp(random.NextDouble() * 6 - 3)).ToArray();
        var streamed = new TensorStatistics("Y", TensorRole.Activation, "n", "Mul");
        var minima = new List<float[]>();
        var maxima = new List<float[]>();
        for (int r = 0; r < 6; r++)
        {
            var x = Enumerable.Range(0, 35).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
            streamed.AddRange(x.Select((v, i) => v * scale[i % 7]).ToArray());
            minima.Add(Enumerable.Range(0, 7).Select(c => Enumerable.Range(0, 5).Min(p => x[p * 7 + c])).ToArray());
            maxima.Add(Enumerable.Range(0, 7).Select(c => Enumerable.Range(0, 5).Max(p => x[p * 7 + c])).ToArray());
        }
        var derived = ScaledStatistics.Derive(new TensorStatistics("Y", TensorRole.Activation, "n", "Mul"), new RowExtremes(minima, maxima, 30), scale)
            ?? throw new AssertFailedException("derived");
        Assert.AreEqual(streamed.Min, derived.Min);
        Assert.AreEqual(streamed.Max, derived.Max);
        Assert.AreEqual(streamed.Count, derived.Count);
        Assert.AreEqual(streamed.Samples, derived.Samples);
        Assert.AreEqual(streamed.MeanSampleMin, derived.MeanSampleMin, "per-row sums added in row order, as a stream adds them");
        Assert.AreEqual(streamed.MeanSampleMax, derived.MeanSampleMax);
        Assert.IsTrue(derived.ReadOnAnotherModel, "X's extremes came from the model before the rewrite");
        Assert.IsFalse(streamed.ReadOnAnotherModel);

        minima[4][2] = float.NaN;
        Assert.IsNull(ScaledStatistics.Derive(new TensorStatistics("Y", TensorRole.Activation, "n", "Mul"), new RowExtremes(minima, maxima, 30), scale),
            "a NaN in X: the stream decides (the tensor stays float)");
        minima[4][2] = 0;
        scale[3] = -scale[3];
        Assert.IsNull(ScaledStatistics.Derive(new TensorStatistics("Y", TensorRole.Activation, "n", "Mul"), new RowExtremes(minima, maxima, 30), scale),
            "a negative scale swaps each channel's extremes: not derived");
    }

    // As the tuner runs a SmoothQuant candidate: the first trial's activation stream of the model as loaded, which also
    // reduces SmoothQuant's points; then α = 0.5 on a copy of the model, and its activation statistics. Returns the
    // candidate and the cursors opened before it.
    private static (QuantizationContext Candidate, int StreamsBefore, QuantizationPipelineTests.CountingDataView Rows) Candidate(
        TempDirectory directory, MLContext ml, CalibrationMethod method)
    {
        var rows = new QuantizationPipelineTests.CountingDataView(SmoothQuantPassTests.Outliers(ml));
        var root = Contexts.For(SmoothQuantPassTests.TwoMatMuls(directory), rows, new QuantizingEstimator.Options { ActivationCalibration = method });
        root.Foreseen[root.ModelVersion] = new() { new SmoothQuantPass(0.5).StatisticPoints(root) };
        root.Run(new AnnotatePass(), new ActivationStatisticsPass());
        int streams = rows.Cursors;
        var settings = root.Settings with { Equalization = root.Settings.Equalization with { SmoothQuantAlpha = 0.5 } };
        var candidate = root.Fork(settings, cloneModel: true);
        foreach (var step in QuantizationPipeline.Recipe(settings).Where(s => s.Name is "SmoothQuant" or "statistics"))
            QuantizationPipeline.Run(candidate, step);
        return (candidate, streams, rows);
    }

    [TestMethod]
    public void ASmoothQuantCandidatesSmoothedInputIsNotStreamedAndEqualsAStreamOfIt()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var (candidate, streams, rows) = Candidate(directory, ml, CalibrationMethod.MeanMinMax);
        Assert.AreEqual(streams, rows.Cursors, "neither the smoothing nor the statistics of the smoothed model stream the rows");
        var smoothed = candidate.Model.Graph.Node.Single(n => n.OpType == "Mul").Output[0];
        Assert.IsTrue(candidate.Plan.Activations.Any(a => a.Tensor == smoothed), "the MatMuls read the smoothed input, which is quantized");

        // The same statistics from a stream of the smoothed model (X is an input here, so equal to the last bit).
        var fresh = Contexts.For(candidate.SaveModel(Path.Combine(directory.Path, "smoothed.onnx")), SmoothQuantPassTests.Outliers(ml),
            new QuantizingEstimator.Options { ActivationCalibration = CalibrationMethod.MeanMinMax }).Run(new AnnotatePass(), new ActivationStatisticsPass());
        var expected = fresh.Statistics.ByTensor()[smoothed];
        var actual = candidate.Statistics.ByTensor()[smoothed];
        Assert.AreEqual(expected.Min, actual.Min);
        Assert.AreEqual(expected.Max, actual.Max);
        Assert.AreEqual(expected.Count, actual.Count);
        Assert.AreEqual(expected.Samples, actual.Samples);
        Assert.AreEqual(expected.MeanSampleMin, actual.MeanSampleMin);
        Assert.AreEqual(expected.MeanSampleMax, actual.MeanSampleMax);
    }

    [TestMethod]
    public void WithHistogramsTheSmoothedInputIsStreamed()
    {
        using var directory = new TempDirectory();
        var (candidate, streams, rows) = Candidate(directory, new MLContext(seed: 1), CalibrationMethod.Percentile);
        Assert.IsTrue(rows.Cursors > streams, "a histogram cannot be derived from the rows' extremes");
        var smoothed = candidate.Model.Graph.Node.Single(n => n.OpType == "Mul").Output[0];
        Assert.IsNotNull(candidate.Statistics.ByTensor()[smoothed].Histogram);
    }
}
