using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Tests;

/// <summary>ResNet18 calibrated on real images: accuracy against the float model, and the int8 graph ONNX Runtime builds.</summary>
[TestClass]
public sealed class ResNet18Tests
{
    private static QuantizingTransformer? _int8;
    private static QuantizingTransformer? _simulated;
    private static IDataView? _heldOut;
    private static IDataView? _calibration;
    private static ITransformer? _float;

    [ClassInitialize]
    public static void Calibrate(TestContext _)
    {
        var mlContext = new MLContext(seed: 1);
        var preprocess = ResNet18Fixture.Preprocess(mlContext);
        var calibration = ResNet18Fixture.Images(mlContext, "train-subset", 0, 64);
        var preprocessor = preprocess.Fit(calibration);
        var rows = preprocessor.Transform(calibration);
        _calibration = rows;
        _heldOut = preprocessor.Transform(ResNet18Fixture.Images(mlContext, "test-subset", 0, 48));
        // One recipe for both (the tuner, run once per mode, may choose differently for each), so that the simulated
        // model is the int8 model's arithmetic.
        _int8 = mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = ResNet18Model.ResNet18, Tuning = null }).Fit(rows);
        _simulated = mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = ResNet18Model.ResNet18, Mode = QuantizationMode.Simulated, Tuning = null,
        }).Fit(rows);
        _float = mlContext.Transforms.ApplyOnnxModel(ResNet18Model.ResNet18).Fit(rows);
    }

    [ClassCleanup]
    public static void Release()
    {
        _int8?.Dispose();
        _simulated?.Dispose();
    }

    [TestMethod]
    public void Int8FeaturesMatchFloatFeaturesOnHeldOutImages()
    {
        var reference = ResNet18Fixture.Features(_float!, _heldOut!);
        var int8 = ResNet18Fixture.Features(_int8!, _heldOut!);
        var simulated = ResNet18Fixture.Features(_simulated!, _heldOut!);
        double int8Cosine = reference.Zip(int8, TinyData.Cosine).Average();
        double agreement = simulated.Zip(int8, TinyData.Cosine).Average();
        Assert.IsTrue(int8Cosine >= 0.99, $"mean int8 vs fp32 cosine {int8Cosine}");
        Assert.IsTrue(agreement >= 0.999, $"mean simulated vs int8 cosine {agreement}");
    }

    [TestMethod]
    public void PreparationFoldsEveryBatchNormalizationAndKeepsTheFloatResult()
    {
        var source = OnnxGraph.Load(ResNet18Model.ResNet18);
        var prepared = GraphPreparation.Prepare(source);
        Assert.AreEqual(22, source.Graph.Node.Count(n => n.OpType == "BatchNormalization"));
        Assert.AreEqual(0, prepared.Graph.Node.Count(n => n.OpType == "BatchNormalization"));
        Assert.AreEqual(13L, prepared.Opset);

        var input = FashionMnist.Upscale(FashionMnist.Read(ResNet18Fixture.Data, "test-subset", 0, 1).Images[0]).Select(v => v - 120f).ToArray();
        float[] Run(byte[] model)
        {
            using var session = new InferenceSession(model);
            using var value = OrtValue.CreateTensorValueFromMemory(input, new long[] { 1, 3, 224, 224 });
            // Kept alive for the native run: a RunOptions that only the call holds can be finalized during it (a segfault).
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, new[] { ResNet18Model.Input }, new[] { value }, new[] { ResNet18Model.Output });
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        var before = Run(source.ToBytes());
        var after = Run(prepared.ToBytes());
        float max = before.Max(Math.Abs);
        Assert.IsTrue(before.Zip(after, (a, b) => Math.Abs(a - b)).Max() < 1e-4f * max + 1e-5f);
    }

    [TestMethod]
    public void OnnxRuntimeFusesEveryConvAndAddIntoInt8Kernels()
    {
        using var directory = new TempDirectory();
        _int8!.ExportOnnx(directory.File("int8.onnx"));
        var exported = OnnxGraph.Load(directory.File("int8.onnx"));
        Assert.AreEqual(22, exported.Graph.Node.Count(n => n.OpType == "Conv"));
        Assert.AreEqual(0, exported.Graph.Node.Count(n => n.OpType == "Relu"), "every Relu folds into a uint8 QuantizeLinear");
        Assert.AreEqual(0, exported.Graph.Initializer.Count(i => i.DataType == Tensors.Float && i.Dims.Count > 1), "no float weights remain");
        WeightPairs.AssertCannotSaturate(exported, "ResNet18");
        Assert.IsTrue(WeightPairs.Largest(exported) >= 120, "the bound is used, not undercut: some channel reaches it");

        using (var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, OptimizedModelFilePath = directory.File("optimized.onnx") })
        using (new InferenceSession(directory.File("int8.onnx"), options)) { }
        var optimized = OnnxGraph.Load(directory.File("optimized.onnx"));
        var ops = optimized.Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        string summary = string.Join(", ", ops.Select(kv => $"{kv.Key}×{kv.Value}"));
        Assert.AreEqual(22, ops.GetValueOrDefault("QLinearConv"), summary);
        Assert.AreEqual(9, ops.GetValueOrDefault("QLinearAdd"), summary);
        Assert.AreEqual(0, ops.GetValueOrDefault("Conv") + ops.GetValueOrDefault("Add"), summary);
        Assert.AreEqual(1, ops.GetValueOrDefault("QuantizeLinear"), $"only the model input is quantized in float: {summary}");
        Assert.AreEqual(1, ops.GetValueOrDefault("DequantizeLinear"), $"only the model output is dequantized: {summary}");
    }

    [TestMethod]
    public void ActivationThresholdsAreIdenticalForShuffledRows()
    {
        // KL, whose search reads the histograms (max ranges could not depend on the order at all).
        var mlContext = new MLContext(seed: 3);
        var shuffled = mlContext.Data.ShuffleRows(_calibration!, seed: 5, shufflePoolSize: 1000);
        QuantizingTransformer Kl(IDataView rows) => mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = ResNet18Model.ResNet18, ActivationCalibration = CalibrationMethod.KlDivergence, Mode = QuantizationMode.Simulated,
            Tuning = null, // the tuner holds back every fifth row, which shuffling changes
        }).Fit(rows);
        using var once = Kl(_calibration!);
        using var again = Kl(shuffled);
        CollectionAssert.AreEqual(once.Calibration.Select(c => c.Threshold).ToArray(), again.Calibration.Select(c => c.Threshold).ToArray());
        CollectionAssert.AreEqual(once.Calibration.Select(c => c.Scale).ToArray(), again.Calibration.Select(c => c.Scale).ToArray());
    }

    [TestMethod]
    public void ExportedModelIsUnderAThirdOfTheFloatModel()
    {
        Assert.IsTrue(_int8!.ModelSize <= 0.30 * new FileInfo(ResNet18Model.ResNet18).Length, $"{_int8.ModelSize} bytes");
    }
}
