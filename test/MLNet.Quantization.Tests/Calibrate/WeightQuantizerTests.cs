using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class WeightQuantizerTests
{
    [TestMethod]
    public void PerChannelScalesComeFromEachChannelsMaximum()
    {
        // Two output channels of 3 values each; the second is all zero.
        var values = new[] { 0.5f, -1.27f, 0.01f, 0f, 0f, 0f };
        var w = WeightQuantizer.Quantize("W", new long[] { 2, 3 }, values, axis: 0, WeightScaleMethod.Max);

        Assert.AreEqual(0.01f, w.Scales[0], 1e-8f);
        Assert.AreEqual(1f, w.Scales[1], "an all-zero channel gets scale 1");
        CollectionAssert.AreEqual(new sbyte[] { 50, -127, 1, 0, 0, 0 }, w.Values);
        var back = w.Dequantize();
        for (int i = 0; i < values.Length; i++)
            Assert.AreEqual(values[i], back[i], w.Scales[i / 3] / 2 + 1e-7f);
    }

    [TestMethod]
    public void PerChannelAlongTheLastAxis()
    {
        var values = new[] { 1f, 2f, -4f, 8f }; // [2, 2], channels on axis 1: {1, -4} and {2, 8}
        var w = WeightQuantizer.Quantize("W", new long[] { 2, 2 }, values, axis: 1, WeightScaleMethod.Max);
        Assert.AreEqual(4f / 127, w.Scales[0], 1e-7f);
        Assert.AreEqual(8f / 127, w.Scales[1], 1e-7f);
        var back = w.Dequantize();
        for (int i = 0; i < values.Length; i++)
            Assert.AreEqual(values[i], back[i], w.Scales[i % 2] / 2 + 1e-6f, $"element {i} uses channel {i % 2}");
        CollectionAssert.AreEqual(new sbyte[] { 32, 32, -127, 127 }, w.Values);
    }

    [TestMethod]
    public void PowerOfTwoScalesArePowersOfTwo()
    {
        var w = WeightQuantizer.Quantize("W", new long[] { 3 }, new[] { 0.3f, -0.1f, 0.2f }, axis: null, WeightScaleMethod.PowerOfTwo);
        Assert.AreEqual(0.5f / 128, w.Scales.Single(), "2^ceil(log2 0.3) = 0.5");
        Assert.AreEqual(0.5f, WeightQuantizer.Threshold(0.3f, WeightScaleMethod.PowerOfTwo));
        Assert.AreEqual(1f, WeightQuantizer.Threshold(1f, WeightScaleMethod.PowerOfTwo));
        CollectionAssert.AreEqual(new sbyte[] { 77, -26, 51 }, w.Values);
    }

    [TestMethod]
    public void BiasScaleIsInputScaleTimesWeightScale()
    {
        var b = WeightQuantizer.QuantizeBias("B", new long[] { 2 }, new[] { 0.5f, -3e9f }, 0.1f, new[] { 0.01f, 1e-3f });
        Assert.AreEqual(0.1f * 0.01f, b.Scales[0]);
        Assert.AreEqual(0.1f * 1e-3f, b.Scales[1]);
        Assert.AreEqual(500, b.Values[0]);
        Assert.AreEqual(int.MinValue, b.Values[1], "values beyond int32 are clamped");
    }
}
