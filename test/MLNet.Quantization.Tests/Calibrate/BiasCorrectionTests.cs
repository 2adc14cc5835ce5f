using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibrate;

[TestClass]
public sealed class BiasCorrectionTests
{
    // Output channel 0 has weights of ±0.05; channel 1 a constant 0.0003, which per-tensor int8 weights round to zero:
    // the quantized layer loses channel 1's mean (0.0003 × Σx over 64 positive inputs).
    private static float[] Weights(bool conv)
    {
        var random = new Random(3);
        var w = new float[2 * 64];
        for (int i = 0; i < 64; i++)
        {
            float big = 0.05f * (float)(random.NextDouble() * 2 - 1), small = 0.0003f;
            if (conv) { w[i] = big; w[64 + i] = small; } // [2, 64, 1, 1]: channel-major
            else { w[i * 2] = big; w[i * 2 + 1] = small; } // [64, 2]: columns are channels
        }
        return w;
    }

    // Rows of 64 inputs |x| + 1, x normal: every input positive, so that a channel's rounding error moves its output mean.
    internal static IDataView PositiveRows(MLContext ml, int count) =>
        TinyData.X(ml, TinyData.Normal(count, 64).Select(r => r.Select(v => Math.Abs(v) + 1).ToArray()).ToArray(), 64);

    internal static string Conv(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 64, 1, 1).Output("Y", 1, 2, 1, 1)
        .Constant("W", new long[] { 2, 64, 1, 1 }, Weights(conv: true)).Constant("B", new long[] { 2 }, new[] { 0f, 0f })
        .Node("Conv", new[] { "X", "W", "B" }, new[] { "Y" })
        .Save(directory.Path, "conv.onnx");

    private static string MatMulAdd(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 64).Output("Y", 1, 2)
        .Constant("W", new long[] { 64, 2 }, Weights(conv: false)).Constant("B", new long[] { 2 }, new[] { 0f, 0f })
        .Node("MatMul", new[] { "X", "W" }, new[] { "M" })
        .Node("Add", new[] { "M", "B" }, new[] { "Y" })
        .Save(directory.Path, "matmul.onnx");

