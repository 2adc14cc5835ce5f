using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Pipeline;
using MLNet.Quantization.Tune;

namespace MLNet.Quantization.Tests.Tune;

[TestClass]
public sealed class TrialMeasurementTests
{
    private const int Width = 16384;

    // Two outputs of 128 × 128 values a row: a map (Relu, scored by its cosine, so it may be sampled) and a classifier's
    // probabilities over the last axis (Softmax, scored by top-1 agreement, so always kept whole).
    private static string MapAndClassifier(TempDirectory directory) => new TinyModel().Input("X", 1, 1, 128, 128)
        .Output("Map", 1, 1, 128, 128).Output("Probabilities", 1, 1, 128, 128)
        .Node("Relu", new[] { "X" }, new[] { "Map" })
        .Node("Softmax", new[] { "X" }, new[] { "Probabilities" }, TinyModel.Int("axis", -1))
        .Save(directory.Path);

    // The context that Fit gives the tuner: the prepared float model, tuning on (every fifth row held back).
    private static QuantizationContext Root(string model, IDataView rows, TuningOptions? tuning = null) =>
        Contexts.For(model, rows, tuning: tuning ?? new TuningOptions());

    private static float[] Every(float[] values, int stride) => values.Where((_, i) => i % stride == 0).ToArray();

    [TestMethod]
    public void RowsThatOutgrowTheBudgetAreAllKeptWithTheirLargeMapsSampled()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(50, Width);
        var root = Root(MapAndClassifier(directory), TinyData.X(new MLContext(seed: 1), data, Width));
        var heldBack = Enumerable.Range(0, data.Length).Where(r => root.Settings.Rows.IsMeasurementRow(r)).ToList();
        Assert.AreEqual(10, heldBack.Count);

        // 10 rows × 2 outputs × 64 KB = 1.25 MB whole; within 800 KB only with the map on every 4th value
        // (10 × (64 + 16) KB), the probabilities whole.
        var measurement = new TrialMeasurement(root, budget: 800 << 10);
        Assert.AreEqual(10, measurement.Float.Count, "every held-back row is kept");
        Assert.AreEqual(10L, measurement.HeldBack);
        Assert.AreEqual(4, measurement.SampledEvery);
        for (int i = 0; i < heldBack.Count; i++)
        {
            var x = data[heldBack[i]];
            CollectionAssert.AreEqual(Every(x.Select(v => Math.Max(v, 0f)).ToArray(), 4), measurement.Float[i][0], $"row {heldBack[i]}: every 4th value of the map");
            Assert.AreEqual(Width, measurement.Float[i][1].Length, "a classifier's output is kept whole");
            var firstRow = x.Take(128).ToList();
            var probabilities = measurement.Float[i][1].Take(128).ToList();
            Assert.AreEqual(firstRow.IndexOf(firstRow.Max()), probabilities.IndexOf(probabilities.Max()), $"row {heldBack[i]}: the probabilities");
        }
        CollectionAssert.AreEqual(new long[] { 1, 1, 128, 128 }, measurement.Shapes[0], "the shapes are the outputs', not the samples'");
        Assert.AreEqual(0, measurement.Reference.Count, "sampled outputs are no reference for the checks, which compare every value");

        // A trial's model is read at the same positions: the float model scored against itself agrees exactly.
        var trial = measurement.Run(root.Model);
        Assert.AreEqual(10, trial.Count);
        for (int i = 0; i < trial.Count; i++)
            for (int k = 0; k < 2; k++)
                CollectionAssert.AreEqual(measurement.Float[i][k], trial[i][k], $"row {i}, output {k}");
    }

    [TestMethod]
    public void WithinTheBudgetNothingIsSampledAndTheChecksGetTheRows()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(50, Width);
        var root = Root(MapAndClassifier(directory), TinyData.X(new MLContext(seed: 1), data, Width));
        var measurement = new TrialMeasurement(root);
        Assert.AreEqual(10, measurement.Float.Count);
        Assert.AreEqual(1, measurement.SampledEvery);
        Assert.AreEqual(Width, measurement.Float[3][0].Length);
        Assert.AreEqual(10, measurement.Reference.Count);
    }

    [TestMethod]
    public void WhereEvenSampledRowsOutgrowTheBudgetOnlyTheFirstAreKept()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(50, Width);
        var root = Root(MapAndClassifier(directory), TinyData.X(new MLContext(seed: 1), data, Width));
        // The whole probabilities (64 KB a row) and the map at its fewest values (4,096: 16 KB) fit 100 KB for one row only.
        var measurement = new TrialMeasurement(root, budget: 100 << 10);
        Assert.AreEqual(1, measurement.Float.Count);
        Assert.AreEqual(10L, measurement.HeldBack);
        Assert.AreEqual(TrialMeasurement.MinimumSampledValues, measurement.Float[0][0].Length, "a map is never sampled below its fewest values");
        Assert.AreEqual(Width / TrialMeasurement.MinimumSampledValues, measurement.SampledEvery);
        Assert.AreEqual(Width, measurement.Float[0][1].Length);
    }

    [TestMethod]
    public void AUserMetricSeesEveryValue()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(50, Width);
        var root = Root(MapAndClassifier(directory), TinyData.X(new MLContext(seed: 1), data, Width), new TuningOptions { Metric = _ => 1 });
        var measurement = new TrialMeasurement(root, budget: 800 << 10);
        Assert.AreEqual(1, measurement.SampledEvery);
        Assert.AreEqual(Width, measurement.Float[0][0].Length);
        Assert.IsTrue(measurement.Float.Count < 10, "the rows that do not fit whole are left out, as the summary says");
    }
}
