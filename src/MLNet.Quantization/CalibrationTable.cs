using System.Collections;
using System.Text.Json;
using System.Text.Json.Serialization;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization;

/// <summary>
/// The per-tensor quantization parameters of a fitted <see cref="QuantizingTransformer"/>. The exported ONNX model
/// carries it in its <c>metadata_props</c>, so <see cref="FromOnnx"/> can read it back from any exported or saved model.
/// </summary>
public sealed class CalibrationTable : IReadOnlyList<TensorCalibration>
{
    /// <summary>The <c>metadata_props</c> key under which the table is stored in the ONNX model.</summary>
    public const string MetadataKey = "mlnet.quantization.calibration";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    private readonly IReadOnlyList<TensorCalibration> _entries;

    internal CalibrationTable(IEnumerable<TensorCalibration> entries) => _entries = entries.ToList();

    /// <inheritdoc/>
    public int Count => _entries.Count;

    /// <inheritdoc/>
    public TensorCalibration this[int index] => _entries[index];

    /// <summary>The entry of <paramref name="tensor"/> in <paramref name="role"/>, or null.</summary>
    public TensorCalibration? Find(string tensor, TensorRole role) =>
        _entries.FirstOrDefault(e => e.Tensor == tensor && e.Role == role);

    /// <inheritdoc/>
    public IEnumerator<TensorCalibration> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Reads the table from the metadata of an ONNX model exported by <see cref="QuantizingTransformer.ExportOnnx"/>.</summary>
    /// <param name="path">The ONNX model file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or it carries no calibration table.</exception>
    public static CalibrationTable FromOnnx(string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new ArgumentException("The path must not be empty.", nameof(path));
        var json = OnnxGraph.Load(path).GetMetadata(MetadataKey)
            ?? throw new InvalidDataException($"'{path}' carries no calibration table (no metadata_props entry '{MetadataKey}').");
        return FromJson(json, path);
    }

    internal string ToJson() => JsonSerializer.Serialize(_entries, Json);

    internal static CalibrationTable FromJson(string json, string origin)
    {
        try
        {
            var entries = JsonSerializer.Deserialize<List<TensorCalibration>>(json, Json)
                ?? throw new InvalidDataException($"The calibration table in '{origin}' is empty.");
            return new CalibrationTable(entries);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The calibration table in '{origin}' is corrupt: {e.Message}", e);
        }
    }
}
