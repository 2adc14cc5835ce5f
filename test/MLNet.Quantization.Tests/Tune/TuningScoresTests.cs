using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Tune;

namespace MLNet.Quantization.Tests.Tune;

[TestClass]
public sealed class TuningScoresTests
{
    private static float[][] Row(params float[] values) => new[] { values };

    [TestMethod]
    public void TopOneCountsPositionsWhoseArgMaxAgrees()
    {
        // Two rows of two positions × three classes: three of the four positions keep their arg-max.
        var f = new List<float[][]> { Row(1, 0, 0, 0, 2, 0), Row(0, 0, 3, 1, 0, 0) };
        var q = new List<float[][]> { Row(0.9f, 0.1f, 0, 0, 1.5f, 0.2f), Row(0, 0.5f, 0.4f, 0.9f, 0, 0) };
        double value = TuningScores.Objective(new[] { OutputScoring.TopOne }, new[] { new long[] { 1, 2, 3 } }, f, q, new[] { 0, 1 });
        Assert.AreEqual(0.75, value, 1e-12);
        Assert.AreEqual(1.0, TuningScores.Objective(new[] { OutputScoring.TopOne }, new[] { new long[] { 1, 2, 3 } }, f, q, new[] { 0 }), 1e-12);
    }

    [TestMethod]
    public void NeighbourAgreementComparesEachRowsNearestOtherRow()
    {
        // Rows 0 and 1 are near each other, 2 and 3 too. The quantized row 3 moves next to row 0: rows 0 and 3 change
        // their nearest neighbour, and row 2, left orthogonal to every other row, too. Only row 1 agrees.
        var f = new List<float[][]> { Row(1, 0, 0, 0), Row(0.9f, 0.1f, 0, 0), Row(0, 0, 1, 0), Row(0, 0, 0.9f, 0.1f) };
        var q = new List<float[][]> { Row(1, 0, 0, 0), Row(0.9f, 0.3f, 0, 0), Row(0, 0, 1, 0), Row(1, 0, 0, 0.1f) };
        var shapes = new[] { new long[] { 1, 4 } };
        Assert.AreEqual(0.25, TuningScores.Objective(new[] { OutputScoring.Neighbour }, shapes, f, q, new[] { 0, 1, 2, 3 }), 1e-12);
        Assert.AreEqual(1.0, TuningScores.Objective(new[] { OutputScoring.Neighbour }, shapes, f, q, new[] { 1 }), 1e-12, "on row 1 alone");
        Assert.AreEqual(1.0, TuningScores.Objective(new[] { OutputScoring.Neighbour }, shapes, f, f, new[] { 0, 1, 2, 3 }), 1e-12);
    }

    [TestMethod]
    public void TheWorstOutputDecidesAndNonFloatOutputsAreLeftOut()
    {
        var f = new List<float[][]> { new[] { new float[] { 1, 0 }, new float[] { 1, 0 }, Array.Empty<float>() } };
        var q = new List<float[][]> { new[] { new float[] { 1, 0 }, new float[] { 1, 1 }, Array.Empty<float>() } };
        var scorings = new[] { OutputScoring.Cosine, OutputScoring.Cosine, OutputScoring.Cosine };
        var shapes = new[] { new long[] { 1, 2 }, new long[] { 1, 2 }, new long[] { 1 } };
        Assert.AreEqual(Math.Sqrt(0.5), TuningScores.Objective(scorings, shapes, f, q, new[] { 0 }), 1e-9);
        Assert.AreEqual(Math.Sqrt(0.5), TuningScores.RowCosines(f, q)[0], 1e-9);
    }

    [TestMethod]
    public void EmbeddingsAreOneVectorOrASequenceOfVectorsPerRow()
    {
        var tokens = new HashSet<long> { 128 }; // input_ids [1, 128]
        var image = new HashSet<long> { 128, 3 }; // a channels-last image [1, 128, 128, 3]
        Assert.IsTrue(TuningScores.IsEmbedding(new long[] { 1, 512, 1, 1 }, image));
        Assert.IsTrue(TuningScores.IsEmbedding(new long[] { 1, 128, 384 }, tokens), "one vector per token");
        Assert.IsFalse(TuningScores.IsEmbedding(new long[] { 1, 8 }, image), "too short to rank neighbours by");
        Assert.IsFalse(TuningScores.IsEmbedding(new long[] { 1, 3, 64, 64 }, image), "a feature map");
        Assert.IsFalse(TuningScores.IsEmbedding(new long[] { 1, 896, 16 }, image), "a detector's 896 anchor boxes");
        Assert.IsFalse(TuningScores.IsEmbedding(new long[] { 1, 1, 128, 128 }, image), "a segmenter's mask, as long as the image");
        Assert.IsFalse(TuningScores.IsEmbedding(new long[] { 1, 128, 384 }, null), "no input axis to match");
        using var directory = new TempDirectory();
        var model = MLNet.Quantization.Onnx.OnnxGraph.Load(new TinyModel().Input("X", 1, 512).Output("E", 1, 512)
            .Node("Relu", new[] { "X" }, new[] { "E" }).Save(directory.Path));
        var shapes = new[] { new long[] { 1, 512 } };
        Assert.AreEqual(OutputScoring.Neighbour, TuningScores.Scorings(model, TuningObjective.Auto, shapes, rows: 8).Single());
        Assert.AreEqual(OutputScoring.Cosine, TuningScores.Scorings(model, TuningObjective.Auto, shapes, rows: 7).Single(),
            "on 7 held-back rows the nearest other row is one of 6: the mean cosine decides");
        Assert.AreEqual(OutputScoring.Neighbour, TuningScores.Scorings(model, TuningObjective.NeighbourAgreement, shapes, rows: 3).Single(), "asked for");
    }

