using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class KlDivergenceSearchTests
{
    /// <summary>
    /// A line-by-line transcription of the loop of MXNet's <c>_get_optimal_threshold</c> (in double, and with a candidate
    /// that cannot be smoothed scored +∞ instead of NaN), written without prefix sums or series, to check the fast
    /// search against. Returns the divergence of every candidate.
    /// </summary>
    private static double[] ReferenceDivergences(Histogram h, int quantizedBins)
    {
        var hist = h.Counts.ToArray().Select(c => (double)c).ToArray();
        int n = hist.Length, zero = n / 2;
        var result = new List<double>();
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
            if (!Smooth(p) || !Smooth(q)) { result.Add(double.PositiveInfinity); continue; }
            double sp = p.Sum(), sq = q.Sum(), kl = 0;
            for (int k = 0; k < p.Length; k++) kl += p[k] / sp * Math.Log(p[k] / sp / (q[k] / sq));
            result.Add(kl);
        }
        return result.ToArray();

        static bool Smooth(double[] d)
        {
            int zeros = d.Count(v => v == 0);
            if (zeros == d.Length) return false;
            double eps1 = 1e-4 * zeros / (d.Length - zeros);
            for (int k = 0; k < d.Length; k++) d[k] = d[k] == 0 ? 1e-4 : d[k] - eps1;
            return d.All(v => v > 0);
        }
    }

    private static float[] Distribution(string name, int count, int seed)
    {
        var random = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        double Laplace() { double u = random.NextDouble() - 0.5; return -Math.Sign(u) * Math.Log(1 - 2 * Math.Abs(u)); }
        return Enumerable.Range(0, count).Select(i => (float)(name switch
        {
            "gaussian" => Normal(),
            "laplace" => Laplace(),
            "relu" => Math.Max(0, Normal()), // half of the values are exact zeros
            "outliers" => i % 1000 == 0 ? 50 * Normal() : Normal(),
            "bimodal" => (i % 2 == 0 ? -3 : 4) + 0.5 * Normal(),
            "uniform" => random.NextDouble() * 2 - 1,
            "heavy" => Normal() / Math.Max(0.05, Math.Abs(Normal())), // Cauchy-like ratio of normals
            "tiny" => 1e-6 * Normal(),
            _ => throw new ArgumentException(name),
        })).ToArray();
    }

    [TestMethod]
    [DataRow("gaussian")]
    [DataRow("laplace")]
    [DataRow("relu")]
    [DataRow("outliers")]
    [DataRow("bimodal")]
    [DataRow("uniform")]
    [DataRow("heavy")]
    [DataRow("tiny")]
    public void FastSearchAgreesWithTheReferenceLoop(string distribution)
    {
        var h = Histogram.Build(Distribution(distribution, 50_000, seed: distribution.Length), 2001);
        int quantized = h.NonNegative ? 511 : 255;
        var reference = ReferenceDivergences(h, quantized);
        var fast = KlDivergenceSearch.Divergences(h, quantized, out int first)!;

        Assert.AreEqual(quantized / 2, first);
        Assert.AreEqual(reference.Length, fast.Length);
        for (int k = 0; k < fast.Length; k++)
        {
            if (double.IsPositiveInfinity(reference[k])) { Assert.IsTrue(double.IsPositiveInfinity(fast[k]), $"candidate {k}"); continue; }
            Assert.AreEqual(reference[k], fast[k], 1e-9 + 1e-7 * Math.Abs(reference[k]), $"candidate {k}");
        }
        // The chosen threshold is a minimum of the reference curve, within the curve's float noise.
        double threshold = KlDivergenceSearch.Threshold(h, quantized);
        int chosen = (int)Math.Round(threshold / h.BinWidth - 0.5) - first;
        Assert.IsTrue(reference[chosen] <= reference.Min() + 1e-9, $"{distribution}: {reference[chosen]} vs {reference.Min()}");
        Assert.IsTrue(threshold > 0 && threshold <= h.Max + 1e-12 * h.Max);
    }

    [TestMethod]
    public void TheSeedsOneCallFormMatchesTheSearchAtFullSize()
    {
        var values = Distribution("gaussian", 100_000, seed: 1);
        float threshold = KlDivergenceSearch.FindKlThreshold(values);
        Assert.AreEqual((float)KlDivergenceSearch.Threshold(Histogram.Build(values, 8001), 255), threshold);
        Assert.IsTrue(threshold > 2 && threshold < values.Max(Math.Abs), $"a Gaussian is clipped between 2σ and its maximum: {threshold}");
    }

    [TestMethod]
    public void ThresholdsScaleWithTheData()
    {
        var values = Distribution("laplace", 30_000, seed: 4);
        double unit = KlDivergenceSearch.Threshold(Histogram.Build(values, 8001), 255);
        double tiny = KlDivergenceSearch.Threshold(Histogram.Build(values.Select(v => v * 1e-6f).ToArray(), 8001), 255);
        Assert.AreEqual(unit * 1e-6, tiny, unit * 1e-6 * 1e-3);
    }

    [TestMethod]
    public void KlIgnoresASingleFarOutlier()
    {
        var values = Distribution("gaussian", 100_000, seed: 2);
        values[500] = 1000;
        double threshold = KlDivergenceSearch.FindKlThreshold(values);
        // The smallest candidate is 127.5 bins of 2000/8001: about 31.9. The search must stay far below the outlier.
        Assert.IsTrue(threshold >= 127.5 * 2000 / 8001 - 1e-3 && threshold < 100, $"threshold {threshold}");
    }

    [TestMethod]
    public void AConstantTensorKeepsItsValueInsteadOfLettingNaNWin()
    {
        // MXNet/TVM pick 0.0159 here: every candidate but the last has an all-zero Q, whose NaN divergence wins.
        Assert.AreEqual(0.5f, KlDivergenceSearch.FindKlThreshold(Enumerable.Repeat(0.5f, 1000).ToArray()));
        Assert.AreEqual(-2f, new KlDivergenceSearch().Search(Histogram.Build(Enumerable.Repeat(-2f, 10).ToArray())).Min);
    }

    [TestMethod]
    public void AnAllZeroTensorGetsThresholdZeroAndScaleOne()
    {
        var h = Histogram.Build(new float[100]);
        Assert.AreEqual(new TensorRange(0, 0), new KlDivergenceSearch().Search(h));
        Assert.AreEqual(new TensorRange(0, 0), new PercentileSearch().Search(h));
        var p = Calibrator.ActivationParameters(new TensorRange(0, 0));
        Assert.AreEqual(1f, p.Scale);
        Assert.AreEqual(0, p.ZeroPoint);
    }

    [TestMethod]
    public void ASingleNonzeroValueAmongZerosIsKeptInRange()
    {
        var values = new float[10_000];
        values[17] = 3f;
        var range = new KlDivergenceSearch().Search(Histogram.Build(values));
        Assert.AreEqual(0f, range.Min);
        var reference = ReferenceDivergences(Histogram.Build(values), 511);
        Assert.IsTrue(reference.Any(double.IsFinite));
        Assert.IsTrue(range.Max > 0 && range.Max <= 3f);
    }

    [TestMethod]
    public void NeverNegativeTensorsGetTheUnsignedRangeAndWiderQuantization()
    {
        var h = Histogram.Build(Distribution("relu", 50_000, seed: 3));
        var range = new KlDivergenceSearch().Search(h);
        Assert.AreEqual(0f, range.Min);
        Assert.AreEqual((float)KlDivergenceSearch.Threshold(h, 511), range.Max);
    }

    [TestMethod]
    [DataRow("gaussian")]
    [DataRow("relu")]
    public void PowerOfTwoSearchTakesThePowerOfTwoAroundTheKlThresholdWithTheLowerDivergence(string distribution)
    {
        var h = Histogram.Build(Distribution(distribution, 50_000, seed: 6));
        int q = h.NonNegative ? 511 : 255;
        var range = new KlDivergenceSearch(powerOfTwo: true).Search(h);
        double kl = KlDivergenceSearch.Threshold(h, q);
        double log = Math.Log2(range.Max);
        Assert.AreEqual(Math.Round(log), log, 1e-12, $"{range.Max} is a power of two");
        Assert.IsTrue(range.Max >= kl / 2 && range.Max <= kl * 2, $"{range.Max} brackets the KL threshold {kl}");
        var divergences = KlDivergenceSearch.Divergences(h, q, out int first)!;
        double DivergenceAt(double power) => divergences[Math.Min(h.Bins / 2, (int)Math.Round(power / h.BinWidth - 0.5, MidpointRounding.ToEven)) - first];
        double other = range.Max > kl ? range.Max / 2 : range.Max * 2;
        Assert.IsTrue(DivergenceAt(range.Max) <= DivergenceAt(other), "the chosen power of two has the lower divergence");
    }

    [TestMethod]
    public void AnInvalidConfigurationIsRefused()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new KlDivergenceSearch(2));
        Assert.ThrowsExactly<ArgumentException>(() => KlDivergenceSearch.Threshold(new Histogram(-1, 1, 10), 3));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => KlDivergenceSearch.Threshold(new Histogram(-1, 1, 11), 13));
    }
}
