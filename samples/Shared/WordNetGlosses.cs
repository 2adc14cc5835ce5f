namespace MLNet.Quantization.Samples;

/// <summary>WordNet 3.0 noun glosses with their lexicographer class (26 classes), from the shipped subset.</summary>
public static class WordNetGlosses
{
    /// <summary>Reads <c>data/wordnet/noun-glosses-subset.tsv</c>, found by walking up from <paramref name="start"/>.</summary>
    public static (string[] Texts, uint[] Classes) Read(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "data", "wordnet", "noun-glosses-subset.tsv");
            if (!File.Exists(path)) continue;
            var rows = File.ReadAllLines(path).Select(l => l.Split('\t', 2)).ToArray();
            return (rows.Select(r => r[1]).ToArray(), rows.Select(r => uint.Parse(r[0])).ToArray());
        }
        throw new DirectoryNotFoundException($"No data/wordnet/noun-glosses-subset.tsv above '{start}'.");
    }
}
