using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Realize;
using MLNet.Quantization.Tests.Pipeline;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class TensorStreamTests
{
    // X [1, 6] → Relu → R → Neg → Y, and Shape(X) → S (int64).
    private static string Model(TempDirectory directory) => new TinyModel().Input("X", 1, 6).Output("Y", 1, 6)
        .Node("Relu", new[] { "X" }, new[] { "R" })
        .Node("Neg", new[] { "R" }, new[] { "Y" })
        .Node("Shape", new[] { "X" }, new[] { "S" })
        .Save(directory.Path);

    [TestMethod]
    public void EachRowsInputAndOutputsReachTheVisitorWithTheirShapes()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(5, 6, seed: 4);
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), data, 6));
        using var session = Sessions.Create(context.Model, new[] { "R" }, "the tiny model");
        var seen = new List<(string Tensor, float[] Values, long[] Shape, long Row)>();
        long rows = TensorStream.ForEach(session, context.Data, context.Settings, 1, _ => true, new HashSet<string> { "X" }, new[] { "R", "Y" },
            (tensor, values, shape, row) => seen.Add((tensor, values.ToArray(), shape.ToArray(), row)));
        Assert.AreEqual(5, rows);
        Assert.AreEqual(15, seen.Count, "X, R and Y on each of the 5 rows");
        for (int r = 0; r < 5; r++)
        {
            var row = seen.Where(s => s.Row == r).ToDictionary(s => s.Tensor);
            CollectionAssert.AreEqual(data[r], row["X"].Values);
            CollectionAssert.AreEqual(data[r].Select(v => Math.Max(v, 0)).ToArray(), row["R"].Values);
            CollectionAssert.AreEqual(data[r].Select(v => -Math.Max(v, 0)).ToArray(), row["Y"].Values);
            foreach (var s in row.Values) CollectionAssert.AreEqual(new long[] { 1, 6 }, s.Shape, s.Tensor);
        }

        var odd = new List<long>();
        Assert.AreEqual(2, TensorStream.ForEach(session, context.Data, context.Settings, 1, r => r % 2 == 1, new HashSet<string>(), new[] { "Y" },
            (_, _, _, row) => odd.Add(row)));
        CollectionAssert.AreEqual(new long[] { 1, 3 }, odd, "only the rows accepted");
    }

    [TestMethod]
    public void ATensorThatIsNotFloatIsRefusedByName()
    {
        using var directory = new TempDirectory();
        var context = Contexts.For(Model(directory), TinyData.X(new MLContext(seed: 1), TinyData.Normal(2, 6), 6));
        using var session = Sessions.Create(context.Model, new[] { "S" }, "the tiny model");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TensorStream.ForEach(session, context.Data, context.Settings, 1, _ => true,
            new HashSet<string>(), new[] { "S" }, (_, _, _, _) => { }));
        StringAssert.Contains(e.Message, "'S'");
        StringAssert.Contains(e.Message, "not float");
    }
}
