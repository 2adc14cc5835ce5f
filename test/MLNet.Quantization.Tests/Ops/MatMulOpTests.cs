using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Ops;

[TestClass]
public sealed class MatMulOpTests
{
    [TestMethod]
    public void AWeightMatMulQuantizesItsInputAndItsColumnsAndLeavesTheOutputFloat()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16).Output("Y", 1, 8)
            .Weight("B", new long[] { 16, 8 })
            .Node("MatMul", new[] { "X", "B" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(64, 16), 16), "Y");

        Assert.AreEqual(1, run.Count("QuantizeLinear"), "only X: the output stays float (MatMulIntegerToFloat)");
        Assert.AreEqual(2, run.Count("DequantizeLinear"));
        var weightDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("B"));
        Assert.AreEqual(1L, weightDq.Attribute.Single(a => a.Name == "axis").I, "per output column");
        Assert.AreEqual(8, run.Table.Find("B", TensorRole.Weight)!.ChannelScales.Count);
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) < 1e-4f, "no output rounding: simulated and int8 agree to float error");
    }

    [TestMethod]
    public void ABatchedWeightGetsOneScaleWhichOnnxRuntimesIntegerMatMulCanRun()
    {
        // B of rank 3 ([batch, K, N]), as ONNX's test_matmul_3d with B made constant: ONNX Runtime's MatMulIntegerToFloat
        // takes per-column parameters only for a 2-D B, and failed at run time on the per-axis DequantizeLinear.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 2, 3, 16).Output("Y", 2, 3, 8)
            .Weight("B", new long[] { 2, 16, 8 })
            .Node("MatMul", new[] { "X", "B" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(64, 96), 96), "Y");

        var weightDq = run.Int8Model.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0].StartsWith("B"));
        Assert.IsFalse(weightDq.Attribute.Any(a => a.Name == "axis"), "one scale for the whole weight");
        Assert.AreEqual(0, run.Table.Find("B", TensorRole.Weight)!.ChannelScales.Count);
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) < 1e-4f, "simulated and int8 agree to float error");
    }

    [TestMethod]
    public void AMatMulOfTwoActivationsQuantizesBothSides()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 4, 8).Input("X2", 1, 8, 4).Output("Y", 1, 4, 4)
            .Node("MatMul", new[] { "X", "X2" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.XX2(ml, TinyData.Normal(32, 32, seed: 3), TinyData.Normal(32, 32, seed: 4), 32), "Y");

        Assert.AreEqual(2, run.Count("QuantizeLinear"));
        Assert.IsNotNull(run.Table.Find("X", TensorRole.Activation));
        Assert.IsNotNull(run.Table.Find("X2", TensorRole.Activation));
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void AWeightHeldInAConstantNodeIsQuantizedAndTheConstantRemoved()
    {
        using var directory = new TempDirectory();
        var tiny = new TinyModel().Input("X", 1, 16).Output("Y", 1, 8);
        var values = TinyData.Normal(1, 128, seed: 9)[0];
        var constant = MLNet.Quantization.Onnx.OnnxGraph.MakeNode("Constant", "weights", Array.Empty<string>(), new[] { "B" });
        constant.Attribute.Add(new global::Onnx.AttributeProto
        {
            Name = "value", Type = global::Onnx.AttributeProto.Types.AttributeType.Tensor, T = Tensors.FromFloats("B", new long[] { 16, 8 }, values),
        });
        tiny.Graph.Node.Add(constant);
        var model = tiny.Node("MatMul", new[] { "X", "B" }, new[] { "Y" }).Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(16, 16), 16), "Y");

        Assert.AreEqual(TensorRole.Weight, run.Table.Single(c => c.Tensor == "B").Role);
        Assert.AreEqual(0, run.Count("Constant"), "the float Constant node is gone");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void AWeightSharedByTwoNodesIsQuantizedOnce()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 8).Output("Y", 1, 8)
            .Weight("B", new long[] { 8, 8 })
            .Node("MatMul", new[] { "X", "B" }, new[] { "H" })
            .Node("MatMul", new[] { "H", "B" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 8), 8), "Y");

        Assert.AreEqual(1, run.Table.Count(c => c.Role == TensorRole.Weight));
        Assert.AreEqual(1, run.Int8Model.Graph.Initializer.Count(i => i.DataType == Tensors.Int8 && i.Dims.Count == 2));
        Assert.IsTrue(run.MinCosine > 0.998, $"int8 vs float cosine {run.MinCosine}");
    }
}
