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
    // Version 2 adds per-sample sums and ends with the SHA-256 of everything before it; version 1 files (no checksum,
    // no per-sample sums) still load.
    private const int FormatVersion = 2;
    private const int ChecksumSize = 32;

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
        int missing = Array.IndexOf(shards, null);
        if (missing >= 0) throw new ArgumentException($"Shard {missing} is null.", nameof(shards));
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
            tensor.RestoreSamples(parts.Sum(p => p.Samples), parts.Sum(p => p.SumSampleMin), parts.Sum(p => p.SumSampleMax));
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
        using var payload = new MemoryStream();
        using (var writer = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
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
                writer.Write(t.Samples); writer.Write(t.SumSampleMin); writer.Write(t.SumSampleMax);
                writer.Write(t.Histogram is not null);
                if (t.Histogram is not { } h) continue;
                writer.Write(h.Min); writer.Write(h.Max); writer.Write(h.ObservedMin); writer.Write(h.ObservedMax);
                writer.Write(h.Bins);
                foreach (var c in h.Counts) writer.Write(c);
            }
        }
        var bytes = payload.ToArray();
        AtomicFile.Write(path, stream =>
        {
            stream.Write(bytes);
            stream.Write(SHA256.HashData(bytes));
        });
    }

    /// <summary>Reads statistics written by <see cref="Save"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">
    /// The file is not a statistics file of this format, or it is truncated or corrupt (its checksum does not match, or a
    /// length or count in it is impossible); the message names the file and what is wrong.
    /// </exception>
    public static CalibrationStatistics Load(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The path must not be empty.", nameof(path));
        if (!File.Exists(path)) throw new FileNotFoundException($"The statistics file '{path}' does not exist.", path);
        var bytes = File.ReadAllBytes(path);
        try
        {
            using var reader = new Reader(bytes, path);
            if (reader.String(Magic.Length) != Magic)
                throw new InvalidDataException($"'{path}' is not a calibration statistics file.");
            int version = reader.Int32();
            if (version is not (1 or FormatVersion))
                throw new InvalidDataException($"'{path}' is a calibration statistics file of format {version}; this version reads formats 1 and {FormatVersion}.");
            if (version == FormatVersion)
            {
                if (bytes.Length < ChecksumSize)
                    throw new InvalidDataException($"'{path}' is truncated: it has no checksum.");
                var body = bytes.AsSpan(0, bytes.Length - ChecksumSize);
                if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - ChecksumSize)))
                    throw new InvalidDataException($"'{path}' is corrupt: its SHA-256 checksum does not match its contents.");
                reader.End = body.Length;
            }
            var fingerprint = reader.String(64);
            int bins = reader.Count(0, "bins");
            long rows = reader.Int64();
            if (rows < 0) throw new InvalidDataException($"'{path}' is corrupt: it counts {rows} rows.");
            var inputs = new Dictionary<string, string>();
            for (int i = reader.Count(2, "inputs"); i > 0; i--) inputs[reader.String()] = reader.String();
            var tensors = new List<TensorStatistics>();
            for (int i = reader.Count(version >= 2 ? 44 : 20, "tensors"); i > 0; i--)
            {
                string tensor = reader.String();
                int role = reader.Int32();
                if (!Enum.IsDefined((TensorRole)role))
                    throw new InvalidDataException($"'{path}' is corrupt: tensor '{tensor}' has role {role}.");
                var t = new TensorStatistics(tensor, (TensorRole)role, reader.String(), reader.String());
                t.Restore(reader.Double(), reader.Double(), reader.Int64());
                if (version >= 2) t.RestoreSamples(reader.Int64(), reader.Double(), reader.Double());
                if (reader.Boolean())
                {
                    double min = reader.Double(), max = reader.Double(), observedMin = reader.Double(), observedMax = reader.Double();
                    var counts = new long[reader.Count(8, $"histogram bins of '{tensor}'")];
                    for (int k = 0; k < counts.Length; k++) counts[k] = reader.Int64();
                    if (counts.Length == 0 || !(min <= max) || counts.Any(c => c < 0))
                        throw new InvalidDataException($"'{path}' is corrupt: the histogram of '{tensor}' is impossible.");
                    t.Histogram = Histogram.Restore(min, max, counts, observedMin, observedMax);
                }
                tensors.Add(t);
            }
            if (version == FormatVersion && !reader.AtEnd)
                throw new InvalidDataException($"'{path}' is corrupt: it holds data after its last tensor.");
            return new CalibrationStatistics(fingerprint, inputs, bins, rows, tensors);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException or OverflowException or FormatException
            && e is not InvalidDataException)
        {
            throw new InvalidDataException($"'{path}' is truncated or corrupt: {e.Message}", e);
        }
    }

    // Reads the statistics format over a byte array, and checks every length and count against the bytes left before
    // allocating anything: a corrupt count cannot ask for more memory than the file implies.
    private sealed class Reader : IDisposable
    {
        private readonly BinaryReader _reader;
        private readonly MemoryStream _stream;
        private readonly string _path;

        public Reader(byte[] bytes, string path)
        {
            _stream = new MemoryStream(bytes, writable: false);
            _reader = new BinaryReader(_stream, Encoding.UTF8);
            _path = path;
            End = bytes.Length;
        }

        public long End { get; set; }

        public bool AtEnd => _stream.Position == End;

        private long Left => End - _stream.Position;

        public int Int32() { Need(4); return _reader.ReadInt32(); }

        public long Int64() { Need(8); return _reader.ReadInt64(); }

        public double Double() { Need(8); return _reader.ReadDouble(); }

        public bool Boolean() { Need(1); return _reader.ReadBoolean(); }

        /// <summary>A count of items of at least <paramref name="itemSize"/> bytes each, which the bytes left must hold.</summary>
        public int Count(int itemSize, string what)
        {
            int count = Int32();
            if (count < 0 || (long)count * itemSize > Left)
                throw new InvalidDataException($"'{_path}' is corrupt: it claims {count} {what}, more than its {Left} bytes left can hold.");
            return count;
        }

        /// <summary>A length-prefixed UTF-8 string (BinaryWriter's format) of at most <paramref name="maximum"/> bytes.</summary>
        public string String(int maximum = 1 << 20)
        {
            Need(1);
            int length = _reader.Read7BitEncodedInt(); // a malformed length is a FormatException, reported as corrupt
            if (length < 0 || length > maximum || length > Left)
                throw new InvalidDataException($"'{_path}' is corrupt: a string claims {length} bytes ({Left} left).");
            return Encoding.UTF8.GetString(_reader.ReadBytes(length));
        }

        private void Need(int bytes)
        {
            if (Left < bytes) throw new InvalidDataException($"'{_path}' is truncated: it ends inside its data.");
        }

        public void Dispose() => _reader.Dispose();
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
