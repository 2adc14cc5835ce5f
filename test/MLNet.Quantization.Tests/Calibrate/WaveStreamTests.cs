using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Pipeline;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class WaveStreamTests
{
    // X → Conv_0 → Relu (R1) → Conv_2 → Add(R1) → Relu → Conv_5 → Y: three layers, the residual R1 read across one.
    private static string Residual(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 8, 4, 4).Output("Y", 1, 8, 4, 4)
        .Weight("W1", new long[] { 8, 8, 1, 1 }).Weight("B1", new long[] { 8 })
        .Weight("W2", new long[] { 8, 8, 1, 1 }).Weight("B2", new long[] { 8 })
        .Weight("W3", new long[] { 8, 8, 1, 1 }).Weight("B3", new long[] { 8 })
        .Node("Conv", new[] { "X", "W1", "B1" }, new[] { "C1" })
        .Node("Relu", new[] { "C1" }, new[] { "R1" })
        .Node("Conv", new[] { "R1", "W2", "B2" }, new[] { "C2" })
        .Node("Add", new[] { "C2", "R1" }, new[] { "S" })
        .Node("Relu", new[] { "S" }, new[] { "R2" })
        .Node("Conv", new[] { "R2", "W3", "B3" }, new[] { "Y" })
        .Save(directory.Path, "residual.onnx");

    private static IDataView Rows(int rows) => TinyData.X(new MLContext(seed: 1), TinyData.Normal(rows, 128, seed: 5), 128);

    [TestMethod]
    public void EachWaveReadsWhatTheWaveBeforeKeptAndMeasuresWhatAStreamFromTheDataMeasures()
    {
        using var directory = new TempDirectory();
        var context = Contexts.For(Residual(directory), Rows(40));
        var points = new[] { new StatisticPoint("C1", 1), new StatisticPoint("C2", 1), new StatisticPoint("Y", 1) };
        var reference = StatisticPointCollector.Collect(context, points, 4, null, 30);
        var layers = new[] { "Conv_0", "Conv_2", "Conv_5" };
        foreach (long budget in new[] { WaveStream.DefaultMemoryBudget, 0 })
        {
            var stream = new WaveStream(context, 4, 30, budget);
            var nodes = new List<int>();
            for (int w = 0; w < 3; w++)
            {
                var measured = stream.Collect(context.Model, new[] { points[w] }, layers[w..], last: w == 2);
                nodes.Add(stream.LastWaveNodes);
                Assert.AreEqual(30, measured[points[w]].Rows, $"budget {budget}, wave {w}");
                var (expected, actual) = (reference[points[w]].Mean, measured[points[w]].Mean);
                for (int c = 0; c < expected.Length; c++)
                    Assert.AreEqual(expected[c], actual[c], 1e-5 * (1 + Math.Abs(expected[c])), $"budget {budget}, wave {w}, channel {c}");
            }
            if (budget == 0)
            {
                Assert.AreEqual(3, stream.DataStreams, "with nothing kept every wave reads the data");
                Assert.AreEqual(0, stream.PeakKeptBytes);
                CollectionAssert.AreEqual(new[] { 1, 3, 6 }, nodes, "each wave runs the model up to its layer");
            }
            else
            {
                Assert.AreEqual(1, stream.DataStreams, "only the first wave reads the data");
                // Wave 2 runs from X (what wave 1 kept: Conv_0 still changed then) through Conv_0, Relu and Conv_2; wave 3
                // from R1 (final once Conv_0 is) through Conv_2, Add, Relu and Conv_5.
                CollectionAssert.AreEqual(new[] { 1, 3, 4 }, nodes, "each wave runs from the cut the wave before kept");
                Assert.IsTrue(stream.PeakKeptBytes >= 30 * 128 * 4, $"kept {stream.PeakKeptBytes} bytes: at least one row-sized tensor per row");
            }
        }
    }

    [TestMethod]
    public void FullBiasCorrectionGivesTheSameBiasesWithAndWithoutTheKeptActivations()
    {
        using var directory = new TempDirectory();
        var model = Residual(directory);
        QuantizationContext Corrected(long budget, out FullBiasCorrectionPass pass)
        {
            pass = new FullBiasCorrectionPass { MemoryBudget = budget };
            return Contexts.For(model, Rows(60), new QuantizingEstimator.Options { BiasCorrection = BiasCorrection.Full, PerChannelWeights = false })
                .Run(new AnnotatePass(), new ActivationStatisticsPass(), new CalibratePass(), pass);
        }
        var kept = Corrected(WaveStream.DefaultMemoryBudget, out var keeping);
        var streamed = Corrected(0, out var streaming);
        Assert.AreEqual(1, keeping.DataStreams);
        Assert.AreEqual(3, streaming.DataStreams);
        var biases = streamed.Parameters.Biases;
        Assert.AreEqual(3, biases.Count);
        int moved = 0;
        foreach (var (key, bias) in biases)
        {
            var other = kept.Parameters.Biases[key];
            // The same means up to float rounding (the part of a graph that ONNX Runtime runs may fuse otherwise).
            for (int c = 0; c < bias.Values.Length; c++)
                Assert.IsTrue(Math.Abs(bias.Values[c] - other.Values[c]) <= 1, $"bias {key.Tensor}[{c}]: {bias.Values[c]} streamed, {other.Values[c]} kept");
            moved += kept.Parameters.Table.Count(e => e.Tensor == key.Tensor && e.Note.Contains("bias corrected"));
        }
        Assert.IsTrue(moved > 0, "some bias was corrected");
    }
}
