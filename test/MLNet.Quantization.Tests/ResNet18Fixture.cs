using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Tests;

/// <summary>ResNet18 from its NuGet package, fed Fashion-MNIST images from the shipped subset.</summary>
internal static class ResNet18Fixture
{
    public static string Data => FashionMnist.DataDirectory(AppContext.BaseDirectory);

    public static IDataView Images(MLContext mlContext, string split, int skip, int count)
    {
        var (images, labels) = FashionMnist.Read(Data, split, skip, count);
        return FashionMnist.ToDataView(mlContext, images, labels);
    }

    /// <summary>RGB 0..255 → the BGR-minus-mean tensor <c>Input247</c>.</summary>
    public static IEstimator<ITransformer> Preprocess(MLContext mlContext) =>
        mlContext.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(mlContext.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput"));

    public static float[][] Features(ITransformer model, IDataView rows) =>
        model.Transform(rows).GetColumn<float[]>(ResNet18Model.Output).ToArray();
}

/// <summary>The output of the ResNet18 pipelines, for PredictionEngine.</summary>
public sealed class ResNetFeatures
{
    [ColumnName(ResNet18Model.Output)]
    public float[] Features { get; set; } = Array.Empty<float>();
}
