using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Quantization.Samples;

/// <summary>
/// Quantizes ResNet18 to int8, calibrated on 200 Fashion-MNIST images, and compares it with the float model:
/// accuracy of a linear probe on the features, feature cosine, speed and size.
/// </summary>
public static class QuantizeResNet18
{
    /// <summary>Runs the sample and prints its table.</summary>
    /// <param name="method">How activation thresholds are calibrated; null (the default) lets <c>Fit</c> tune it with the
    /// rest of the recipe. A method given pins that knob.</param>
    public static void Example(CalibrationMethod? method = null)
    {
        var mlContext = new MLContext(seed: 1);
        var data = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var (trainImages, trainLabels) = FashionMnist.Read(data, "train-subset", count: 800);
        var (calibrationImages, calibrationLabels) = FashionMnist.Read(data, "train-subset", skip: 800, count: 200);
        var (testImages, testLabels) = FashionMnist.Read(data, "test-subset");

        // RGB 0..255 → ResNet's BGR-minus-mean input, with the preprocessing model that ships beside ResNet18.
        var preprocess = mlContext.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(mlContext.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput"))
            .Fit(FashionMnist.ToDataView(mlContext, calibrationImages, calibrationLabels));
        IDataView Prepare(byte[][] images, byte[] labels) => preprocess.Transform(FashionMnist.ToDataView(mlContext, images, labels));

        Console.WriteLine($"Calibrating ResNet18 on 200 images ({(method is { } m ? $"{m}, " : "the recipe tuned, ")}per-channel weights)...");
        var clock = Stopwatch.StartNew();
        var estimator = method is { } chosen
            ? mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = ResNet18Model.ResNet18, ActivationCalibration = chosen })
            : mlContext.Transforms.QuantizeCalibrated(ResNet18Model.ResNet18);
        using var int8 = estimator.Fit(Prepare(calibrationImages, calibrationLabels));
        Console.WriteLine($"  calibrated {int8.Calibration.Count} tensors in {clock.Elapsed.TotalSeconds:F1} s");
        // What Fit chose, and what it measured of the model it returns on this CPU.
        if (int8.Tuning is { } tuning) Console.WriteLine($"  tuning: {tuning.Summary}");
        if (int8.Deployment is { } deployment) Console.WriteLine($"  deployment check: {deployment.Summary}");
        var fp32 = mlContext.Transforms.ApplyOnnxModel(ResNet18Model.ResNet18).Fit(Prepare(calibrationImages, calibrationLabels));

        (float[][] Features, double Seconds) Features(ITransformer model, byte[][] images, byte[] labels)
        {
            var input = Prepare(images, labels);
            var watch = Stopwatch.StartNew();
            var features = model.Transform(input).GetColumn<float[]>(ResNet18Model.Output).ToArray();
            return (features, watch.Elapsed.TotalSeconds);
        }

        var trainFp32 = Features(fp32, trainImages, trainLabels);
        var testFp32 = Features(fp32, testImages, testLabels);
        var testInt8 = Features(int8, testImages, testLabels);

        // A linear probe trained on float features, then scored on float and on int8 features of the same test images.
        var probe = mlContext.Transforms.Conversion.MapValueToKey("Label")
            .Append(mlContext.Transforms.NormalizeMinMax("Features"))
            .Append(mlContext.MulticlassClassification.Trainers.LbfgsMaximumEntropy())
            .Fit(mlContext.Data.LoadFromEnumerable(FeatureRows(trainFp32.Features, trainLabels)));
        double Accuracy(float[][] features) => mlContext.MulticlassClassification
            .Evaluate(probe.Transform(mlContext.Data.LoadFromEnumerable(FeatureRows(features, testLabels)))).MicroAccuracy;

        var cosines = testFp32.Features.Zip(testInt8.Features, Cosine).ToArray();
        var floatSize = new FileInfo(ResNet18Model.ResNet18).Length;
        Console.WriteLine();
        Console.WriteLine($"| model | probe accuracy (500 test images) | ms/image | size |");
        Console.WriteLine($"|---|---|---|---|");
        Console.WriteLine($"| fp32 | {Accuracy(testFp32.Features):F3} | {testFp32.Seconds * 1000 / testImages.Length:F1} | {floatSize / 1e6:F1} MB |");
        Console.WriteLine($"| int8 | {Accuracy(testInt8.Features):F3} | {testInt8.Seconds * 1000 / testImages.Length:F1} | {int8.ModelSize / 1e6:F1} MB |");
        Console.WriteLine();
        Console.WriteLine($"int8 vs fp32 feature cosine: mean {cosines.Average():F4}, min {cosines.Min():F4}");
        Console.WriteLine($"speed-up {testFp32.Seconds / testInt8.Seconds:F2}x (ML.NET pipeline, preprocessing included, default threads)");
        Console.WriteLine($"size: int8 model is {100.0 * int8.ModelSize / floatSize:F1}% of fp32");
    }

    private static IEnumerable<FeatureRow> FeatureRows(float[][] features, byte[] labels) =>
        features.Select((f, i) => new FeatureRow { Features = f, Label = labels[i] });

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }

    /// <summary>A row of ResNet18 features with its label.</summary>
    public sealed class FeatureRow
    {
        [VectorType(512)]
        public float[] Features { get; set; } = Array.Empty<float>();

        public uint Label { get; set; }
    }
}
