using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

[TestClass]
public sealed class QuantizingEstimatorOptionsTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static ArgumentException Refused(Action<QuantizingEstimator.Options> configure)
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 4).Output("Y", 1, 4).Node("Relu", new[] { "X" }, new[] { "Y" }).Save(directory.Path);
        var options = new QuantizingEstimator.Options { ModelFile = model };
        configure(options);
        var rows = TinyData.X(Ml, TinyData.Normal(2, 4), 4);
        return Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Ml.Transforms.QuantizeCalibrated(options).Fit(rows));
    }

    [TestMethod]
    public void EachOutOfRangeOptionIsNamed()
    {
        StringAssert.Contains(Refused(o => o.Bins = 8000).ParamName, "Bins");
        StringAssert.Contains(Refused(o => o.Bins = 301).ParamName, "Bins");
        StringAssert.Contains(Refused(o => o.QuantizedBins = 2).ParamName, "QuantizedBins");
        StringAssert.Contains(Refused(o => o.Percentile = 0).ParamName, "Percentile");
        StringAssert.Contains(Refused(o => o.MaximumCalibrationRows = -1).ParamName, "MaximumCalibrationRows");
        StringAssert.Contains(Refused(o => o.IntraOpNumThreads = 0).ParamName, "IntraOpNumThreads");
        StringAssert.Contains(Refused(o => o.MaximumOutputError = 0).ParamName, "MaximumOutputError");
        StringAssert.Contains(Refused(o => o.MaximumOutputError = double.NaN).ParamName, "MaximumOutputError");
        StringAssert.Contains(Refused(o => o.MinimumSpeedup = -0.5).ParamName, "MinimumSpeedup");
        StringAssert.Contains(Refused(o => o.MinimumSpeedup = double.PositiveInfinity).ParamName, "MinimumSpeedup");
        StringAssert.Contains(Refused(o => o.MinimumSpeedup = double.NaN).ParamName, "MinimumSpeedup");
        StringAssert.Contains(Refused(o => o.Mode = (QuantizationMode)7).ParamName, "Mode");
        StringAssert.Contains(Refused(o => o.ActivationCalibration = (CalibrationMethod)9).ParamName, "ActivationCalibration");
        StringAssert.Contains(Refused(o => o.WeightRange = (WeightRange)5).ParamName, "WeightRange");
    }

    [TestMethod]
    public void DefaultsComeFromOnePlace()
    {
        var options = new QuantizingEstimator.Options();
        Assert.AreEqual(QuantizationMode.Int8, options.Mode);
        Assert.AreEqual(CalibrationMethod.Max, options.ActivationCalibration);
        Assert.IsTrue(options.AsymmetricActivations);
        Assert.AreEqual(WeightScaleMethod.Max, options.WeightScale);
        Assert.IsTrue(options.PerChannelWeights);
        Assert.AreEqual(WeightRange.PairBounded, options.WeightRange, "safe on every x86-64 CPU by default");
        Assert.AreEqual(8001, options.Bins);
        Assert.AreEqual(255, options.QuantizedBins);
        Assert.AreEqual(99.999, options.Percentile);
        Assert.IsNull(options.MaximumCalibrationRows);
    }

    [TestMethod]
    public void NullArgumentsAreNamed()
    {
        Assert.AreEqual("options", Assert.ThrowsExactly<ArgumentNullException>(() => Ml.Transforms.QuantizeCalibrated((QuantizingEstimator.Options)null!)).ParamName);
        Assert.AreEqual("input", Assert.ThrowsExactly<ArgumentNullException>(() => Ml.Transforms.QuantizeCalibrated("m.onnx").Fit(null!)).ParamName);
        Assert.AreEqual("ModelFile", Assert.ThrowsExactly<ArgumentException>(() => Ml.Transforms.QuantizeCalibrated("").Fit(TinyData.X(Ml, TinyData.Normal(1, 4), 4))).ParamName);
    }
}
