using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class WeightQuantizerTests
{
    private static readonly WeightFormat Full = WeightFormat.For(WeightRange.Full);
    private static readonly WeightFormat PairBounded = WeightFormat.For(WeightRange.PairBounded);
    private static readonly WeightFormat SevenBit = WeightFormat.For(WeightRange.SevenBit);

    // Per channel of w (channels along `axis`), the elements' rounding errors q − w/s.
    private static List<double[]> Errors(QuantizedWeight w, float[] values, int axis)
    {
        long inner = 1, outer = 1;
        for (int d = axis + 1; d < w.Dims.Length; d++) inner *= w.Dims[d];
        for (int d = 0; d < axis; d++) outer *= w.Dims[d];
        int count = (int)w.Dims[axis];
        var errors = new List<double[]>();
        for (int c = 0; c < count; c++)
        {
            var e = new List<double>();
            for (long o = 0; o < outer; o++)
                for (long i = 0; i < inner; i++)
                {
                    long at = (o * count + c) * inner + i;
                    e.Add(w.Values[at] - values[at] / (double)w.Scales[c]);
                }
            errors.Add(e.ToArray());
        }
        return errors;
    }

    [TestMethod]
    public void BalancedRoundingCancelsTheErrorsOfEachKernelAndOutputChannel()
    {
        var random = new Random(5);
        // 12 output channels of 6 input channels × 3×3, normal weights, and one channel with an outlier at each sign.
        var values = new float[12 * 54];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        values[54] = 9; values[55] = -9;
        var dims = new long[] { 12, 6, 3, 3 };
        var nearest = WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, PairBounded);
        var balanced = WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, PairBounded, rounding: WeightRounding.Balanced);
        CollectionAssert.AreEqual(nearest.Scales, balanced.Scales, "the rounding does not change the scales");
        var nearestErrors = Errors(nearest, values, 0);
        var balancedErrors = Errors(balanced, values, 0);
        Assert.IsTrue(nearestErrors.Any(e => Math.Abs(e.Sum()) > 1), "nearest rounding leaves channels whose errors add up");
        for (int c = 0; c < 12; c++)
        {
            var e = balancedErrors[c];
            Assert.IsTrue(e.All(x => Math.Abs(x) < 1), $"channel {c}: every weight within one step of its value");
            Assert.IsTrue(Math.Abs(e.Sum()) <= 0.5 + 1e-9, $"channel {c}: error sum {e.Sum():F3}");
            for (int k = 0; k < 6; k++)
            {
                double kernel = e.Skip(9 * k).Take(9).Sum();
                Assert.IsTrue(Math.Abs(kernel) <= 1 + 1e-9, $"channel {c}, kernel {k}: error sum {kernel:F3}");
            }
            Assert.IsTrue(e.Count(x => Math.Abs(x) > 0.5) < e.Length / 2, $"channel {c}: most weights keep their nearest step");
        }
        Assert.IsTrue(WeightQuantizer.LargestPairSum(balanced.Values, dims, 0) <= 128, "the pair bound holds");
        Assert.IsTrue(balanced.Values.All(q => Math.Abs((int)q) <= 127));
        // A pure function of the values.
        CollectionAssert.AreEqual(balanced.Values,
            WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, PairBounded, rounding: WeightRounding.Balanced).Values);
    }

    [TestMethod]
    public void BalancedRoundingBalancesConvolutionsOfAnyRankAndLeavesMatMulWeightsNearest()
    {
        var random = new Random(6);
        var values = Enumerable.Range(0, 280).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        // A 1-d convolution [Cout = 7, Cin = 8, k = 5]: each channel's 40 errors sum to within half a step.
        var conv = new long[] { 7, 8, 5 };
        var nearest = Errors(WeightQuantizer.Quantize("W", conv, values, 0, true, WeightScaleMethod.Max, Full), values, 0);
        Assert.IsTrue(nearest.Any(e => Math.Abs(e.Sum()) > 0.5), "nearest rounding leaves channels whose errors add up");
        foreach (var e in Errors(WeightQuantizer.Quantize("W", conv, values, 0, true, WeightScaleMethod.Max, Full, rounding: WeightRounding.Balanced), values, 0))
        {
            Assert.IsTrue(Math.Abs(e.Sum()) <= 0.5 + 1e-9, $"error sum {e.Sum():F3}");
            Assert.IsTrue(e.All(x => Math.Abs(x) < 1));
        }
        // A MatMul's [K = 40, N = 7], per output column: rounded to nearest either way.
        var matMul = new long[] { 40, 7 };
        CollectionAssert.AreEqual(WeightQuantizer.Quantize("W", matMul, values, 1, true, WeightScaleMethod.Max, Full).Values,
            WeightQuantizer.Quantize("W", matMul, values, 1, true, WeightScaleMethod.Max, Full, rounding: WeightRounding.Balanced).Values);
    }

    [TestMethod]
    public void BalancedRoundingNeverPassesTheFormatsLargestStep()
    {
        // Every weight just below a step that rounds up; the largest ones at the format's edge cannot round further out.
        var values = Enumerable.Range(0, 36).Select(i => (i % 2 == 0 ? 1 : -1) * (1f + 0.001f * i)).ToArray();
        var w = WeightQuantizer.Quantize("W", new long[] { 4, 1, 3, 3 }, values, 0, true, WeightScaleMethod.Max, SevenBit,
            rounding: WeightRounding.Balanced);
        Assert.IsTrue(w.Values.All(q => Math.Abs((int)q) <= 63), string.Join(",", w.Values));
    }

    [TestMethod]
    public void PairBoundedChannelsKeepTheirTwoLargestMagnitudesWithin128()
    {
        var random = new Random(3);
        foreach (var method in new[] { WeightScaleMethod.Max, WeightScaleMethod.PowerOfTwo })
            foreach (bool perChannel in new[] { true, false })
            {
                // 16 output channels of 8×3×3: uniform of growing width, two equal extremes, one outlier.
                var values = new float[16 * 72];
                for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * (1 + i / 72);
                values[72] = 5; values[73] = 5;                     // channel 1: two equal extremes of one sign → 64 and 64
                for (int i = 288; i < 360; i++) values[i] = 0.01f;  // channel 4: equal extremes of opposite signs keep 127
                values[288] = 5; values[289] = -5;
                for (int i = 144; i < 216; i++) values[i] = 0.01f;  // channel 2: one outlier keeps (nearly) 127
                values[144] = 9;
                var w = WeightQuantizer.Quantize("W", new long[] { 16, 8, 3, 3 }, values, 0, perChannel, method, PairBounded);

                Assert.IsTrue(WeightQuantizer.LargestPairSum(w.Values, w.Dims, 0) <= 128, $"{method}, per channel {perChannel}");
                Assert.IsTrue(w.Values.All(q => Math.Abs((int)q) <= 127));
                if (method == WeightScaleMethod.Max && perChannel)
                {
                    Assert.AreEqual(64, Math.Abs((int)w.Values[72]), "equal extremes of one sign share the 128");
                    Assert.AreEqual(127, (int)w.Values[288], "opposite signs cannot add up: |a₁q₁ + a₂q₂| ≤ 255 × 127");
                    Assert.AreEqual(-127, (int)w.Values[289]);
                    Assert.IsTrue(w.Values[144] >= 126, $"a lone outlier keeps nearly the full range ({w.Values[144]})");
                }
                var full = WeightQuantizer.Quantize("W", new long[] { 16, 8, 3, 3 }, values, 0, perChannel, method, Full);
                Assert.IsTrue(WeightQuantizer.LargestPairSum(full.Values, full.Dims, 0) > 128, "the full range does exceed the bound on these weights");
            }
    }

    [TestMethod]
    public void PairBoundedIsNeverCoarserThanSevenBitsAndNeverFinerThanFull()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            var values = Enumerable.Range(0, 4 * 50).Select(_ => (float)(random.NextDouble() * 2 - 1) * (trial + 1)).ToArray();
            var dims = new long[] { 4, 50 };
            var bounded = WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, PairBounded);
            var seven = WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, SevenBit);
            var full = WeightQuantizer.Quantize("W", dims, values, 0, true, WeightScaleMethod.Max, Full);
            for (int c = 0; c < 4; c++)
            {
                Assert.IsTrue(bounded.Scales[c] <= seven.Scales[c] * (1 + 1e-6f), $"trial {trial} channel {c}: {bounded.Scales[c]} vs 7-bit {seven.Scales[c]}");
                Assert.IsTrue(bounded.Scales[c] >= full.Scales[c] * (1 - 1e-6f));
            }
            Assert.IsTrue(seven.Values.All(q => Math.Abs((int)q) <= 63));
            Assert.IsTrue(WeightQuantizer.LargestPairSum(seven.Values, dims, 0) <= 126);
        }
    }

    [TestMethod]
    public void ACustomThresholdClipsAndKeepsThePairBound()
    {
        var values = new[] { 3f, 3f, 0.5f, -0.25f }; // one channel along axis 0 of [1, 4]
        var w = WeightQuantizer.Quantize("W", new long[] { 1, 4 }, values, 0, perChannel: true, WeightScaleMethod.Max, PairBounded, threshold: 1f);
        Assert.AreEqual(2f / 128, w.Scales.Single(), 1e-7f, "clipped to ±1, the pair 1 + 1 takes the 128");
        CollectionAssert.AreEqual(new sbyte[] { 64, 64, 32, -16 }, w.Values);
        Assert.IsNull(w.Axis, "a custom range gives one scale");
    }

    [TestMethod]
    public void PerChannelScalesComeFromEachChannelsMaximum()
    {
        // Two output channels of 3 values each; the second is all zero.
        var values = new[] { 0.5f, -1.27f, 0.01f, 0f, 0f, 0f };
        var w = WeightQuantizer.Quantize("W", new long[] { 2, 3 }, values, 0, perChannel: true, WeightScaleMethod.Max, Full);

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
        var w = WeightQuantizer.Quantize("W", new long[] { 2, 2 }, values, 1, perChannel: true, WeightScaleMethod.Max, Full);
        Assert.AreEqual(4f / 127, w.Scales[0], 1e-7f);
        Assert.AreEqual(8f / 127, w.Scales[1], 1e-7f);
        var back = w.Dequantize();
        for (int i = 0; i < values.Length; i++)
            Assert.AreEqual(values[i], back[i], w.Scales[i % 2] / 2 + 1e-6f, $"element {i} uses channel {i % 2}");
        CollectionAssert.AreEqual(new sbyte[] { 32, 32, -127, 127 }, w.Values);
    }

    [TestMethod]
    public void PerChannelAlongAMiddleAxisMatchesEachElementToItsChannel()
    {
        // [2, 3, 4] with channels on axis 1: element i is in channel (i / 4) % 3; the channels' largest magnitudes differ
        // by orders of magnitude, so an element scaled by another channel's scale would be far off.
        var dims = new long[] { 2, 3, 4 };
        var random = new Random(11);
        var values = Enumerable.Range(0, 24).Select(i => (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, i / 4 % 3)).ToArray();
        foreach (var format in new[] { Full, PairBounded })
        {
            var w = WeightQuantizer.Quantize("W", dims, values, 1, perChannel: true, WeightScaleMethod.Max, format);
            Assert.AreEqual(1, w.Axis);
            Assert.AreEqual(3, w.Scales.Length);
            var back = w.Dequantize();
            for (int c = 0; c < 3; c++)
            {
                var members = Enumerable.Range(0, 24).Where(i => i / 4 % 3 == c).ToList();
                float largest = members.Max(i => Math.Abs(values[i]));
                if (format == Full) Assert.AreEqual(largest / 127, w.Scales[c], largest * 1e-6f, $"channel {c}");
                foreach (int i in members)
                    Assert.AreEqual(values[i], back[i], w.Scales[c] / 2 + 1e-6f * largest, $"element {i} (channel {c}), {format}");
            }
            Assert.IsTrue(WeightQuantizer.LargestPairSum(w.Values, dims, 1) <= (format == Full ? 254 : 128));
        }
    }

    [TestMethod]
    public void PowerOfTwoScalesArePowersOfTwo()
    {
        var w = WeightQuantizer.Quantize("W", new long[] { 3 }, new[] { 0.3f, -0.1f, 0.2f }, null, perChannel: false, WeightScaleMethod.PowerOfTwo, Full);
        Assert.AreEqual(0.5f / 128, w.Scales.Single(), "2^ceil(log2 0.3) = 0.5");
        var one = WeightQuantizer.Quantize("W", new long[] { 1 }, new[] { 1f }, null, perChannel: false, WeightScaleMethod.PowerOfTwo, Full);
        Assert.AreEqual(1f / 128, one.Scales.Single(), "a power of two is its own threshold");
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
