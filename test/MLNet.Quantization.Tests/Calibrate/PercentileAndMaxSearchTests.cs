using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class PercentileAndMaxSearchTests
{
    private static readonly float[] Uniform = Enumerable.Range(0, 100_001).Select(i => -1f + 2f * i / 100_000).ToArray();

    [TestMethod]
    public void PercentileOfUniformValuesIsNearTheRequestedFraction()
    {
        var h = Histogram.Build(Uniform);
        Assert.AreEqual(0.9f, new PercentileSearch(90).Search(h).Max, 1e-3f);
        Assert.AreEqual(-0.9f, new PercentileSearch(90).Search(h).Min, 1e-3f);
        Assert.AreEqual(1f, new PercentileSearch(100).Search(h).Max, 1e-6f);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PercentileSearch(0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PercentileSearch(100.5));
    }

    [TestMethod]
    public void PercentileClipsTheRareTail()
    {
        var values = Enumerable.Repeat(1f, 999_999).Append(100f).ToArray();
        var range = new PercentileSearch(99.999).Search(Histogram.Build(values));
        Assert.AreEqual(0f, range.Min);
        Assert.IsTrue(range.Max < 1.1f, $"{range.Max}: one value in a million lies beyond the 99.999th percentile");
    }

    [TestMethod]
    public void MaxKeepsEverything()
    {
        Assert.AreEqual(new TensorRange(-1, 1), new MaxSearch().Search(Histogram.Build(Uniform)));
        Assert.AreEqual(new TensorRange(0, 3), new MaxSearch().Search(Histogram.Build(new[] { 0f, 3f, 1f })));
        Assert.AreEqual(new TensorRange(-5, 5), new MaxSearch().Search(Histogram.Build(new[] { -5f, 3f })));
    }

    [TestMethod]
    public void RangesGiveTheirZeroPointsAndScales()
    {
        var unsigned = Calibrator.ActivationParameters(new TensorRange(0, 2.55f));
        Assert.AreEqual(0.01f, unsigned.Scale, 1e-7f);
        Assert.AreEqual(0, unsigned.ZeroPoint);
        var signed = Calibrator.ActivationParameters(new TensorRange(-0.5f, 1.27f));
        Assert.AreEqual(0.01f, signed.Scale, 1e-7f);
        Assert.AreEqual(128, signed.ZeroPoint);
        Assert.AreEqual(1.27f, new TensorRange(-0.5f, 1.27f).Threshold);
    }
    [TestMethod]
    public void TheActivationNumberFormatIsDataNotCode()
    {
        var sevenBit = new ActivationFormat(0, 127, MLNet.Quantization.Onnx.Tensors.UInt8, "uint7");
        var unsigned = Calibrator.ActivationParameters(new TensorRange(0, 1.27f), format: sevenBit);
        Assert.AreEqual(0.01f, unsigned.Scale, 1e-7f);
        Assert.AreEqual(0, unsigned.ZeroPoint);
        Assert.AreEqual(1.27f, unsigned.Max, 1e-6f);
        var signed = Calibrator.ActivationParameters(new TensorRange(-0.63f, 0.63f), format: sevenBit);
        Assert.AreEqual(64, signed.ZeroPoint, "the middle of 0..127");
        Assert.AreEqual(0.01f, signed.Scale, 1e-7f);
        var asymmetric = Calibrator.ActivationParameters(new TensorRange(-0.27f, 1f), asymmetric: true, format: sevenBit);
        Assert.AreEqual(0.01f, asymmetric.Scale, 1e-7f);
        Assert.AreEqual(27, asymmetric.ZeroPoint);
    }
}
