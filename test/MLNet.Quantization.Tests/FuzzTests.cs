using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

/// <summary>Byte mutations of a small model: every Fit succeeds or fails with a documented exception that names the file.</summary>
[TestClass]
public sealed class FuzzTests
{
    // The exceptions that the README's bad-input table documents for a bad model file.
    private static readonly Type[] Documented =
    {
        typeof(InvalidDataException), typeof(InvalidOperationException), typeof(ArgumentException), typeof(NotSupportedException),
    };

    [TestMethod]
    public void MutatedModelsFitOrFailWithADocumentedException()
    {
        using var directory = new TempDirectory();
        var good = File.ReadAllBytes(new TinyModel()
            .Input("X", 1, 2, 4, 4).Output("Y", 1, 2, 4, 4)
            .Weight("W", new long[] { 2, 2, 3, 3 }).Weight("B", new long[] { 2 })
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", new[] { "C" }, new[] { "Y" })
            .Save(directory.Path));
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(8, 32), 32);
        // MLNET_QUANTIZATION_FUZZ_TRIALS and _SEED widen a local run; CI runs the default 150 trials of seed 23.
        int trials = int.TryParse(Environment.GetEnvironmentVariable("MLNET_QUANTIZATION_FUZZ_TRIALS"), out var t) ? t : 150;
        var random = new Random(int.TryParse(Environment.GetEnvironmentVariable("MLNET_QUANTIZATION_FUZZ_SEED"), out var seed) ? seed : 23);
        int fitted = 0, refused = 0;
        var undocumented = new List<string>();
        var file = directory.File("mutant.onnx");
        for (int trial = 0; trial < trials; trial++)
        {
            var bytes = (byte[])good.Clone();
            for (int k = random.Next(1, 4); k > 0; k--)
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            File.WriteAllBytes(file, bytes);
            var run = Task.Run(() =>
            {
                using var model = ml.Transforms.QuantizeCalibrated(file).Fit(rows);
                model.Transform(rows).GetColumn<float[]>("Y").ToArray();
            });
            try
            {
                if (!run.Wait(TimeSpan.FromSeconds(20))) { undocumented.Add($"trial {trial}: no answer in 20 s"); continue; }
                fitted++;
            }
            catch (AggregateException e) when (e.InnerException is { } inner)
            {
                if (Documented.Any(t => t.IsInstanceOfType(inner)) && inner is not ArgumentNullException and not ArgumentOutOfRangeException
                    || inner is ArgumentOutOfRangeException { ParamName: not null })
                    refused++;
                else
                    undocumented.Add($"trial {trial}: {inner.GetType().Name}: {inner.Message} {inner.StackTrace?.Split('\n').FirstOrDefault(l => l.Contains("MLNet.Quantization."))?.Trim()}");
            }
        }
        Console.WriteLine($"Fuzz: {trials} mutated models, {fitted} fitted and scored, {refused} refused with a documented exception, {undocumented.Count} otherwise");
        Assert.AreEqual(0, undocumented.Count, string.Join("\n", undocumented.Take(20)));
    }
}
