using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class MeanSquaredErrorSearchTests
{
    // Laplace-distributed values (the heavy-tailed shape of many conv outputs), with a few far outliers.
    private static float[] HeavyTailed(int count, int seed, bool nonNegative)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u = random.NextDouble() - 0.5;
            double x = -Math.Sign(u) * Math.Log(1 - 2 * Math.Abs(u));
            values[i] = (float)(nonNegative ? Math.Abs(x) : x);
        }
        values[0] = 40f;
        values[1] = nonNegative ? 35f : -30f;
        return values;
    }

    // The squared error of quantizing every value with the parameters Calibrator gives the range, as the model would.
    private static double QuantizationError(float[] values, TensorRange range, bool asymmetric)
    {
        if (asymmetric && range.Min < 0)
            range = new TensorRange(Math.Max(values.Min(), range.Min), Math.Min(values.Max(), range.Max));
        var p = Calibrator.ActivationParameters(range, asymmetric);
        double error = 0;
        foreach (var v in values)
        {
            double q = Math.Clamp(Math.Round(v / p.Scale, MidpointRounding.ToEven) + p.ZeroPoint, p.Format.QMin, p.Format.QMax);
            double d = v - (q - p.ZeroPoint) * p.Scale;
            error += d * d;
        }
        return error;
    }

    [TestMethod]
    [DataRow(false, true)]
    [DataRow(false, false)]
    [DataRow(true, true)]
    public void ItsRangeQuantizesWithLessErrorThanMaxPercentileOrKl(bool nonNegative, bool asymmetric)
    {
        var values = HeavyTailed(200_000, seed: 7, nonNegative);
        var histogram = Histogram.Build(values);
        var range = new MeanSquaredErrorSearch(asymmetric).Search(histogram);
        Assert.IsTrue(range.Threshold < 40, $"{range.Threshold}: clipping the largest outlier pays");
        Assert.AreEqual(nonNegative, range.Min >= 0);
        double mse = QuantizationError(values, range, asymmetric);
        foreach (var other in new IThresholdSearch[] { new MaxSearch(), new PercentileSearch(), new KlDivergenceSearch() })
        {
            double error = QuantizationError(values, other.Search(histogram), asymmetric);
            Assert.IsTrue(mse < error, $"{other.GetType().Name}: {error:G4} against {mse:G4}");
        }
    }

    [TestMethod]
    public void TheChosenThresholdIsTheMinimumOverEveryCandidate()
    {
        var values = HeavyTailed(50_000, seed: 3, nonNegative: false);
        var histogram = Histogram.Build(values, 401);
        var search = new MeanSquaredErrorSearch();
        float chosen = search.Search(histogram).Threshold;
        double best = search.Error(histogram, chosen);
        int zero = histogram.Bins / 2;
        for (int j = 0; j < zero; j++)
            Assert.IsTrue(search.Error(histogram, histogram.Edge(zero + j + 1)) >= best * (1 - 1e-9), $"candidate {j}");
        Assert.IsTrue(search.Error(histogram, histogram.Max) >= best * (1 - 1e-9));

        // Error against a direct sum over the bins (each bin at its centre): the prefix sums compute the same.
        double t = histogram.Edge(zero + 40);
        double lo = Math.Min(Math.Max(histogram.ObservedMin, -t), 0), hi = Math.Max(Math.Min(histogram.ObservedMax, t), 0);
        double step = (hi - lo) / 255, direct = 0;
        for (int i = 0; i < histogram.Bins; i++)
        {
            double c = histogram.Min + (i + 0.5) * histogram.BinWidth;
            direct += histogram.Counts[i] * (c < lo ? (lo - c) * (lo - c) : c > hi ? (c - hi) * (c - hi) : step * step / 12);
        }
        Assert.AreEqual(direct, search.Error(histogram, t), direct * 1e-9);
    }

    [TestMethod]
    public void UniformValuesAreHardlyClipped()
    {
        var uniform = Enumerable.Range(0, 100_001).Select(i => 2f * i / 100_000).ToArray();
        var range = new MeanSquaredErrorSearch().Search(Histogram.Build(uniform));
        Assert.AreEqual(0f, range.Min);
        Assert.IsTrue(range.Max > 1.98f && range.Max <= 2f, $"{range.Max}: clipping a uniform tail costs more than the finer grid saves");
    }

    [TestMethod]
    public void EmptyZeroAndBadHistogramsAnswerPlainly()
    {
        Assert.AreEqual(default, new MeanSquaredErrorSearch().Search(Histogram.Symmetric(1, 11)));
        Assert.AreEqual(new TensorRange(0, 0), new MeanSquaredErrorSearch().Search(Histogram.Build(new[] { 0f, 0f })));
        Assert.ThrowsExactly<ArgumentException>(() => new MeanSquaredErrorSearch().Search(new Histogram(-1, 1, 10)));
        Assert.ThrowsExactly<ArgumentNullException>(() => new MeanSquaredErrorSearch().Search(null!));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MeanSquaredErrorSearch(levels: 1));
    }
}
