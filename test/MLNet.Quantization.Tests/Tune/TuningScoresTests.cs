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
}
