using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class TensorStatisticsTests
{
    [TestMethod]
    public void RangesAgreeWithAPlainScanAtEveryLengthAndAlignment()
    {
        var random = new Random(7);
        for (int length = 0; length < 70; length++)
        {
            var values = Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 200 - 100)).ToArray();
            var stats = new TensorStatistics("t", TensorRole.Activation, "n", "Relu");
            Assert.AreEqual(-1, stats.AddRange(values));
            if (length == 0)
            {
                Assert.AreEqual(0L, stats.Samples, "an empty tensor adds no sample");
                continue;
            }
            Assert.AreEqual((double)values.Min(), stats.Min, $"length {length}");
            Assert.AreEqual((double)values.Max(), stats.Max, $"length {length}");
            Assert.AreEqual(1L, stats.Samples);
            Assert.AreEqual((long)length, stats.Count);
        }
    }

    [TestMethod]
    public void TheFirstNonFiniteValueIsFoundWhereverItIsAndLeavesTheRangeUnchanged()
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            for (int at = 0; at < 40; at++)
            {
                var values = Enumerable.Range(0, 40).Select(i => (float)i - 20).ToArray();
                values[at] = bad;
                if (at + 3 < values.Length) values[at + 3] = float.NaN; // a later one is not the answer
                var stats = new TensorStatistics("t", TensorRole.Activation, "n", "Relu");
                stats.AddRange(new[] { 1f, 2f });
                Assert.AreEqual(at, stats.AddRange(values), $"{bad} at {at}");
                Assert.AreEqual(1.0, stats.Min, "a rejected row leaves the range as it was");
                Assert.AreEqual(2.0, stats.Max);
                Assert.AreEqual(1L, stats.Samples);
            }
    }
}