    [TestMethod]
    public void CountedScoresOneRowApartTieAndTheCosinesDecide()
    {
        const double Row = 1.0 / 8;
        var closer = new TrialScore(6 * Row, MeanCosine: 0.99, WorstCosine: 0.93, Resolution: Row);
        var oneRowMore = new TrialScore(7 * Row, MeanCosine: 0.97, WorstCosine: 0.79, Resolution: Row);
        var twoRowsMore = new TrialScore(8 * Row, MeanCosine: 0.97, WorstCosine: 0.79, Resolution: Row);
        Assert.IsTrue(closer > oneRowMore, "one row apart is a tie: the closer outputs win");
        Assert.IsTrue(twoRowsMore > closer, "two rows apart: the agreement decides, whatever the cosines");
        Assert.IsTrue(oneRowMore >= new TrialScore(7 * Row, 0.97, 0.79, Row) && !(oneRowMore > new TrialScore(7 * Row, 0.97, 0.79, Row)));
        Assert.IsTrue(new TrialScore(0.9001, 0.90, 0.80) > new TrialScore(0.9000, 0.99, 0.99), "a continuous objective has no step");
    }

    [TestMethod]
    public void WithTheRowsCountedScoresTieWithinTheNoiseOfTheirPairedDifference()
    {
        const int N = 40;
        double[] Rows(int agree, params int[] missing) => Enumerable.Range(0, N).Select(r => r < agree && !missing.Contains(r) ? 1.0 : 0.0).ToArray();
        TrialScore Score(double[] rows, double cosine) => new(rows.Average(), cosine, cosine, 1.0 / N) { Rows = rows, Output = 0 };
        var base36 = Score(Rows(36), 0.999);

        // 2 rows gained, none lost (5 points): 2·√(0.05·0.95/40) = 0.069, so a tie; the closer outputs win.
        Assert.IsTrue(base36 > Score(Rows(38), 0.99), "two rows more on 40 is noise");
        Assert.IsTrue(Score(Rows(38), 0.99) > new TrialScore(36.0 / N, 0.999, 0.999, 1.0 / N), "without the rows, two steps apart decide");
        // 4 gained, none lost (10 points): 2·√(0.1·0.9/40) = 0.095 < 0.1, the agreement decides.
        Assert.IsTrue(Score(Rows(40), 0.99) > base36, "four rows more, none fewer");
        // Net 4 as 6 gained and 2 lost: the paired differences spread more (2·s/√n = 0.138): a tie.
        Assert.IsTrue(Score(Rows(34), 0.999) > Score(Rows(40, 0, 1), 0.99), "six more and two fewer than 34");
        Assert.IsTrue(Score(Rows(38), 0.99) > Score(Rows(34), 0.999), "four more and none fewer than 34");
        Assert.AreEqual(0.0, TrialScore.PairedStandardError(Rows(36), Rows(36)));
        Assert.IsTrue(Score(Rows(36), 0.99) < base36 && Score(Rows(35), 0.9999) > base36, "one row apart ties as before");
        var otherOutput = Score(Rows(38), 0.99) with { Output = 1 };
        Assert.IsTrue(otherOutput > base36, "rows of different outputs are not paired: one step decides");
    }

    [TestMethod]
    public void TheDecidingOutputGivesEachRowsPartOfACountedObjective()
    {
        // Output 0: top-1 over 2 positions of 3 classes per row; output 1: cosine. Row 1 agrees on one position of two.
        var f = new[] { new[] { new float[] { 1, 0, 0, 0, 1, 0 }, new float[] { 1, 1 } }, new[] { new float[] { 1, 0, 0, 0, 1, 0 }, new float[] { 1, 1 } } };
        var q = new[] { new[] { new float[] { 1, 0, 0, 0, 1, 0 }, new float[] { 1, 1 } }, new[] { new float[] { 1, 0, 0, 0, 0, 1 }, new float[] { 1, 1 } } };
        var (value, output, rows) = TuningScores.Deciding(new[] { OutputScoring.TopOne, OutputScoring.Cosine },
            new[] { new long[] { 1, 2, 3 }, new long[] { 1, 2 } }, f, q, new[] { 0, 1 });
        Assert.AreEqual(0.75, value, 1e-12);
        Assert.AreEqual(0, output, "top-1 is the lower");
        CollectionAssert.AreEqual(new[] { 1.0, 0.5 }, rows);
        var (cosine, which, none) = TuningScores.Deciding(new[] { OutputScoring.TopOne, OutputScoring.Cosine },
            new[] { new long[] { 1, 2, 3 }, new long[] { 1, 2 } }, f, f, new[] { 0, 1 });
        Assert.AreEqual(1.0, cosine, 1e-12);
        Assert.AreEqual(0, which, "ties go to the first output");
        CollectionAssert.AreEqual(new[] { 1.0, 1.0 }, none);
    }
}
