namespace MLNet.Quantization;

/// <summary>The CSV writing that the report's tables share.</summary>
internal static class Csv
{
    /// <summary>The field as it is, or quoted (inner quotes doubled) when it holds a comma, a quote or a line break.</summary>
    public static string Quote(string text) => text.IndexOfAny(new[] { ',', '"', '\n' }) < 0 ? text : $"\"{text.Replace("\"", "\"\"")}\"";
}
