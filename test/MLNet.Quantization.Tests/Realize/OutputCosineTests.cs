using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Realize;
using MLNet.Quantization.Tune;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class OutputCosineTests
{
    // Probabilities of a binary classifier: row 0 turned from 0.9 into 0.1, which no per-row cosine of one value can see.
    private static readonly float[][] Reference = { new[] { 0.9f }, new[] { 0.1f }, new[] { 0.5f }, new[] { 0.2f } };
    private static readonly float[][] Compared = { new[] { 0.1f }, new[] { 0.1f }, new[] { 0.5f }, new[] { 0.2f } };

    private static double ColumnCosine(float[][] f, float[][] q)
    {
        double dot = 0, a = 0, b = 0;
        for (int r = 0; r < f.Length; r++) { dot += f[r][0] * q[r][0]; a += f[r][0] * f[r][0]; b += q[r][0] * q[r][0]; }
        return dot / Math.Sqrt(a * b);
    }

    [TestMethod]
    public void AnOutputOfOneValuePerRowIsComparedAcrossTheRows()
    {
        var cosine = OutputCosine.Over(Reference, Compared, Enumerable.Range(0, 4));
        Assert.IsTrue(cosine.OneValuePerRow);
        Assert.AreEqual(ColumnCosine(Reference, Compared), cosine.Mean, 1e-6);
        Assert.IsTrue(cosine.Mean < 0.9, $"a probability flipped on one row of four reads {cosine.Mean}, not the per-row sign test's 1");
        double meanSquare = Reference.Average(v => (double)v[0] * v[0]);
        double worstRow = 1 - 0.8 * 0.8 / (2 * meanSquare);
        Assert.AreEqual(Math.Min(cosine.Mean, worstRow), cosine.Worst, 1e-6);
        var perRow = OutputCosine.PerRow(Reference, Compared);
        Assert.AreEqual(worstRow, perRow[0], 1e-6);
        CollectionAssert.AreEqual(new[] { 1.0, 1.0, 1.0 }, perRow.Skip(1).ToArray(), "the rows that did not move");
        Assert.AreEqual(1.0, OutputCosine.Over(Reference, Reference, Enumerable.Range(0, 4)).Mean, 1e-12);
    }

    [TestMethod]
    public void OnItsScaleARelativeErrorReadsAsItDoesForAVector()
    {
        // The same 1% noise, once as one vector of 64 values per row and once as a column of one value per row.
        var random = new Random(3);
        var f = Enumerable.Range(0, 64).Select(_ => (float)(random.NextDouble() + 0.5)).ToArray();
        var q = f.Select(v => v * (1 + (float)(0.01 * (random.NextDouble() * 2 - 1) * Math.Sqrt(3)))).ToArray();
        var vector = OutputCosine.Over(new[] { f }, new[] { q }, new[] { 0 });
        var column = OutputCosine.Over(f.Select(v => new[] { v }).ToList(), q.Select(v => new[] { v }).ToList(), Enumerable.Range(0, 64));
        Assert.IsFalse(vector.OneValuePerRow);
        Assert.AreEqual(vector.Mean, column.Mean, 1e-9, "the column of 64 rows is the vector of 64 values");
        Assert.IsTrue(column.Mean < 1 - 1e-6);
    }

    [TestMethod]
    public void VectorsAndRowsOfVaryingLengthKeepTheirPerRowCosines()
    {
        float[][] f = { new[] { 1f, 0f }, new[] { 2f } };
        float[][] q = { new[] { 0f, 1f }, new[] { 0.5f } };
        var cosine = OutputCosine.Over(f, q, new[] { 0, 1 });
        Assert.IsFalse(cosine.OneValuePerRow, "a row of two values: the per-row cosine is a direction, not a sign");
        Assert.AreEqual(0.5, cosine.Mean, 1e-12); // (0 + 1) / 2
        Assert.AreEqual(0.0, cosine.Worst, 1e-12);
        CollectionAssert.AreEqual(new[] { 0.0, 1.0 }, OutputCosine.PerRow(f, q));
    }

    [TestMethod]
    public void OutputsOfDifferentLengthsAreRefusedByNameNotIndexedPastTheirEnd()
    {
        using var a = OrtValue.CreateTensorValueFromMemory(new[] { 1f, 2f }, new long[] { 1, 2 });
        using var b = OrtValue.CreateTensorValueFromMemory(new[] { 1f, 2f, 3f }, new long[] { 1, 3 });
        var comparisons = new OutputComparisons(new[] { "Y" });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => comparisons.Add(new[] { b }, new[] { a }));
        StringAssert.Contains(e.Message, "Output 'Y'");
        Assert.ThrowsExactly<InvalidOperationException>(() => comparisons.Add(new float[]?[] { new[] { 1f, 2f, 3f } }, new[] { a }));
    }

    [TestMethod]
    public void TheTunersObjectiveAndHardRowsSeeAOneValueOutput()
    {
        var f = Reference.Select(v => new[] { v }).ToList();
        var q = Compared.Select(v => new[] { v }).ToList();
        var shapes = new[] { new long[] { 1, 1 } };
        double objective = TuningScores.Objective(new[] { OutputScoring.Cosine }, shapes, f, q, new[] { 0, 1, 2, 3 });
        Assert.AreEqual(ColumnCosine(Reference, Compared), objective, 1e-6);
        var rows = TuningScores.RowCosines(f, q);
        Assert.AreEqual(0, Array.IndexOf(rows, rows.Min()), "the flipped row is the hardest");
    }

    [TestMethod]
    public void AFittedRegressionOfOneValuePerRowIsMeasuredWhereTheSignTestWouldReadOne()
    {
        using var directory = new TempDirectory();
        // y = Relu(x·W1)·W2: one positive value per row, as a score or a regression gives.
        var model = new TinyModel().Input("X", 1, 32).Output("Y", 1, 1)
            .Weight("W1", new long[] { 32, 16 }).Weight("W2", new long[] { 16, 1 }, scale: 0.25f, offset: 0.5f)
            .Node("MatMul", new[] { "X", "W1" }, new[] { "H" }).Node("Relu", new[] { "H" }, new[] { "R" })
            .Node("MatMul", new[] { "R", "W2" }, new[] { "Y" }).Save(directory.Path);
        var ml = new MLContext(seed: 1);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = model, Tuning = null, MinimumSpeedup = 0, MaximumOutputError = 1,
        }).Fit(TinyData.X(ml, TinyData.Normal(200, 32), 32));
        var output = fitted.Deployment!.Outputs.Single();
        Assert.IsFalse(fitted.Deployment.KeptFloat, fitted.Deployment.ToString());
        Assert.IsTrue(output.RelativeError > 1e-4, output.ToString());
        // The per-row sign test reads 1 up to the float products' rounding (about 1e-8 here), far above e²/4.
        Assert.IsTrue(1 - output.MeanCosine > output.RelativeError * output.RelativeError / 4, $"the per-row sign test would read 1: {output}");
        // On the cosine's scale, as for a vector: 1 − cos ≈ e²/2.
        Assert.AreEqual(output.RelativeError * output.RelativeError / 2, 1 - output.MeanCosine, output.RelativeError * output.RelativeError / 2,
            output.ToString());
        Assert.IsTrue(output.WorstCosine <= output.MeanCosine, output.ToString());
    }
}
