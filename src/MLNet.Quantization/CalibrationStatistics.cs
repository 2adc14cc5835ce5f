using System.Security.Cryptography;
using System.Text;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization;

/// <summary>
/// The per-tensor ranges and histograms that calibration gathered, reusable without the data: save them, load them, merge
/// the statistics of several shards, and fit again with another method through <see cref="QuantizingEstimator.Options.Statistics"/>.
/// </summary>
/// <remarks>
/// <para>Statistics carry a fingerprint of the model file (SHA-256), the model's inputs with their shapes and the number of
/// histogram bins; using them with a model or settings that differ fails with a message that says what differs.</para>
/// <para><b>Sharded calibration (map-reduce).</b> Histograms merge exactly only over the same range, so a data-parallel
/// calibration takes two rounds, each a map over the shards and a <see cref="Merge"/>:</para>
/// <list type="number">
/// <item>Fit each shard and merge: the merged ranges are exactly those of all rows (each shard's histograms cover only
/// its own range, so the merge keeps ranges only).</item>
/// <item>Fit each shard with <see cref="QuantizingEstimator.Options.RangesFrom"/> set to the merged statistics (one pass
/// that fills histograms over the merged ranges) and merge: the counts add up to exactly the histograms of one pass
/// over all rows, whatever the sharding or order.</item>
/// </list>
/// <para>Then fit with <see cref="QuantizingEstimator.Options.Statistics"/> set to the result, with any method: no row is read.</para>
/// </remarks>
public sealed class CalibrationStatistics
{
    private const string Magic = "MLQSTATS";
    private const int FormatVersion = 1;

    internal CalibrationStatistics(string fingerprint, IReadOnlyDictionary<string, string> inputs, int bins, long rows,
        IReadOnlyList<TensorStatistics> tensors)
    {
        ModelFingerprint = fingerprint;
        Inputs = inputs;
        Bins = bins;
        Rows = rows;
        Tensors = tensors;
    }

    /// <summary>SHA-256 of the model file the statistics were gathered on.</summary>
    public string ModelFingerprint { get; }

    /// <summary>The model's inputs and the shapes the rows were fed with.</summary>
    public IReadOnlyDictionary<string, string> Inputs { get; }

    /// <summary>Histogram bins.</summary>
    public int Bins { get; }

    /// <summary>Calibration rows read.</summary>
    public long Rows { get; }

    /// <summary>One entry per calibrated activation.</summary>
    public IReadOnlyList<TensorStatistics> Tensors { get; }

    /// <summary>Whether every tensor has a histogram, which the KL and percentile methods need.</summary>
    public bool HasHistograms => Tensors.All(t => t.Histogram is not null);

    /// <summary>
    /// Merges the statistics of shards of the rows. Ranges always merge exactly. Histograms merge when every shard counted
    /// over the same range (see the map-reduce protocol in the remarks); otherwise the result keeps ranges only.
    /// </summary>
    /// <exception cref="ArgumentException">The shards come from different models, inputs, bins or tensors.</exception>
    public static CalibrationStatistics Merge(params CalibrationStatistics[] shards)
    {
        if (shards is null || shards.Length == 0) throw new ArgumentException("Give at least one shard.", nameof(shards));
        var first = shards[0];
        foreach (var shard in shards.Skip(1))
        {
            var difference = first.Difference(shard.ModelFingerprint, shard.Inputs, shard.Bins)
                ?? (first.Tensors.Select(t => t.Tensor).SequenceEqual(shard.Tensors.Select(t => t.Tensor)) ? null : "they calibrate different tensors");
            if (difference is not null)
                throw new ArgumentException($"These statistics cannot be merged: {difference}.", nameof(shards));
        }
        var merged = new List<TensorStatistics>();
        for (int k = 0; k < first.Tensors.Count; k++)
        {
            var parts = shards.Select(s => s.Tensors[k]).ToArray();
            var tensor = parts[0].Clone();
            tensor.Restore(parts.Min(p => p.Min), parts.Max(p => p.Max), parts.Sum(p => p.Count));
            bool sameRange = parts.All(p => p.Histogram is not null && p.Histogram.Min == parts[0].Histogram!.Min && p.Histogram.Max == parts[0].Histogram!.Max);
            if (sameRange)
                foreach (var part in parts.Skip(1)) tensor.Histogram!.Merge(part.Histogram!);
            else
                tensor.Histogram = null;
            merged.Add(tensor);
        }
        return new CalibrationStatistics(first.ModelFingerprint, first.Inputs, first.Bins, shards.Sum(s => s.Rows), merged);
    }

