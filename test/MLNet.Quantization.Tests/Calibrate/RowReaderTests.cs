using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Realize;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class RowReaderTests
{
    // X [1, 6] → Relu → Y.
    private static string Model(TempDirectory directory) => new TinyModel().Input("X", 1, 6).Output("Y", 1, 6)
        .Node("Relu", new[] { "X" }, new[] { "Y" })
        .Save(directory.Path);

    private sealed record Seen(long Row, float[] Input, float[] Output);

    private static List<Seen> Pass(InferenceSession session, MLNet.Quantization.Pipeline.QuantizationContext context, int workers, Func<long, bool> include,
        long maximum = long.MaxValue)
    {
        var seen = new List<Seen>();
        using var runOptions = new RunOptions();
        long visited = RowReader.ForEachInOrder(session, context.Data, context.Settings, 1, include,
            (names, values) => session.Run(runOptions, names, values, new[] { "Y" }),
            (row, _, values, results) => seen.Add(new Seen(row, values[0].GetTensorDataAsSpan<float>().ToArray(), results[0].GetTensorDataAsSpan<float>().ToArray())),
            RowReader.Bytes, maximum, workers);
        Assert.AreEqual(seen.Count, visited);
        return seen;
    }

    [TestMethod]
    public void RowsRunAtOnceAreTakenInRowOrderWithTheirOwnInputsAndOutputs()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(23, 6, seed: 5);
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), data, 6));
        using var session = Sessions.Create(context.Model, Array.Empty<string>(), "the tiny model");
        var one = Pass(session, context, 1, r => r % 3 != 1);
        var four = Pass(session, context, 4, r => r % 3 != 1);
        var expected = Enumerable.Range(0, 23).Where(r => r % 3 != 1).Select(r => (long)r).ToList();
        CollectionAssert.AreEqual(expected, one.Select(s => s.Row).ToList());
        CollectionAssert.AreEqual(expected, four.Select(s => s.Row).ToList(), "in row order, only the rows accepted");
        foreach (var s in four)
        {
            // Each row's input buffer is its own while it is in flight: a buffer read again too early would show another row.
            CollectionAssert.AreEqual(data[s.Row], s.Input, $"row {s.Row}'s input");
            CollectionAssert.AreEqual(data[s.Row].Select(v => Math.Max(v, 0)).ToArray(), s.Output, $"row {s.Row}'s output");
        }
        CollectionAssert.AreEqual(expected.Take(5).ToList(), Pass(session, context, 4, r => r % 3 != 1, maximum: 5).Select(s => s.Row).ToList(),
            "at most the rows asked for");
    }

    [TestMethod]
    public void RowsRunAtOnceOnlyWithinTheBytesInFlight()
    {
        // Small results: after the first row (run alone, to learn the size), rows 1 and 2 are both running before
        // either is taken.
        using var gate = new ManualResetEventSlim();
        using var started = new CountdownEvent(2);
        var taken = new List<long>();
        using (var flight = new OrderedRuns<int>(3, (row, _, _) => taken.Add(row), _ => 100))
        {
            flight.Add(0, Array.Empty<OrtValue>(), _ => 0);
            foreach (long row in new long[] { 1, 2 })
                flight.Add(row, Array.Empty<OrtValue>(), _ =>
                {
                    started.Signal();
                    gate.Wait(TimeSpan.FromSeconds(30));
                    return 0;
                });
            Assert.IsTrue(started.Wait(TimeSpan.FromSeconds(30)), "rows 1 and 2 run at once");
            CollectionAssert.AreEqual(new long[] { 0 }, taken, "neither is taken while it runs");
            gate.Set();
            flight.Finish();
        }
        CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, taken);

        // A result as large as the budget: each row is taken before the next one starts.
        int running = 0, most = 0;
        using (var flight = new OrderedRuns<int>(3, (_, _, _) => { }, _ => RowReader.InFlightBudget))
            for (long row = 0; row < 5; row++)
            {
                flight.Add(row, Array.Empty<OrtValue>(), _ =>
                {
                    most = Math.Max(most, Interlocked.Increment(ref running));
                    Interlocked.Decrement(ref running);
                    return 0;
                });
                Assert.AreEqual(row + 1, flight.Taken, "taken before the next row is read");
            }
        Assert.AreEqual(1, most);
    }

    [TestMethod]
    public void AFailureOnOneRowIsThrownAsItWasAndNoLaterRowIsTaken()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(12, 6, seed: 8);
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), data, 6));
        using var session = Sessions.Create(context.Model, Array.Empty<string>(), "the tiny model");
        var taken = new List<long>();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => RowReader.ForEachInOrder(session, context.Data, context.Settings, 1, _ => true,
            (_, values) =>
            {
                var row = values[0].GetTensorDataAsSpan<float>().ToArray();
                if (row[0] == data[4][0]) throw new InvalidDataException("row four");
                return row;
            },
            (row, _, _, _) => taken.Add(row), _ => 24, workers: 3));
        Assert.AreEqual("row four", e.Message);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3 }, taken, "the rows before the failure, in order, and none after");
    }
}
