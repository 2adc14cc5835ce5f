using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Annotate;

/// <summary>
/// Nodes and op types the user keeps in float. Every name must match something in the model: a name that matches
/// nothing is an error listing the closest real names, never a silent no-op.
/// </summary>
internal sealed class Exclusions
{
    private readonly HashSet<string> _nodes;
    private readonly HashSet<string> _opTypes;

    private Exclusions(HashSet<string> nodes, HashSet<string> opTypes)
    {
        _nodes = nodes;
        _opTypes = opTypes;
    }

    public static Exclusions Create(OnnxGraph graph, IReadOnlyList<string>? nodes, IReadOnlyList<string>? opTypes)
    {
        var nodeNames = graph.Graph.Node.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
        var types = graph.Graph.Node.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        Check(nodes, nodeNames, "node", "ExcludeNodes");
        Check(opTypes, types, "op type", "ExcludeOpTypes");
        return new Exclusions(new HashSet<string>(nodes ?? Array.Empty<string>()), new HashSet<string>(opTypes ?? Array.Empty<string>()));
    }

    /// <summary>These exclusions and <paramref name="nodes"/> too (names already checked).</summary>
    public Exclusions With(IEnumerable<string> nodes) => new(new HashSet<string>(_nodes.Concat(nodes)), _opTypes);

    public bool Excludes(NodeProto node) => _nodes.Contains(node.Name) || _opTypes.Contains(node.OpType);

    private static void Check(IReadOnlyList<string>? names, HashSet<string> real, string kind, string option)
    {
        foreach (var name in names ?? Array.Empty<string>())
        {
            if (real.Contains(name)) continue;
            var closest = real.OrderBy(r => Distance(name.ToLowerInvariant(), r.ToLowerInvariant())).ThenBy(r => r, StringComparer.Ordinal).Take(3);
            throw new ArgumentException(
                $"{option}: the model has no {kind} '{name}'. Closest {kind}s: {string.Join(", ", closest.Select(c => $"'{c}'"))}.", option);
        }
    }

    /// <summary>Levenshtein distance.</summary>
    internal static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
