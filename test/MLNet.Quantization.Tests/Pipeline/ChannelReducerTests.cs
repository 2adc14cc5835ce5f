using Google.Protobuf;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;
using Onnx;

namespace MLNet.Quantization.Tests.Pipeline;

[TestClass]
public sealed class ChannelReducerTests
{
    [TestMethod]
    public void ChannelMeansAndMaximaMatchAPlainReductionOnEveryAxis()
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.Graph.Node.Add(OnnxGraph.MakeNode("Identity", "copy", new[] { "x" }, new[] { "t" })); // no probe reads it
        var graph = OnnxGraph.Parse(model.ToByteArray(), "a one-node model");
        var shape = new long[] { 2, 3, 5 };
        var random = new Random(13);
        var rows = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 30).Select(_ => (float)(random.NextDouble() * 10 - 5)).ToArray()).ToList();
        foreach (int axis in new[] { 1, 2, -1, 0 }) // channels in the middle, last (as a MatMul's output), last by −1, first
        {
            var point = new StatisticPoint("t", axis);
            var reducer = new ChannelReducer(new[] { point }, graph);
            foreach (var row in rows) reducer.Add("t", row, shape);
            var result = reducer.Values(rows.Count)[point];

            int a = axis < 0 ? axis + shape.Length : axis;
            long inner = shape.Skip(a + 1).Aggregate(1L, (x, y) => x * y);
            int channels = (int)shape[a];
            Assert.AreEqual(channels, result.Mean.Length, $"axis {axis}");
            for (int c = 0; c < channels; c++)
            {
                var members = rows.SelectMany(r => r.Where((_, i) => i / inner % channels == c)).ToList();
                Assert.AreEqual(members.Average(v => (double)v), result.Mean[c], 1e-9, $"axis {axis}, channel {c}: mean");
                Assert.AreEqual(members.Max(Math.Abs), result.AbsMax[c], $"axis {axis}, channel {c}: largest magnitude");
            }
        }
    }

    [TestMethod]
    public void ANaNMakesTheChannelMeanNaNAndLeavesItsLargestMagnitudeToTheNumbers()
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.Graph.Node.Add(OnnxGraph.MakeNode("Identity", "copy", new[] { "x" }, new[] { "t" }));
        var graph = OnnxGraph.Parse(model.ToByteArray(), "a one-node model");
        var values = Enumerable.Range(0, 64).Select(i => (float)(i - 20)).ToArray(); // [2, 32]: channel 0 is −20..11
        values[5] = float.NaN;
        var point = new StatisticPoint("t", 0);
        var reducer = new ChannelReducer(new[] { point }, graph);
        reducer.Add("t", values, new long[] { 2, 32 });
        var result = reducer.Values(1)[point];
        Assert.IsTrue(double.IsNaN(result.Mean[0]));
        Assert.AreEqual(20f, result.AbsMax[0], "the largest magnitude among the numbers");
        Assert.AreEqual(Enumerable.Range(32, 32).Average(i => i - 20.0), result.Mean[1], 1e-12);
        Assert.AreEqual(43f, result.AbsMax[1]);
    }

    [TestMethod]
    public void RowExtremesAreKeptPerRowAndChannelOnlyWhereAskedAndWithinTheBudget()
    {
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.Graph.Node.Add(OnnxGraph.MakeNode("Identity", "copy", new[] { "x" }, new[] { "t" }));
        var graph = OnnxGraph.Parse(model.ToByteArray(), "a one-node model");
        var shape = new long[] { 1, 3, 4 }; // 3 positions of 4 channels
        var random = new Random(5);
        var rows = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 12).Select(_ => (float)(random.NextDouble() * 10 - 5)).ToArray()).ToList();
        rows[2][6] = float.NaN; // row 2, position 1, channel 2
        var asked = new StatisticPoint("t", -1) { RowExtremes = true };
        var plain = new StatisticPoint("t", -1);
        var reducer = new ChannelReducer(new[] { asked, plain }, graph);
        foreach (var row in rows) reducer.Add("t", row, shape);
        var values = reducer.Values(rows.Count);
        var extremes = values[asked].RowExtremes ?? throw new AssertFailedException("kept");
        Assert.AreEqual(rows.Count, extremes.Minima.Count);
        Assert.AreEqual(15, extremes.ValuesPerChannel, "3 positions per channel in each of 5 rows");
        for (int r = 0; r < rows.Count; r++)
            for (int c = 0; c < 4; c++)
            {
                var members = Enumerable.Range(0, 3).Select(p => rows[r][p * 4 + c]).ToList();
                if (members.Any(float.IsNaN))
                {
                    Assert.IsTrue(float.IsNaN(extremes.Minima[r][c]) && float.IsNaN(extremes.Maxima[r][c]), "a NaN marks the channel's extremes");
                    continue;
                }
                Assert.AreEqual(members.Min(), extremes.Minima[r][c], $"row {r}, channel {c}");
                Assert.AreEqual(members.Max(), extremes.Maxima[r][c], $"row {r}, channel {c}");
            }

        var small = new ChannelReducer(new[] { asked }, graph, rowExtremesBudget: 3 * 2 * 4 * sizeof(float));
        foreach (var row in rows) small.Add("t", row, shape);
        Assert.IsNull(small.Values(rows.Count)[asked].RowExtremes, "5 rows of 4 channels do not fit a budget of 3 rows: none are kept");
        CollectionAssert.AreEqual(values[asked].AbsMax, small.Values(rows.Count)[asked].AbsMax, "the reduction itself is unchanged");
    }
}
