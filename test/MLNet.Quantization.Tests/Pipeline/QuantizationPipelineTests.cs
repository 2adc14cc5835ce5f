using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Tests.Pipeline;

[TestClass]
public sealed class QuantizationPipelineTests
{
    // Declares the per-channel statistics of one tensor and keeps what it is given.
    private sealed class RecordingPass : IQuantizationPass
    {
        private readonly StatisticPoint? _point;

        public RecordingPass(string? tensor, int axis = -1) => _point = tensor is null ? null : new StatisticPoint(tensor, axis);

        public ChannelStatistics? Seen { get; private set; }

        public IReadOnlyList<StatisticPoint> StatisticPoints(QuantizationContext context) =>
            _point is null ? Array.Empty<StatisticPoint>() : new[] { _point };

        public void Apply(QuantizationContext context, StatisticValues statistics)
        {
            if (_point is not null) Seen = statistics[_point];
        }
    }

    // Counts the cursors opened on it: one per stream over the rows.
    internal sealed class CountingDataView : IDataView
    {
        private readonly IDataView _inner;

        public CountingDataView(IDataView inner) => _inner = inner;

        public int Cursors { get; private set; }

        public bool CanShuffle => _inner.CanShuffle;

        public DataViewSchema Schema => _inner.Schema;

        public long? GetRowCount() => _inner.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            Cursors++;
            return _inner.GetRowCursor(columnsNeeded, rand);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        {
            Cursors++;
            return _inner.GetRowCursorSet(columnsNeeded, n, rand);
        }
    }

    [TestMethod]
    public void ForeseenPointsAreReducedInTheActivationStreamAsAStreamOfTheirOwnWouldReduceThem()
    {
        using var directory = new TempDirectory();
        var model = Equalize.SmoothQuantPassTests.TwoMatMuls(directory);
        var rows = new CountingDataView(Equalize.SmoothQuantPassTests.Outliers(new MLContext(seed: 1)));
        var context = Contexts.For(model, rows);
        var points = new MLNet.Quantization.Equalize.SmoothQuantPass(0.5).StatisticPoints(context);
        var unread = new[] { new StatisticPoint("Y1", -1) }; // a MatMul's output: the activation stream does not read it
        context.Foreseen[context.ModelVersion] = new() { points, unread };
        context.Run(new MLNet.Quantization.Annotate.AnnotatePass(), new MLNet.Quantization.Calibration.ActivationStatisticsPass());

        Assert.IsFalse(context.Collected.ContainsKey(QuantizationPipeline.CollectionKey(context, unread, long.MaxValue)!.Value),
            "a set whose tensor was not streamed is not filed");
        Assert.IsTrue(context.Collected.TryGetValue(QuantizationPipeline.CollectionKey(context, points, long.MaxValue)!.Value, out var foreseen),
            "filed under the key that the SmoothQuant step looks up");
        int cursors = rows.Cursors;
        QuantizationPipeline.Run(context, new IQuantizationPass[] { new MLNet.Quantization.Equalize.SmoothQuantPass(0.5) });
        Assert.AreEqual(cursors, rows.Cursors, "the SmoothQuant step streams nothing");

        var direct = StatisticPointCollector.Collect(Contexts.For(model, rows), points, 4);
        foreach (var point in points)
        {
            CollectionAssert.AreEqual(direct[point].AbsMax, foreseen[point].AbsMax, point.Tensor);
            Assert.AreEqual(direct[point].Rows, foreseen[point].Rows, point.Tensor);
            for (int c = 0; c < direct[point].Mean.Length; c++)
                Assert.AreEqual(direct[point].Mean[c], foreseen[point].Mean[c], 1e-9 * (1 + Math.Abs(direct[point].Mean[c])), $"{point.Tensor}[{c}]");
        }
    }

    private static string Model(TempDirectory directory) => new TinyModel().Input("X", 4, 8).Output("Y", 4, 8)
        .Node("Relu", new[] { "X" }, new[] { "R" }).Node("Neg", new[] { "R" }, new[] { "Y" }).Save(directory.Path);

    [TestMethod]
    public void PassesOfOneStepShareOneStreamAndEachStepGetsItsOwn()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var x = TinyData.Normal(10, 32);
        var data = new CountingDataView(TinyData.X(ml, x, 32));
        var context = Contexts.For(Model(directory), data);
        var (first, second, third, free) = (new RecordingPass("X"), new RecordingPass("R", 0), new RecordingPass("Y"), new RecordingPass(null));

        QuantizationPipeline.Run(context, new IReadOnlyList<IQuantizationPass>[] { new IQuantizationPass[] { first, second }, new[] { free } });
        Assert.AreEqual(1, data.Cursors, "two passes with statistics in one step, and a data-free step: one stream");
        QuantizationPipeline.Run(context, new IReadOnlyList<IQuantizationPass>[] { new[] { third } });
        Assert.AreEqual(2, data.Cursors, "another step, another stream");

        // Per channel of the last axis (8): the mean over rows and the 4 rows of each [4, 8] sample.
        for (int c = 0; c < 8; c++)
        {
            var values = x.SelectMany(r => Enumerable.Range(0, 4).Select(i => r[i * 8 + c])).ToArray();
            Assert.AreEqual(values.Average(), first.Seen!.Mean[c], 1e-5, $"mean of X, channel {c}");
            Assert.AreEqual(values.Max(Math.Abs), first.Seen.AbsMax[c], 1e-6, $"largest |X|, channel {c}");
            Assert.AreEqual(-values.Select(v => Math.Max(v, 0)).Average(), third.Seen!.Mean[c], 1e-5, $"mean of Y, channel {c}");
        }
        Assert.AreEqual(4, second.Seen!.Mean.Length, "axis 0 of R has 4 channels");
        Assert.AreEqual(10, first.Seen!.Rows);
    }

    [TestMethod]
    public void ReadingWhatNoPassMadeIsReportedAsAnOrderingBug()
    {
        using var directory = new TempDirectory();
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(), TinyData.Normal(2, 32), 32));
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => context.Plan);
        StringAssert.Contains(error.Message, "out of order");
    }
}
