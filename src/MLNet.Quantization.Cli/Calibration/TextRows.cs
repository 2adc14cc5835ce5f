using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>A text file, one sample a line, tokenized with a BERT WordPiece vocabulary as calibration rows stream.</summary>
internal static class TextRows
{
    public static readonly string[] InputNames = { "input_ids", "attention_mask", "token_type_ids" };

    public static IDataView View(IReadOnlyList<ModelInput> inputs, string textFile, string? vocab, int sequenceLength, out int lines)
    {
        var missing = InputNames.Where(n => inputs.All(i => i.Name != n)).ToList();
        if (missing.Count > 0)
            throw new UsageException(
                $"Text calibration needs a model with inputs {string.Join(", ", InputNames)}; this one has {string.Join(", ", inputs.Select(i => i.Name))}.");
        var other = inputs.FirstOrDefault(i => !InputNames.Contains(i.Name));
        if (other is not null)
            throw new UsageException($"Text calibration feeds only {string.Join(", ", InputNames)}; the model also takes '{other.Name}'.");
        var wrongType = inputs.FirstOrDefault(i => i.ElementType != global::Onnx.TensorProto.Types.DataType.Int64);
        if (wrongType is not null)
            throw new UsageException($"Model input '{wrongType.Name}' takes {wrongType.ElementType}; token inputs must be int64.");
        if (vocab is null) throw new UsageException("Text calibration needs --vocab vocab.txt (a BERT WordPiece vocabulary).");
        if (!File.Exists(vocab)) throw new UsageException($"The vocabulary '{vocab}' does not exist.");
        if (sequenceLength < 2) throw new UsageException("--sequence-length must be at least 2.");
        BertTokenizer tokenizer;
        try
        {
            tokenizer = BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = true });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException)
        {
            throw new UsageException($"'{vocab}' is not a WordPiece vocabulary: {e.Message}");
        }
        lines = File.ReadLines(textFile).Count(l => l.Trim().Length > 0);
        if (lines == 0) throw new UsageException($"'{textFile}' holds no text lines.");
        var builder = new DataViewSchema.Builder();
        foreach (var name in InputNames)
            builder.AddColumn(name, new VectorDataViewType(NumberDataViewType.Int64, 1, sequenceLength));
        return new RowsDataView(builder.ToSchema(), () => File.ReadLines(textFile).Where(l => l.Trim().Length > 0).Select(line =>
        {
            var ids = tokenizer.EncodeToIds(line, sequenceLength, addSpecialTokens: true, out _, out _);
            var tokens = new long[sequenceLength];
            var mask = new long[sequenceLength];
            for (int i = 0; i < ids.Count; i++) { tokens[i] = ids[i]; mask[i] = 1; }
            return new Array[] { tokens, mask, new long[sequenceLength] };
        }));
    }
}
