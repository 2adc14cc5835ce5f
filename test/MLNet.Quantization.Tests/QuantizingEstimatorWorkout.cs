using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Tests;

/// <summary>The whole estimator contract on the real ResNet18, inside an ML.NET pipeline.</summary>
[TestClass]
public sealed class QuantizingEstimatorWorkout
{
    [TestMethod]
    public void Workout()
    {
        var mlContext = new MLContext(seed: 1);
        var images = ResNet18Fixture.Images(mlContext, "train-subset", 0, 8);
        var held = ResNet18Fixture.Images(mlContext, "test-subset", 0, 4);
        using var directory = new TempDirectory();
        // The recipe as set, so that int8 and simulated share one calibration (tuning's contract: Tune/TunerTests.TuningWorkout).
        var options = new QuantizingEstimator.Options { ModelFile = ResNet18Model.ResNet18, MaximumCalibrationRows = 6, Tuning = null };
        var pipeline = ResNet18Fixture.Preprocess(mlContext).Append(mlContext.Transforms.QuantizeCalibrated(options));

        // Schema before Fit: the same output column and type as the float model.
        var floatPipeline = ResNet18Fixture.Preprocess(mlContext).Append(mlContext.Transforms.ApplyOnnxModel(ResNet18Model.ResNet18));
        var expected = floatPipeline.GetOutputSchema(ShapeOf(images.Schema));
        var shape = pipeline.GetOutputSchema(ShapeOf(images.Schema));
        var column = shape.Single(c => c.Name == ResNet18Model.Output);
        var expectedColumn = expected.Single(c => c.Name == ResNet18Model.Output);
        Assert.AreEqual(expectedColumn.Kind, column.Kind);
        Assert.AreEqual(expectedColumn.ItemType, column.ItemType);

        // Fit and Transform, int8 then simulated; the options object can change after Fit without effect.
        var int8 = pipeline.Fit(images);
        options.Mode = QuantizationMode.Simulated;
        var simulated = pipeline.Fit(images);
        var quantizer = int8.LastTransformer;
        Assert.AreEqual(QuantizationMode.Int8, quantizer.Mode);
        Assert.AreEqual(QuantizationMode.Simulated, simulated.LastTransformer.Mode);
        CollectionAssert.AreEqual(quantizer.Calibration.Select(c => c.Scale).ToArray(),
            simulated.LastTransformer.Calibration.Select(c => c.Scale).ToArray(), "both modes calibrate identically");
        var int8Features = ResNet18Fixture.Features(int8, held);
        var simulatedFeatures = ResNet18Fixture.Features(simulated, held);
        Assert.AreEqual(4, int8Features.Length);
        Assert.IsTrue(int8Features.All(f => f.Length == 512 && f.All(float.IsFinite)));
        Assert.IsTrue(int8Features.Zip(simulatedFeatures, TinyData.Cosine).Min() > 0.999);

        // The agreement check at Fit: measured on this CPU, weights that cannot saturate, in agreement.
        var agreement = quantizer.Agreement!;
        Assert.IsTrue(agreement.Rows > 0 && agreement.LargestPairSum <= 128, agreement.ToString());
        Assert.IsTrue(agreement.Agrees, $"{agreement}: {agreement.Explanation}");
        Assert.IsNull(simulated.LastTransformer.Agreement);
        Assert.IsTrue(quantizer.Calibration.Where(c => c.Role == TensorRole.Weight).All(c => c.WeightRange == WeightRange.PairBounded && c.LargestPairSum <= 128));

        // Export: the calibration table travels in the ONNX metadata.
        quantizer.ExportOnnx(directory.File("int8.onnx"));
        var table = CalibrationTable.FromOnnx(directory.File("int8.onnx"));
        Assert.AreEqual(quantizer.Calibration.Count, table.Count);
        Assert.AreEqual(quantizer.Calibration[0].Threshold, table[0].Threshold);

        // Save and Load in a fresh MLContext: identical outputs.
        var zip = directory.File("model.zip");
        mlContext.Model.Save(int8, images.Schema, zip);
        var fresh = new MLContext(seed: 2);
        var loaded = fresh.Model.Load(zip, out var loadedSchema);
        Assert.IsNotNull(loadedSchema.GetColumnOrNull("OriginalInput"));
        var reloaded = ResNet18Fixture.Features(loaded, held);
        for (int i = 0; i < reloaded.Length; i++)
            CollectionAssert.AreEqual(int8Features[i], reloaded[i]);

        // PredictionEngine on the loaded model.
        var (rawImages, rawLabels) = FashionMnist.Read(ResNet18Fixture.Data, "test-subset", 0, 1);
        var engine = fresh.Model.CreatePredictionEngine<FashionImage, ResNetFeatures>(loaded);
        var prediction = engine.Predict(new FashionImage { OriginalInput = FashionMnist.Upscale(rawImages[0]), Label = rawLabels[0] });
        CollectionAssert.AreEqual(int8Features[0], prediction.Features);

        // Bad input: each gets a clear exception that names the culprit.
        var preprocessed = ResNet18Fixture.Preprocess(mlContext).Fit(images).Transform(images);
        QuantizingEstimator Quantize(string modelFile) => mlContext.Transforms.QuantizeCalibrated(modelFile);

        var missing = Assert.ThrowsExactly<FileNotFoundException>(() => Quantize(directory.File("nope.onnx")).Fit(preprocessed));
        StringAssert.Contains(missing.Message, "nope.onnx");
        File.WriteAllText(directory.File("corrupt.onnx"), "this is not a protobuf");
        var corrupt = Assert.ThrowsExactly<InvalidDataException>(() => Quantize(directory.File("corrupt.onnx")).Fit(preprocessed));
        StringAssert.Contains(corrupt.Message, "corrupt.onnx");
        Assert.ThrowsExactly<InvalidDataException>(() => Quantize(directory.File("corrupt.onnx")).GetOutputSchema(ShapeOf(preprocessed.Schema)));

        var noColumn = Assert.ThrowsExactly<ArgumentException>(() => Quantize(ResNet18Model.ResNet18).Fit(images));
        StringAssert.Contains(noColumn.Message, "'Input247'");

        var wrongSize = mlContext.Data.LoadFromEnumerable(new[] { new SmallInput() });
        var size = Assert.ThrowsExactly<ArgumentException>(() => Quantize(ResNet18Model.ResNet18).Fit(wrongSize));
        StringAssert.Contains(size.Message, "'Input247'");
        StringAssert.Contains(size.Message, "10 values");

        var wrongType = mlContext.Data.LoadFromEnumerable(new[] { new DoubleInput() });
        var type = Assert.ThrowsExactly<ArgumentException>(() => Quantize(ResNet18Model.ResNet18).Fit(wrongType));
        StringAssert.Contains(type.Message, "'Input247'");
        StringAssert.Contains(type.Message, "Double");

        var preprocessor = ResNet18Fixture.Preprocess(mlContext).Fit(images);
        var noRows = preprocessor.Transform(mlContext.Data.LoadFromEnumerable(Array.Empty<FashionImage>()));
        var empty = Assert.ThrowsExactly<InvalidOperationException>(() => Quantize(ResNet18Model.ResNet18).Fit(noRows));
        StringAssert.Contains(empty.Message, "no rows");

        var nanImage = FashionMnist.Upscale(rawImages[0]);
        nanImage[1234] = float.NaN;
        var nanRows = preprocessor.Transform(mlContext.Data.LoadFromEnumerable(new[] { new FashionImage { OriginalInput = nanImage } }));
        var nan = Assert.ThrowsExactly<InvalidDataException>(() => Quantize(ResNet18Model.ResNet18).Fit(nanRows));
        StringAssert.Contains(nan.Message, "'Input247'");
        StringAssert.Contains(nan.Message, "NaN");

        var unknownOutput = Assert.ThrowsExactly<ArgumentException>(() =>
            mlContext.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18, new[] { "Pooling395" }).Fit(preprocessed));
        StringAssert.Contains(unknownOutput.Message, "'Pooling395'");
        StringAssert.Contains(unknownOutput.Message, ResNet18Model.Output);

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => mlContext.Transforms.QuantizeCalibrated(
            new QuantizingEstimator.Options { ModelFile = ResNet18Model.ResNet18, MaximumCalibrationRows = 0 }).Fit(preprocessed));

        // Exports that fail leave nothing behind.
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => quantizer.ExportOnnx(directory.File("missing/int8.onnx")));
        Directory.CreateDirectory(directory.File("taken.onnx"));
        Assert.ThrowsExactly<IOException>(() => quantizer.ExportOnnx(directory.File("taken.onnx")), "a folder stands at that path");
        CollectionAssert.AreEquivalent(new[] { "corrupt.onnx", "int8.onnx", "model.zip", "taken.onnx" },
            Directory.EnumerateFileSystemEntries(directory.Path).Select(Path.GetFileName).ToArray());

        quantizer.Dispose();
        simulated.LastTransformer.Dispose();
    }

    // ML.NET keeps SchemaShape.Create internal; a test may reach it, the library never does.
    internal static SchemaShape ShapeOf(DataViewSchema schema) => (SchemaShape)typeof(SchemaShape)
        .GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static, new[] { typeof(DataViewSchema) })!
        .Invoke(null, new object[] { schema })!;

    private sealed class SmallInput
    {
        [VectorType(10)]
        [ColumnName(ResNet18Model.Input)]
        public float[] Values { get; set; } = new float[10];
    }

    private sealed class DoubleInput
    {
        [VectorType(3 * 224 * 224)]
        [ColumnName(ResNet18Model.Input)]
        public double[] Values { get; set; } = new double[3 * 224 * 224];
    }
}
