using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class HistogramTests
{
    [TestMethod]
    public void BinsAreHalfOpenExceptTheLastAsInNumPy()
    {
        // np.histogram([-1, -0.5, 0, 0.5, 1], bins=4, range=(-1, 1)) == [1, 1, 1, 2]
        var h = new Histogram(-1, 1, 4);
        h.Add(new[] { -1f, -0.5f, 0f, 0.5f, 1f });
        CollectionAssert.AreEqual(new long[] { 1, 1, 1, 2 }, h.Counts.ToArray());
        Assert.AreEqual(-1, h.ObservedMin);
        Assert.AreEqual(1, h.ObservedMax);
        Assert.AreEqual(5L, h.Total);
    }

    [TestMethod]
    public void ValuesOutsideTheRangeAreNotCounted()
    {
        var h = Histogram.Symmetric(1, 3);
        h.Add(new[] { -2f, 2f, 0f });
        Assert.AreEqual(1L, h.Total);
        Assert.AreEqual(1L, h.Counts[1], "zero falls in the middle bin");
    }

    [TestMethod]
    public void ShardsMergeIntoExactlyTheHistogramOfAllValues()
    {
        var values = TinyData.Normal(1, 10_000, seed: 3)[0];
        var whole = Histogram.Symmetric(values.Max(Math.Abs), 8001);
        whole.Add(values);
        var first = Histogram.Symmetric(values.Max(Math.Abs), 8001);
        var second = Histogram.Symmetric(values.Max(Math.Abs), 8001);
        second.Add(values.AsSpan(3_333));
        first.Add(values.AsSpan(0, 3_333));
        first.Merge(second);
        CollectionAssert.AreEqual(whole.Counts.ToArray(), first.Counts.ToArray());
        Assert.AreEqual(whole.ObservedMin, first.ObservedMin);
        Assert.AreEqual(whole.Total, first.Total);
        Assert.ThrowsExactly<ArgumentException>(() => first.Merge(Histogram.Symmetric(1, 8001)));
    }

    [TestMethod]
    public void BuildSpansPlusMinusTheLargestMagnitudeAndRejectsNaN()
    {
        var h = Histogram.Build(new[] { -0.5f, 2f, 0f }, 5);
        Assert.AreEqual(-2, h.Min);
        Assert.AreEqual(2, h.Max);
        Assert.IsFalse(h.NonNegative);
        Assert.ThrowsExactly<ArgumentException>(() => Histogram.Build(new[] { 1f, float.NaN }));
    }

    [TestMethod]
    public void EveryBinIndexMatchesTheEdgesItLiesBetween()
    {
        var values = TinyData.Normal(1, 20_000, seed: 5)[0];
        var h = Histogram.Symmetric(values.Max(Math.Abs), 8001);
        foreach (var v in values.Take(2_000))
        {
            var single = Histogram.Symmetric(h.Max, 8001);
            single.Add(new[] { v });
            int bin = single.Counts.IndexOf(1L);
            Assert.IsTrue(v >= single.Edge(bin) && (v < single.Edge(bin + 1) || bin == 8000), $"{v} in bin {bin}");
        }
    }

    [TestMethod]
    public void EightValuesAtATimeCountExactlyAsOneAtATimeOnAndNearEveryEdge()
    {
        var random = new Random(17);
        // ±2.945192f: there t = (v − min)·norm rounds to just below an integer for the float on an edge (bins 1778, 3556,
        // 6223, 7112), so only the edges put those values in the right bin.
        foreach (var (min, max, bins) in new[] { (-(double)2.945192f, (double)2.945192f, 8001), (-3.0, 3.0, 8001), (-1.0, 1.0, 4), (0.0, 6.0, 2048), (1000.0, 1000.001, 101), (-1e-30, 1e-30, 255), (2.5, 2.5, 9) })
        {
            var reference = new Histogram(min, max, bins);
            var values = new List<float>();
            // Every edge, the floats either side of it, values beyond the range, NaN and infinities, and values drawn at random.
            for (int k = 0; k <= bins; k++)
            {
                float edge = (float)reference.Edge(k);
                values.AddRange(new[] { edge, MathF.BitDecrement(edge), MathF.BitIncrement(edge) });
            }
            values.AddRange(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, (float)min - 1, (float)max + 1, 0f, -0f });
            for (int k = 0; k < 5000; k++) values.Add((float)(min + (max - min) * (random.NextDouble() * 1.2 - 0.1)));
            var shuffled = values.OrderBy(_ => random.Next()).ToArray();

            var h = new Histogram(min, max, bins);
            var oneByOne = new Histogram(min, max, bins);
            for (int from = 0; from < shuffled.Length; from += 333)
            {
                var part = shuffled.AsSpan(from, Math.Min(333, shuffled.Length - from));
                h.Add(part);
                oneByOne.AddOneByOne(part);
            }
            string where = $"[{min}, {max}] in {bins} bins";
            CollectionAssert.AreEqual(oneByOne.Counts.ToArray(), h.Counts.ToArray(), where);
            Assert.AreEqual(oneByOne.Total, h.Total, where);
            Assert.AreEqual(oneByOne.ObservedMin, h.ObservedMin, where);
            Assert.AreEqual(oneByOne.ObservedMax, h.ObservedMax, where);
            Assert.IsTrue(h.Total > 0, where);
        }
    }
}