    // Per output channel of Y, |mean of fp32 − quantized| over the rows of `scored`, whose fp32 outputs are `reference`;
    // the model quantized on `rows` with per-tensor weights, `correction` and `rounding` (nearest: it loses channel 1's mean).
    private static double[] MeanErrors(MLContext ml, string model, IDataView rows, IDataView scored, float[][] reference, BiasCorrection correction,
        WeightRounding rounding = WeightRounding.Nearest)
    {
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = model, PerChannelWeights = false, BiasCorrection = correction,
            WeightRounding = rounding,
        }).Fit(rows);
        var output = TinyData.Column(fitted.Transform(scored), "Y");
        return Enumerable.Range(0, reference[0].Length)
            .Select(c => Math.Abs(reference.Zip(output, (a, b) => (double)a[c] - b[c]).Average())).ToArray();
    }

    [TestMethod]
    public void CorrectionRestoresTheMeanOfAChannelThatRoundingLost()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = PositiveRows(ml, 200);
        foreach (var model in new[] { Conv(directory), MatMulAdd(directory) })
        {
            var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
            string name = Path.GetFileName(model);
            var plain = MeanErrors(ml, model, rows, rows, reference, BiasCorrection.None);
            double signal = reference.Average(r => r[1]);
            Assert.IsTrue(plain[1] > 0.5 * signal, $"{name}: without correction channel 1 loses its mean ({plain[1]:G3} of {signal:G3})");
            foreach (var correction in new[] { BiasCorrection.Fast, BiasCorrection.Full })
            {
                var corrected = MeanErrors(ml, model, rows, rows, reference, correction);
                Assert.IsTrue(corrected[1] < 0.1 * plain[1], $"{name}, {correction}: corrected mean error {corrected[1]:G3}, uncorrected {plain[1]:G3}");
                Assert.IsTrue(corrected[0] < 0.02 + plain[0] * 2, $"{name}, {correction}: channel 0 is not made worse");
            }
        }
    }

    // Channel 1's weights are all 0.76 of a step: nearest rounding makes each of them 1 and adds 0.24 × 64 steps to the
    // channel's sum, where balanced rounding rounds a quarter of them down and keeps the mean without any data (a
    // convolution's weights; a MatMul's round to nearest, WeightQuantizerTests).
    [TestMethod]
    public void BalancedRoundingKeepsTheMeanThatNearestRoundingLoses()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = PositiveRows(ml, 200);
        var model = Conv(directory);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
        var nearest = MeanErrors(ml, model, rows, rows, reference, BiasCorrection.None);
        var balanced = MeanErrors(ml, model, rows, rows, reference, BiasCorrection.None, WeightRounding.Balanced);
        Assert.IsTrue(balanced[1] < 0.1 * nearest[1], $"balanced mean error {balanced[1]:G3}, nearest {nearest[1]:G3}");
        Assert.IsTrue(balanced[0] < 0.02 + nearest[0] * 2, $"channel 0 is not made worse ({balanced[0]:G3}, nearest {nearest[0]:G3})");
    }

    // X → MatMul W1 → + B1 → Y1 and X → MatMul W2 → + B2 → Y2: the two layers read one input, as a transformer's
    // projections do. Per-tensor weights, so that rounding moves each output channel's mean.
    [TestMethod]
    public void FastCorrectionOfMatMulsFromTheirInputMeansEqualsRecomputingTheLayers()
    {
        using var directory = new TempDirectory();
        var random = new Random(11);
        float[] Values(int count, float scale) => Enumerable.Range(0, count).Select(_ => scale * (float)(random.NextDouble() * 2 - 1)).ToArray();
        var model = new TinyModel().Input("X", 4, 16).Output("Y1", 4, 8).Output("Y2", 4, 8)
            .Constant("W1", new long[] { 16, 8 }, Values(128, 0.5f)).Constant("B1", new long[] { 8 }, Values(8, 0.1f))
            .Constant("W2", new long[] { 16, 8 }, Values(128, 0.05f).Select((v, i) => i % 8 == 0 ? 2f : v).ToArray())
            .Constant("B2", new long[] { 8 }, Values(8, 0.1f))
            .Node("MatMul", new[] { "X", "W1" }, new[] { "M1" }).Node("Add", new[] { "M1", "B1" }, new[] { "Y1" })
            .Node("MatMul", new[] { "X", "W2" }, new[] { "M2" }).Node("Add", new[] { "M2", "B2" }, new[] { "Y2" })
            .Save(directory.Path, "projections.onnx");
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(120, 64).Select(r => r.Select(v => 3 * Math.Abs(v) + 1).ToArray()).ToArray(), 64);
        (IReadOnlyDictionary<string, CorrectedBias> Biases, int Points) Corrected(bool linear)
        {
            var context = Contexts.For(model, rows, new QuantizingEstimator.Options { PerChannelWeights = false })
                .Run(new AnnotatePass(), new ActivationStatisticsPass(), new CalibratePass());
            var pass = new FastBiasCorrectionPass { LinearMeans = linear };
            int points = pass.StatisticPoints(context).Count;
            context.Run(pass);
            return (context.Parameters.FloatBiases, points);
        }
        var (linear, linearPoints) = Corrected(linear: true);
        var (recomputed, recomputedPoints) = Corrected(linear: false);
        Assert.AreEqual(2, linearPoints, "X and its quantized form, once for both MatMuls");
        Assert.AreEqual(4, recomputedPoints, "each layer's output, float and recomputed");
        CollectionAssert.AreEquivalent(new[] { "B1", "B2" }, linear.Keys.ToList());
        double largest = 0;
        foreach (var (tensor, bias) in recomputed)
        {
            var original = Tensors.ReadFloats(OnnxGraph.Load(model).FindConstant(tensor)!);
            for (int c = 0; c < bias.Values.Length; c++)
            {
                double shift = bias.Values[c] - original[c];
                largest = Math.Max(largest, Math.Abs(shift));
                Assert.AreEqual(bias.Values[c], linear[tensor].Values[c], 1e-4 * (1 + Math.Abs(shift)), $"{tensor}[{c}]");
            }
        }
        Assert.IsTrue(largest > 1e-3, $"the layers' means moved (largest shift {largest:G3}), so the comparison means something");
    }

    // X → Conv1 (no bias: nothing to correct; channel 1 rounds to zero) → Relu → Conv2 (bias) → Y. Fast correction
    // computes Conv2 from the float Conv1 and sees no error; full correction runs Conv2 behind the quantized Conv1.
    [TestMethod]
    public void FullCorrectionAlsoAbsorbsTheMeanErrorFromUpstream()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel()
            .Input("X", 1, 64, 1, 1).Output("Y", 1, 2, 1, 1)
            .Constant("W1", new long[] { 2, 64, 1, 1 }, Weights(conv: true))
            .Constant("W2", new long[] { 2, 2, 1, 1 }, new[] { 0.1f, 1f, 1f, 0.1f }).Constant("B2", new long[] { 2 }, new[] { 0f, 0f })
            .Node("Conv", new[] { "X", "W1" }, new[] { "C1" })
            .Node("Relu", new[] { "C1" }, new[] { "R1" })
            .Node("Conv", new[] { "R1", "W2", "B2" }, new[] { "Y" })
            .Save(directory.Path, "chain.onnx");
        var ml = new MLContext(seed: 1);
        var rows = PositiveRows(ml, 200);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
        double MeanError(BiasCorrection correction) => MeanErrors(ml, model, rows, rows, reference, correction)[0];
        double none = MeanError(BiasCorrection.None), fast = MeanError(BiasCorrection.Fast), full = MeanError(BiasCorrection.Full);
        Assert.IsTrue(fast > 0.5 * none, $"fast correction cannot see the upstream error: {fast:G3} vs {none:G3} uncorrected");
        Assert.IsTrue(full < 0.1 * none, $"full correction absorbs it: {full:G3} vs {none:G3} uncorrected");
    }

    // Full correction measures its waves on the first 128 calibration rows. Its float means must be over those rows too:
    // here the rows after them have another mean (+3 instead of +1), and a float mean over every row would move each
    // bias by the difference between the two groups of rows, not by the quantization's error.
    [TestMethod]
    public void FullCorrectionComparesMeansOverTheSameRows()
    {
        using var directory = new TempDirectory();
        var model = Conv(directory);
        var ml = new MLContext(seed: 1);
        var values = TinyData.Normal(400, 64).Select((r, i) => r.Select(v => Math.Abs(v) + (i < FullBiasCorrectionPass.Rows ? 1 : 3)).ToArray()).ToArray();
        var rows = TinyData.X(ml, values, 64);
        var first = TinyData.X(ml, values.Take(FullBiasCorrectionPass.Rows).ToArray(), 64);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(first).Transform(first), "Y");
        var none = MeanErrors(ml, model, rows, first, reference, BiasCorrection.None);
        var full = MeanErrors(ml, model, rows, first, reference, BiasCorrection.Full);
        var (lost, kept, lostCorrected, keptCorrected) = (none[1], none[0], full[1], full[0]);
        Assert.IsTrue(lostCorrected < 0.1 * lost, $"channel 1: corrected mean error {lostCorrected:G3}, uncorrected {lost:G3}");
        Assert.IsTrue(keptCorrected < 0.02 + 2 * kept, $"channel 0 (nothing to correct): corrected mean error {keptCorrected:G3}, uncorrected {kept:G3}");
    }

    [TestMethod]
    public void TheCorrectionIsRecordedInTheCalibrationTable()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = PositiveRows(ml, 50);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = Conv(directory), PerChannelWeights = false, BiasCorrection = BiasCorrection.Fast,
        }).Fit(rows);
        var bias = fitted.Calibration.Find("B", TensorRole.Bias)!;
        StringAssert.Contains(bias.Note, "bias corrected");
        Assert.IsTrue(bias.Threshold > 0, "the corrected bias is no longer zero");
    }
}
