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
}
