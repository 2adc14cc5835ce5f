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
        long maximum = long.MaxValue, Func<IReadOnlyList<OrtValue>, long>? bytes = null, Action? during = null)
    {
        var seen = new List<Seen>();
        using var runOptions = new RunOptions();
        long visited = RowReader.ForEachInOrder(session, context.Data, context.Settings, 1, include,
            (names, values) =>
            {
                during?.Invoke();
                return session.Run(runOptions, names, values, new[] { "Y" });
            },
            (row, _, values, results) => seen.Add(new Seen(row, values[0].GetTensorDataAsSpan<float>().ToArray(), results[0].GetTensorDataAsSpan<float>().ToArray())),
            bytes ?? RowReader.Bytes, maximum, workers);
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
        using var directory = new TempDirectory();
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), TinyData.Normal(12, 6), 6));
        using var session = Sessions.Create(context.Model, Array.Empty<string>(), "the tiny model");
        int running = 0, most = 0;
        void During()
        {
            int now = Interlocked.Increment(ref running);
            lock (session) most = Math.Max(most, now);
            Thread.Sleep(30);
            Interlocked.Decrement(ref running);
        }
        Pass(session, context, 3, _ => true, during: During);
        Assert.IsTrue(most >= 2, $"small results: rows run at once (at most {most} did)");
        most = 0;
        Pass(session, context, 3, _ => true, bytes: _ => RowReader.InFlightBudget, during: During);
        Assert.AreEqual(1, most, "a result as large as the budget: one row at a time");
    }

    [TestMethod]
    public void AFailureOnOneRowIsThrownAsItWasAndNoLaterRowIsTaken()
    {
        using var directory = new TempDirectory();
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), TinyData.Normal(12, 6), 6));
        using var session = Sessions.Create(context.Model, Array.Empty<string>(), "the tiny model");
        var taken = new List<long>();
        int runs = 0;
        var e = Assert.ThrowsExactly<InvalidDataException>(() => RowReader.ForEachInOrder(session, context.Data, context.Settings, 1, _ => true,
            (_, values) =>
            {
                if (Interlocked.Increment(ref runs) == 5) throw new InvalidDataException("row five");
                return values[0].GetTensorDataAsSpan<float>().ToArray();
            },
            (row, _, _, _) => taken.Add(row), _ => 24, workers: 3));
        Assert.AreEqual("row five", e.Message);
        Assert.IsTrue(taken.Count <= 4 && taken.SequenceEqual(Enumerable.Range(0, taken.Count).Select(r => (long)r)),
            $"the rows before the failure, in order: {string.Join(",", taken)}");
    }
}
