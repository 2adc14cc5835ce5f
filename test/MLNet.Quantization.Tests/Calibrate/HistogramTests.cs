using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibrate;

namespace MLNet.Quantization.Tests.Calibrate;

[TestClass]
public sealed class HistogramTests
{
    [TestMethod]
    public void BinsAreHalfOpenExceptTheLastAsInNumPy()
    {
        // np.histogram([-1, -0.5, 0, 0.5, 1], bins=4, range=(-1, 1)) == [1, 1, 1, 2]
        var h = new Histogram(-1, 1, 4);
        h.Add(new[] { -1f, -0.5f, 0f, 0.5f, 1f });
        CollectionAssert.AreEqual(new long[] { 1, 1, 1, 2 }, h.Counts);
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
        CollectionAssert.AreEqual(whole.Counts, first.Counts);
        Assert.ThrowsExactly<ArgumentException>(() => first.Merge(Histogram.Symmetric(1, 8001)));
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
            int bin = Array.FindIndex(single.Counts, c => c == 1);
            Assert.IsTrue(v >= single.Edge(bin) && (v < single.Edge(bin + 1) || bin == 8000), $"{v} in bin {bin}");
        }
    }
}
