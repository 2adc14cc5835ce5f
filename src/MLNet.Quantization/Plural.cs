using System.Globalization;

namespace MLNet.Quantization;

/// <summary>Counts in the summaries' words: "1 row", "2 rows".</summary>
internal static class Plural
{
    /// <summary><paramref name="count"/> and <paramref name="noun"/>, with an "s" unless the count is 1.</summary>
    public static string Of(long count, string noun) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + noun + (count == 1 ? "" : "s");
}
