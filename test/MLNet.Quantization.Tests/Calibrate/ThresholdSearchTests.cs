using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibrate;

namespace MLNet.Quantization.Tests.Calibrate;

[TestClass]
public sealed class ThresholdSearchTests
{
    private static Histogram Of(float[] values, int bins = 8001)
    {
        var h = Histogram.Symmetric(values.Max(Math.Abs), bins);
        h.Add(values);
        return h;
    }

    /// <summary>
    /// A line-by-line transcription of MXNet's <c>_get_optimal_threshold</c> loop (without its NaN defect), written
    /// without prefix sums, to check the production search against.
    /// </summary>
    private static double Reference(Histogram h, int quantizedBins)
    {
        var hist = h.Counts.Select(c => (double)c).ToArray();
        int n = hist.Length, zero = n / 2;
        double best = double.PositiveInfinity, threshold = h.Max;
        for (int i = quantizedBins / 2; i <= zero; i++)
        {
            int start = zero - i, stop = zero + i + 1;
            var sliced = hist[start..stop];
            var p = (double[])sliced.Clone();
            p[0] += hist[..start].Sum();
            p[^1] += hist[stop..].Sum();
            var isNonzero = p.Select(v => v != 0 ? 1 : 0).ToArray();
            int merged = sliced.Length / quantizedBins;
            var quantized = new double[quantizedBins];
            for (int j = 0; j < quantizedBins; j++) quantized[j] = sliced[(j * merged)..(j * merged + merged)].Sum();
            quantized[^1] += sliced[(quantizedBins * merged)..].Sum();
            var q = new double[sliced.Length];
            for (int j = 0; j < quantizedBins; j++)
            {
                int s = j * merged, e = j == quantizedBins - 1 ? sliced.Length : s + merged;
                double norm = isNonzero[s..e].Sum();
                if (norm != 0) for (int k = s; k < e; k++) q[k] = quantized[j] / norm;
            }
            for (int k = 0; k < q.Length; k++) if (p[k] == 0) q[k] = 0;
            if (!Smooth(p) || !Smooth(q)) continue;
            double sp = p.Sum(), sq = q.Sum(), kl = 0;
            for (int k = 0; k < p.Length; k++) kl += p[k] / sp * Math.Log(p[k] / sp / (q[k] / sq));
            if (kl < best) { best = kl; threshold = h.Edge(stop); }
        }
        return threshold;

        static bool Smooth(double[] d)
        {
            int zeros = d.Count(v => v == 0);
            if (zeros == d.Length) return false;
            double eps1 = 1e-4 * zeros / (d.Length - zeros);
            for (int k = 0; k < d.Length; k++) d[k] = d[k] == 0 ? 1e-4 : d[k] - eps1;
            return d.All(v => v > 0);
        }
    }

    [TestMethod]
    public void KlMatchesTheReferenceLoopOnSmallHistograms()
    {
        var random = new Random(9);
        for (int trial = 0; trial < 20; trial++)
        {
            var values = TinyData.Normal(1, 3_000, seed: trial, std: 1 + trial)[0];
            if (trial % 3 == 0) values[0] = 40 * (trial + 1); // an outlier
            if (trial % 4 == 1) values = values.Select(Math.Abs).ToArray(); // never negative
            var h = Of(values, bins: 401);
            int quantized = trial % 4 == 1 ? 31 : 15;
            Assert.AreEqual(Reference(h, quantized), ThresholdSearch.KlDivergence(h, quantized), 1e-12, $"trial {trial}");
        }
    }

    [TestMethod]
    public void KlClipsAGaussianBetweenTwoSigmaAndItsMaximum()
    {
        var values = TinyData.Normal(1, 200_000, seed: 1)[0];
        double threshold = ThresholdSearch.KlDivergence(Of(values));
        Assert.IsTrue(threshold > 2 && threshold < values.Max(Math.Abs), $"threshold {threshold}");
    }

    [TestMethod]
    public void KlIgnoresASingleFarOutlier()
    {
        var values = TinyData.Normal(1, 100_000, seed: 2)[0];
        values[500] = 1000;
        double threshold = ThresholdSearch.KlDivergence(Of(values));
        // The smallest candidate is 127.5 bins of 2000/8001: about 31.9. The search must stay far below the outlier.
        Assert.IsTrue(threshold >= 127.5 * 2000 / 8001 - 1e-9 && threshold < 100, $"threshold {threshold}: the outlier should be clipped");
    }

    [TestMethod]
    public void AConstantTensorKeepsItsValueInsteadOfLettingNaNWin()
    {
        // MXNet/TVM pick 0.0159 here: every candidate but the last has an all-zero Q and a NaN divergence.
        var values = Enumerable.Repeat(0.5f, 1000).ToArray();
        Assert.AreEqual(0.5, ThresholdSearch.KlDivergence(Of(values)), 1e-12);
    }

    [TestMethod]
    public void AnAllZeroTensorGetsThresholdZeroAndScaleOne()
    {
        var h = Histogram.Symmetric(0, 8001);
        h.Add(new float[100]);
        Assert.AreEqual(0, ThresholdSearch.KlDivergence(h));
        Assert.AreEqual(0, ThresholdSearch.Percentile(h));
        var p = Calibrator.ActivationParameters(0, nonNegative: true);
        Assert.AreEqual(1f, p.Scale);
        Assert.AreEqual((byte)0, p.ZeroPoint);
    }

    [TestMethod]
    public void PercentileOfUniformValuesIsNearTheRequestedFraction()
    {
        var values = Enumerable.Range(0, 100_001).Select(i => -1f + 2f * i / 100_000).ToArray();
        double threshold = ThresholdSearch.Percentile(Of(values), 90);
        Assert.AreEqual(0.9, threshold, 1e-3);
        Assert.AreEqual(1.0, ThresholdSearch.Percentile(Of(values), 100), 1e-9);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ThresholdSearch.Percentile(Of(values), 0));
    }

    [TestMethod]
    public void UnsignedAndSignedActivationsGetTheirZeroPoints()
    {
        var unsigned = Calibrator.ActivationParameters(2.55f, nonNegative: true);
        Assert.AreEqual(0.01f, unsigned.Scale, 1e-7f);
        Assert.AreEqual((byte)0, unsigned.ZeroPoint);
        var signed = Calibrator.ActivationParameters(1.27f, nonNegative: false);
        Assert.AreEqual(0.01f, signed.Scale, 1e-7f);
        Assert.AreEqual((byte)128, signed.ZeroPoint);
    }
}
