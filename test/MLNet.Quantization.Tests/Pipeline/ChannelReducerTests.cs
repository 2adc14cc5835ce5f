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
}