    /// <summary>Writes the statistics to <paramref name="path"/>; on failure no partial file is left.</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(FormatVersion);
            writer.Write(ModelFingerprint);
            writer.Write(Bins);
            writer.Write(Rows);
            writer.Write(Inputs.Count);
            foreach (var (name, shape) in Inputs) { writer.Write(name); writer.Write(shape); }
            writer.Write(Tensors.Count);
            foreach (var t in Tensors)
            {
                writer.Write(t.Tensor); writer.Write((int)t.Role); writer.Write(t.Node); writer.Write(t.OpType);
                writer.Write(t.Min); writer.Write(t.Max); writer.Write(t.Count);
                writer.Write(t.Histogram is not null);
                if (t.Histogram is not { } h) continue;
                writer.Write(h.Min); writer.Write(h.Max); writer.Write(h.ObservedMin); writer.Write(h.ObservedMax);
                writer.Write(h.Bins);
                foreach (var c in h.Counts) writer.Write(c);
            }
        });
    }

    /// <summary>Reads statistics written by <see cref="Save"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a statistics file of this format.</exception>
    public static CalibrationStatistics Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The statistics file '{path}' does not exist.", path);
        try
        {
            using var reader = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
            if (reader.ReadString() != Magic || reader.ReadInt32() != FormatVersion)
                throw new InvalidDataException($"'{path}' is not a calibration statistics file (format {FormatVersion}).");
            var fingerprint = reader.ReadString();
            int bins = reader.ReadInt32();
            long rows = reader.ReadInt64();
            var inputs = new Dictionary<string, string>();
            for (int i = reader.ReadInt32(); i > 0; i--) inputs[reader.ReadString()] = reader.ReadString();
            var tensors = new List<TensorStatistics>();
            for (int i = reader.ReadInt32(); i > 0; i--)
            {
                var t = new TensorStatistics(reader.ReadString(), (TensorRole)reader.ReadInt32(), reader.ReadString(), reader.ReadString());
                t.Restore(reader.ReadDouble(), reader.ReadDouble(), reader.ReadInt64());
                if (reader.ReadBoolean())
                {
                    double min = reader.ReadDouble(), max = reader.ReadDouble(), observedMin = reader.ReadDouble(), observedMax = reader.ReadDouble();
                    var counts = new long[reader.ReadInt32()];
                    for (int k = 0; k < counts.Length; k++) counts[k] = reader.ReadInt64();
                    t.Histogram = Histogram.Restore(min, max, counts, observedMin, observedMax);
                }
                tensors.Add(t);
            }
            return new CalibrationStatistics(fingerprint, inputs, bins, rows, tensors);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{path}' is truncated: it is not a complete calibration statistics file.", e);
        }
    }

    /// <summary>SHA-256 of a model file, as statistics record it.</summary>
    internal static string Fingerprint(string modelFile)
    {
        using var stream = File.OpenRead(modelFile);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>What differs between these statistics and a model, inputs and bins; null when nothing does.</summary>
    internal string? Difference(string fingerprint, IReadOnlyDictionary<string, string> inputs, int bins)
    {
        var differences = new List<string>();
        if (fingerprint != ModelFingerprint)
            differences.Add($"the model differs (fingerprint {ModelFingerprint[..12]}… in the statistics, {fingerprint[..12]}… now)");
        foreach (var (name, shape) in Inputs)
            if (!inputs.TryGetValue(name, out var other)) differences.Add($"input '{name}' is gone");
            else if (other != shape) differences.Add($"input '{name}' was {shape}, now {other}");
        foreach (var name in inputs.Keys.Where(n => !Inputs.ContainsKey(n)))
            differences.Add($"input '{name}' is new");
        if (bins != Bins) differences.Add($"the histograms have {Bins} bins, the settings ask for {bins}");
        return differences.Count == 0 ? null : string.Join("; ", differences);
    }

    internal IReadOnlyDictionary<string, TensorStatistics> ByTensor() => Tensors.ToDictionary(t => t.Tensor);
}
