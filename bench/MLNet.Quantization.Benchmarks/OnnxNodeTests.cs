namespace MLNet.Quantization.Benchmarks;

// ONNX's backend node tests (Debian's libonnx-testdata) through QuantizeCalibrated with the defaults: the table of
// outcomes that are not "nothing to quantize" or skipped, then the count of each outcome (see OnnxNodeTestSweep).
// Usage: onnx-node-tests [directory, default /usr/share/libonnx-testdata/data/node] [only tests whose name contains this] [constants,int8]
internal static class OnnxNodeTests
{
    public static void Run(string[] args)
    {
        var root = args.Length > 0 && args[0].Length > 0 ? args[0] : Tests.OnnxNodeTestSweep.DefaultDirectory;
        var only = args.Length > 1 ? args[1] : "";
        var flags = args.Length > 2 ? args[2].Split(',') : Array.Empty<string>();
        bool constants = flags.Contains("constants"), int8 = flags.Contains("int8");
        if (!Directory.Exists(root))
        {
            Console.Error.WriteLine($"{root} does not exist: apt-get install libonnx-testdata");
            return;
        }
        var ml = new Microsoft.ML.MLContext(seed: 1);
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        Console.WriteLine($"ONNX backend node tests in {root}, CPU {Realize.CpuFeatures.Describe()}, defaults, each input fed {Tests.OnnxNodeTestSweep.Copies} times" +
            (constants ? ", inputs after the first as constants" : "") + (int8 ? ", MinimumSpeedup 0" : ""));
        Console.WriteLine();
        Console.WriteLine("| test | outcome | detail |");
        Console.WriteLine("|---|---|---|");
        foreach (var directory in Tests.OnnxNodeTestSweep.Tests(root, only))
        {
            var (outcome, detail) = Tests.OnnxNodeTestSweep.Run(ml, directory, constants, int8);
            counts[outcome] = counts.GetValueOrDefault(outcome) + 1;
            // The sweep's own failures are shown too: a test it could not feed is not one that passed.
            if ((!outcome.StartsWith("skipped", StringComparison.Ordinal) || outcome.StartsWith("skipped: the sweep failed", StringComparison.Ordinal))
                && outcome != "float: nothing to quantize")
                Console.WriteLine($"| {Path.GetFileName(directory)} | {outcome} | {detail.Replace('|', '/').Replace('\n', ' ')} |");
        }
        Console.WriteLine();
        Console.WriteLine("| outcome | tests |");
        Console.WriteLine("|---|---|");
        foreach (var (outcome, count) in counts) Console.WriteLine($"| {outcome} | {count} |");
    }
}
