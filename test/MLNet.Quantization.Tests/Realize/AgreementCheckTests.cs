using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

/// <summary>
/// A model built to saturate: bright inputs (uint8 values near 255) meet a MatMul whose first 8 columns hold large
/// weights of one sign, so that with full-range weights every pair of uint8 × int8 products there exceeds int16, while
/// the other 8 columns (small weights of both signs) mostly do not: saturation then changes the outputs' direction,
/// not only their size. The tests hold on both kinds of x86-64 CPU: they assert what each kind must show.
/// </summary>
[TestClass]
public sealed class AgreementCheckTests
{
    private const int Rows = 64, Size = 64;

    internal static string Saturating(TempDirectory directory) => new TinyModel()
        .Input("X", 1, Size).Output("Y", 1, 8)
        .Constant("W", new long[] { Size, 16 }, Enumerable.Range(0, Size * 16)
            .Select(i => i % 16 < 8 ? 1f + 0.1f * (float)Math.Sin(i) : 0.5f * (float)Math.Cos(3 * i)).ToArray())
        .Weight("W2", new long[] { 16, 8 }, scale: 0.5f)
        .Node("MatMul", new[] { "X", "W" }, new[] { "H" })
        .Node("Relu", new[] { "H" }, new[] { "R" })
        .Node("MatMul", new[] { "R", "W2" }, new[] { "Y" })
        .Save(directory.Path);

    internal static IDataView Bright(MLContext ml) =>
        TinyData.X(ml, TinyData.Normal(Rows, Size, mean: 0.9f, std: 0.05f).Select(r => r.Select(v => Math.Clamp(v, 0f, 1f)).ToArray()).ToArray(), Size);

    private static (QuantizingTransformer Model, double DeployedCosine, double SimulatedCosine) Fit(string model, WeightRange range)
    {
        var ml = new MLContext(seed: 1);
        var rows = Bright(ml);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
        QuantizingTransformer Quantize(QuantizationMode mode) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = model, Mode = mode, WeightRange = range,
        }).Fit(rows);
        var int8 = Quantize(QuantizationMode.Int8);
        using var simulated = Quantize(QuantizationMode.Simulated);
        Assert.IsNull(simulated.Agreement, "a simulated model is its own simulation");
        var int8Output = TinyData.Column(int8.Transform(rows), "Y");
        var simulatedOutput = TinyData.Column(simulated.Transform(rows), "Y");
        return (int8, reference.Zip(int8Output, TinyData.Cosine).Average(), simulatedOutput.Zip(int8Output, TinyData.Cosine).Average());
    }

    [TestMethod]
    public void PairBoundedWeightsAgreeWithTheSimulationOnAnyCpu()
    {
        using var directory = new TempDirectory();
        var (model, _, simulatedCosine) = Fit(Saturating(directory), WeightRange.PairBounded);
        using (model)
        {
            var agreement = model.Agreement!;
            Assert.AreEqual(Rows, agreement.Rows);
            Assert.IsTrue(agreement.LargestPairSum <= 128, $"largest pair sum {agreement.LargestPairSum}");
            Assert.IsTrue(agreement.Agrees && agreement.OutputCosine > 0.9999, agreement.ToString());
            Assert.IsTrue(simulatedCosine > 0.9999, $"int8 vs simulated outputs through ML.NET: {simulatedCosine} on {agreement.Cpu}");
            Assert.AreEqual("", agreement.Explanation);
            Assert.AreEqual(0, agreement.Layers.Count);
        }
    }

    [TestMethod]
    public void FullRangeWeightsDisagreeExactlyWhereTheCpuLacksVnni()
    {
        using var directory = new TempDirectory();
        var (model, deployedCosine, simulatedCosine) = Fit(Saturating(directory), WeightRange.Full);
        using (model)
        {
            var agreement = model.Agreement!;
            Assert.IsTrue(agreement.LargestPairSum > 200, "full-range weights of one sign: pairs near 254");
            Assert.AreEqual(CpuFeatures.PairsSaturate, agreement.CpuPairsSaturate);
            Assert.AreEqual(simulatedCosine, agreement.OutputCosine, 1e-4, "the check measures what ML.NET runs");
            if (CpuFeatures.PairsSaturate)
            {
                Assert.IsFalse(agreement.Agrees, $"the saturating model must be caught on {agreement.Cpu}: {agreement}");
                StringAssert.Contains(agreement.Explanation, "saturating int16");
                Assert.AreEqual("R", agreement.Layers.First().Tensor, "the first quantized tensor after the saturating MatMul");
            }
            else
            {
                Assert.IsTrue(agreement.Agrees, $"with VNNI (or off x86) nothing saturates: {agreement}");
            }
            // The report's output cosine is the deployed model's, fused as ML.NET runs it, whichever the CPU.
            Assert.AreEqual(deployedCosine, model.Report.OutputCosine, 1e-4, $"report vs ML.NET on {agreement.Cpu}");
            Assert.AreSame(agreement, model.Report.Agreement);
        }
    }

    [TestMethod]
    public void TheFallbackMeasuresTheDeployedModel()
    {
        using var directory = new TempDirectory();
        var file = Saturating(directory);
        var ml = new MLContext(seed: 1);
        var rows = Bright(ml);
        using var model = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = file, WeightRange = WeightRange.Full, MinimumOutputCosine = 0.9999,
        }).Fit(rows);
        var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(file).Fit(rows).Transform(rows), "Y");
        var output = TinyData.Column(model.Transform(rows), "Y");
        double heldBack = reference.Where((_, i) => i % 5 == 4).Zip(output.Where((_, i) => i % 5 == 4), TinyData.Cosine).Average();
        Assert.AreEqual(heldBack, model.Report.OutputCosine, 1e-4, "the fallback's figure is the deployed model's on the held-back rows");
        Assert.IsTrue(heldBack >= 0.9999 || model.Report.FloatNodes.Count > 0, $"target met ({heldBack}) or layers were kept float");
    }

    [TestMethod]
    public void ACosineAbove0999StillDisagreesWhereAnOutputIsMoreThanTwoPercentOff()
    {
        // A cosine of 0.9995 allows a relative error of about 0.03: the agreement asks for both.
        static RealizationAgreement Agreement(double cosine, params double[] errors) => new(cosine, cosine, Rows, "test CPU", false,
            WeightRange.PairBounded, 128, Array.Empty<LayerDisagreement>(),
            errors.Select((e, k) => new OutputComparison { Name = $"Y{k}", MeanCosine = cosine, WorstCosine = cosine, RelativeError = e }).ToList(), 1);

        Assert.IsTrue(Agreement(0.9995, 0.01, 0.019).Agrees);
        var off = Agreement(0.9995, 0.01, 0.03);
        Assert.IsFalse(off.Agrees, off.ToString());
        Assert.AreEqual(0.03, off.WorstRelativeError);
        Assert.IsFalse(Agreement(0.998, 0.0).Agrees, "the cosine rule still holds");
        Assert.IsTrue(Agreement(1.0).Agrees, "no output compared: nothing disagrees");
    }
}
