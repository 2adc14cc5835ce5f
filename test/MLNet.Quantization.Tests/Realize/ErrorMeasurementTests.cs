using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Realize;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class ErrorMeasurementTests
{
    [TestMethod]
    public void TheFallbacksCosineIsTheSameFromKeptOutputsAndPastTheirBudget()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16).Output("Y", 1, 8)
            .Weight("W", new long[] { 16, 8 }).Node("MatMul", new[] { "X", "W" }, new[] { "Y" }).Save(directory.Path);
        var context = Contexts.For(model, TinyData.X(new MLContext(seed: 1), TinyData.Normal(40, 16), 16))
            .Run(new AnnotatePass(), new ActivationStatisticsPass(), new CalibratePass(), new RealizePass());
        var kept = new FloatOutputs();
        var none = new FloatOutputs(budget: 0);
        var measured = ErrorMeasurement.Measure(context.Model, context.Realized, context.Dequantized, context.Realized, context.Data, context.Settings, kept);
        ErrorMeasurement.Measure(context.Model, context.Realized, context.Dequantized, context.Realized, context.Data, context.Settings, none);
        Assert.IsTrue(kept.Complete);
        Assert.IsFalse(none.Complete, "a budget of 0 bytes keeps nothing");
        Assert.IsTrue(measured.OutputCosine is > 0.9 and < 1, $"{measured.OutputCosine}");
        Assert.AreEqual(measured.OutputCosine, ErrorMeasurement.DeployedCosine(context.Model, context.Realized, kept, context.Data, context.Settings), 1e-9);
        Assert.AreEqual(measured.OutputCosine, ErrorMeasurement.DeployedCosine(context.Model, context.Realized, none, context.Data, context.Settings), 1e-9,
            "past the budget the float model runs again, with the same result");
    }
}
