using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;
using Onnx;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class InPlaceWeightsSessionTests
{
    // X [2, 64] → MatMul W [64, 32] (float) → Add B → H, then H quantized and dequantized (uint8) → MatMul DQ(Q [32, 48]
    // int8) → Y: a QDQ MatMul, which ONNX Runtime fuses into an integer kernel. quantizedActivation: false leaves H float,
    // and ONNX Runtime then folds the weights' DequantizeLinear into a float initializer, reading Q.
    private static OnnxGraph MatMuls(TempDirectory directory, bool quantizedActivation = true)
    {
        var model = new TinyModel().Input("X", 2, 64).Output("Y", 2, 48)
            .Weight("W", new long[] { 64, 32 }).Weight("B", new long[] { 32 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "H" })
            .Node("Add", new[] { "H", "B" }, new[] { "A" });
        if (quantizedActivation)
            model.Node("QuantizeLinear", new[] { "A", "SA", "ZA" }, new[] { "AQ" }).Node("DequantizeLinear", new[] { "AQ", "SA", "ZA" }, new[] { "AD" });
        model.Node("DequantizeLinear", new[] { "Q", "S" }, new[] { "V" })
            .Node("MatMul", new[] { quantizedActivation ? "AD" : "A", "V" }, new[] { "Y" });
        var random = new Random(3);
        model.Graph.Initializer.Add(Tensors.FromSBytes("Q", new long[] { 32, 48 }, Enumerable.Range(0, 32 * 48).Select(_ => (sbyte)random.Next(-127, 128)).ToArray()));
        model.Graph.Initializer.Add(Tensors.FromFloats("S", Array.Empty<long>(), new[] { 0.01f }));
        model.Graph.Initializer.Add(Tensors.FromFloats("SA", Array.Empty<long>(), new[] { 0.05f }));
        model.Graph.Initializer.Add(Tensors.FromBytes("ZA", Array.Empty<long>(), new byte[] { 128 }));
        return OnnxGraph.Load(model.Save(directory.Path));
    }

    private static float[] Run(InferenceSession session, string input, float[] x, long[] shape)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(x, shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { input }, new[] { value }, session.OutputNames);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [TestMethod]
    public void WeightsReadInPlaceGiveTheOutputsOfTheModelLoadedFromBytes()
    {
        using var directory = new TempDirectory();
        var graph = MatMuls(directory);
        var x = TinyData.Normal(1, 128, seed: 5)[0];
        float[] expected;
        using (var plain = new InferenceSession(graph.ToBytes())) expected = Run(plain, "X", x, new long[] { 2, 64 });
        using (var session = InPlaceWeightsSession.TryCreate(graph.Model, threads: 1))
        {
            Assert.IsInstanceOfType(session, typeof(InPlaceWeightsSession));
            CollectionAssert.AreEquivalent(new[] { "W", "Q" }, ((InPlaceWeightsSession)session).InPlace.ToList(),
                "the MatMul's weights and the DequantizeLinear's integers; not the bias (Add, and small) nor the scale");
            CollectionAssert.AreEqual(expected, Run(session, "X", x, new long[] { 2, 64 }));
            Assert.AreEqual(64 * 32 * sizeof(float), graph.Model.Graph.Initializer.Single(t => t.Name == "W").RawData.Length,
                "the graph keeps its own weights");
        }
        // Sessions.Create takes this path, and the values stay right after the first session is gone.
        using var again = Sessions.Create(graph, Array.Empty<string>(), "the tiny model");
        Assert.IsInstanceOfType(again, typeof(InPlaceWeightsSession));
        CollectionAssert.AreEqual(expected, Run(again, "X", x, new long[] { 2, 64 }));
    }

    [TestMethod]
    public void WhereAnOptimizationReadsAWeightHandedOverTheModelIsLoadedFromBytes()
    {
        // A DequantizeLinear of weights that no quantized activation meets is folded into float weights when ONNX Runtime
        // optimizes the graph: it reads the integers, which the stub does not hold.
        using var directory = new TempDirectory();
        var graph = MatMuls(directory, quantizedActivation: false);
        Assert.ThrowsExactly<OnnxRuntimeException>(() => InPlaceWeightsSession.TryCreate(graph.Model, threads: null)?.Dispose());
        var x = TinyData.Normal(1, 128, seed: 5)[0];
        using var plain = new InferenceSession(graph.ToBytes());
        using var session = Sessions.Create(graph, Array.Empty<string>(), "the tiny model");
        Assert.IsNotInstanceOfType(session, typeof(InPlaceWeightsSession));
        CollectionAssert.AreEqual(Run(plain, "X", x, new long[] { 2, 64 }), Run(session, "X", x, new long[] { 2, 64 }));
    }

    [TestMethod]
    public void AnIntegerConvolutionsWeightsAreReadInPlace()
    {
        // X quantized and dequantized → Conv with weights DQ(Wq int8 [16, 8, 3, 3]): ONNX Runtime fuses a QLinearConv,
        // whose kernel prepacks the weights (with a prepacked-weights container, ONNX Runtime would refuse it).
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 8, 6, 6).Output("Y", 1, 16, 6, 6)
            .Node("QuantizeLinear", new[] { "X", "SX", "ZX" }, new[] { "XQ" })
            .Node("DequantizeLinear", new[] { "XQ", "SX", "ZX" }, new[] { "XD" })
            .Node("DequantizeLinear", new[] { "WQ", "SW" }, new[] { "W" })
            .Node("Conv", new[] { "XD", "W" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("QuantizeLinear", new[] { "C", "SY", "ZX" }, new[] { "CQ" })
            .Node("DequantizeLinear", new[] { "CQ", "SY", "ZX" }, new[] { "Y" });
        var random = new Random(5);
        model.Graph.Initializer.Add(Tensors.FromSBytes("WQ", new long[] { 16, 8, 3, 3 }, Enumerable.Range(0, 1152).Select(_ => (sbyte)random.Next(-127, 128)).ToArray()));
        model.Graph.Initializer.Add(Tensors.FromFloats("SW", Array.Empty<long>(), new[] { 0.01f }));
        model.Graph.Initializer.Add(Tensors.FromFloats("SX", Array.Empty<long>(), new[] { 0.02f }));
        model.Graph.Initializer.Add(Tensors.FromFloats("SY", Array.Empty<long>(), new[] { 0.1f }));
        model.Graph.Initializer.Add(Tensors.FromBytes("ZX", Array.Empty<long>(), new byte[] { 128 }));
        var graph = OnnxGraph.Load(model.Save(directory.Path));
        var x = TinyData.Normal(1, 288, seed: 2)[0];
        using var plain = new InferenceSession(graph.ToBytes());
        using var session = Sessions.Create(graph, Array.Empty<string>(), "the integer Conv model");
        Assert.IsInstanceOfType(session, typeof(InPlaceWeightsSession));
        CollectionAssert.AreEqual(new[] { "WQ" }, ((InPlaceWeightsSession)session).InPlace.ToList());
        CollectionAssert.AreEqual(Run(plain, "X", x, new long[] { 1, 8, 6, 6 }), Run(session, "X", x, new long[] { 1, 8, 6, 6 }));
    }

    [TestMethod]
    public void AConvsWeightsAndSmallConstantsStayInTheModel()
    {
        // ONNX Runtime reorders a Conv's weights when it optimizes the graph, so they are not handed over; nor is a bias
        // under the size limit.
        using var directory = new TempDirectory();
        var graph = FloatConv(directory, 8, 16, 6);
        Assert.IsNull(InPlaceWeightsSession.TryCreate(graph.Model, threads: null));
        var x = TinyData.Normal(1, 288, seed: 2)[0];
        using var plain = new InferenceSession(graph.ToBytes());
        using var session = Sessions.Create(graph, Array.Empty<string>(), "the Conv model");
        CollectionAssert.AreEqual(Run(plain, "X", x, new long[] { 1, 8, 6, 6 }), Run(session, "X", x, new long[] { 1, 8, 6, 6 }));
    }

    [TestMethod]
    public void AModelLoadedWholeIsStreamedThroughAFileThatIsDeletedAndNeverCopiedOnTheManagedHeap()
    {
        // A 2.4 MB float Conv (whose weights are not handed over) serialized to an array would allocate its size again.
        using var directory = new TempDirectory();
        var graph = FloatConv(directory, 256, 256, 4);
        long weights = 256L * 256 * 9 * sizeof(float);
        var before = TempDirectory.ModelFiles();
        Sessions.Create(graph, Array.Empty<string>(), "the Conv model").Dispose(); // warm-up: ONNX Runtime's first session
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        using var session = Sessions.Create(graph, Array.Empty<string>(), "the Conv model");
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.IsTrue(allocated < weights / 4, $"{allocated} bytes allocated for a model of {weights} bytes of weights");
        CollectionAssert.AreEquivalent(before, TempDirectory.ModelFiles(), "the model's file is deleted once the session is loaded");
        var x = TinyData.Normal(1, 256 * 16, seed: 3)[0];
        using var plain = new InferenceSession(graph.ToBytes());
        CollectionAssert.AreEqual(Run(plain, "X", x, new long[] { 1, 256, 4, 4 }), Run(session, "X", x, new long[] { 1, 256, 4, 4 }));
    }

    [TestMethod]
    public void WhereTheTempFolderCannotBeWrittenTheModelIsLoadedFromAnArray()
    {
        using var directory = new TempDirectory();
        var graph = FloatConv(directory, 8, 16, 6);
        var x = TinyData.Normal(1, 288, seed: 4)[0];
        using var plain = new InferenceSession(graph.ToBytes());
        string? before = Environment.GetEnvironmentVariable("TMPDIR");
        Environment.SetEnvironmentVariable("TMPDIR", directory.File("no-such-folder"));
        try
        {
            Assert.IsFalse(Directory.Exists(Path.GetTempPath()), "the temp folder this test points at does not exist");
            using var session = Sessions.Create(graph, Array.Empty<string>(), "the Conv model");
            CollectionAssert.AreEqual(Run(plain, "X", x, new long[] { 1, 8, 6, 6 }), Run(session, "X", x, new long[] { 1, 8, 6, 6 }));
        }
        finally
        {
            Environment.SetEnvironmentVariable("TMPDIR", before);
        }
    }

    [TestMethod]
    public void AModelThatOnnxRuntimeCannotLoadIsReportedByName()
    {
        var before = TempDirectory.ModelFiles();
        using var directory = new TempDirectory();
        var graph = MatMuls(directory);
        graph.Model.Graph.Node.Add(new NodeProto { OpType = "NoSuchOp", Name = "mystery", Input = { "Y" }, Output = { "Z" } });
        graph.Model.Graph.Output[0].Name = "Z";
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Sessions.Create(graph, Array.Empty<string>(), "the broken model"));
        StringAssert.Contains(e.Message, "ONNX Runtime cannot load the broken model");
        CollectionAssert.AreEquivalent(before, TempDirectory.ModelFiles(), "no file is left behind by a model that fails to load");
    }

    // A float 3×3 Conv with bias and padding, `size` × `size`: its weights are never handed over (ONNX Runtime reorders them).
    private static OnnxGraph FloatConv(TempDirectory directory, int channelsIn, int channelsOut, int size) =>
        OnnxGraph.Load(new TinyModel().Input("X", 1, channelsIn, size, size).Output("Y", 1, channelsOut, size, size)
            .Weight("W", new long[] { channelsOut, channelsIn, 3, 3 }).Weight("B", new long[] { channelsOut })
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "Y" }, TinyModel.Ints("pads", 1, 1, 1, 1)).Save(directory.Path));
}
