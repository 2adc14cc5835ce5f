using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Realize;

/// <summary>
/// The simulated model computes what ONNX Runtime's integer kernels compute: integer accumulation scaled once, so that
/// realized and simulated agree to the last rounding step, not only within one.
/// </summary>
[TestClass]
public sealed class SimulatedEmitterTests
{
    // Three fused 3×3 Convs of 64 channels (576 products per output), then a MatMul and a Gemm: every float sum of
    // dequantized products rounds, and values near a rounding tie then land on the other step.
    private static string Chain(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 64, 6, 6).Output("Y", 1, 10)
        .Weight("W1", new long[] { 64, 64, 3, 3 }, 0.06f).Weight("B1", new long[] { 64 }, 0.1f)
        .Weight("W2", new long[] { 64, 64, 3, 3 }, 0.06f).Weight("B2", new long[] { 64 }, 0.1f)
        .Weight("W3", new long[] { 16, 64, 3, 3 }, 0.06f)
        .Weight("M", new long[] { 576, 32 }, 0.05f).Weight("G", new long[] { 32, 10 }, 0.2f).Weight("GB", new long[] { 10 }, 0.1f)
        .Node("Conv", new[] { "X", "W1", "B1" }, new[] { "C1" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C1" }, new[] { "R1" })
        .Node("Conv", new[] { "R1", "W2", "B2" }, new[] { "C2" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C2" }, new[] { "R2" })
        .Node("Conv", new[] { "R2", "W3" }, new[] { "C3" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C3" }, new[] { "R3" })
        .Node("Flatten", new[] { "R3" }, new[] { "F" })
        .Node("MatMul", new[] { "F", "M" }, new[] { "H" })
        .Node("Relu", new[] { "H" }, new[] { "R4" })
        .Node("Gemm", new[] { "R4", "G", "GB" }, new[] { "Y" })
        .Save(directory.Path);

    [TestMethod]
    public void FusedConvsMatMulsAndGemmsAccumulateIntegersAsTheKernelsDo()
    {
        using var directory = new TempDirectory();
        var run = QuantizedRun.Of(Chain(directory), ml => TinyData.X(ml, TinyData.Normal(48, 64 * 36, seed: 5), 64 * 36), "Y");

        var simulated = run.SimulatedModel.Graph;
        Assert.AreEqual(0, simulated.Node.Count(n => n.OpType is "QuantizeLinear" or "DequantizeLinear"), "still float ops only");
        foreach (var op in new[] { "Conv", "MatMul", "Gemm" })
            foreach (var node in simulated.Node.Where(n => n.OpType == op))
            {
                var weight = run.SimulatedModel.FindInitializer(node.Input[1])!;
                var values = MLNet.Quantization.Onnx.Tensors.ReadFloats(weight);
                Assert.IsTrue(values.All(v => v == MathF.Round(v) && Math.Abs(v) <= 127), $"{op} '{node.Name}' reads integer weights");
                Assert.IsTrue(run.SimulatedModel.Consumers(node.Output[0]).Single().OpType == "Mul", $"{op} '{node.Name}' is scaled once after it");
            }

        // Before this form the same model gave 1-step differences at the fused Convs, carried on to the output.
        float step = 1e-4f * run.Int8.SelectMany(r => r).Max(MathF.Abs);
        float difference = TinyData.MaxAbsDifference(run.Simulated, run.Int8);
        System.Console.WriteLine($"difference {difference}, bound {step}, R4 step {run.Scale("R4")}");
        Assert.IsTrue(difference <= step, $"realized and simulated differ by {difference}, beyond float rounding ({step})");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void AConvAlsoReadInFloatStaysInTheFloatForm()
    {
        // The Conv's output feeds its quantization and a Sqrt (a domain-limited reader that keeps the float tensor):
        // ONNX Runtime cannot fuse it and runs it in float, so the simulation does too.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8).Output("S", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 3, 3, 3 }).Weight("W2", new long[] { 4, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", new[] { "C" }, new[] { "R" })
            .Node("Sqrt", new[] { "R" }, new[] { "S" })
            .Node("Conv", new[] { "R", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(16, 192), 192), "Y");

        var first = run.SimulatedModel.Graph.Node.First(n => n.OpType == "Conv");
        var values = MLNet.Quantization.Onnx.Tensors.ReadFloats(run.SimulatedModel.FindInitializer(first.Input[1])!);
        Assert.IsTrue(values.Any(v => v != MathF.Round(v)), "the unfused Conv reads dequantized weights");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= 1.01 * run.Scale("R") * 4, "simulated and int8 stay close");
    }
}
