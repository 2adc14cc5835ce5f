using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests.Realize;

/// <summary>
/// The simulated model computes what ONNX Runtime's integer kernels compute: integer accumulation scaled once, so that
/// realized and simulated agree to the last rounding step, not only within one.
/// </summary>
[TestClass]
public sealed class SimulatedEmitterTests
{
    // Four fused 3×3 Convs of 32 channels on 24×24 (288 products per output, 18,432 quantized values per row and
    // layer): every float sum of dequantized products rounds, values near a rounding tie land on the other step, and
    // the following layers carry each such step on to the quantized output.
    private static string ConvChain(TempDirectory directory)
    {
        var model = new TinyModel().Input("X", 1, 32, 24, 24).Output("Y", 1, 32, 24, 24);
        string input = "X";
        for (int i = 1; i <= 4; i++)
        {
            model.Weight($"W{i}", new long[] { 32, 32, 3, 3 }, 0.1f).Weight($"B{i}", new long[] { 32 }, 0.1f)
                .Node("Conv", new[] { input, $"W{i}", $"B{i}" }, new[] { $"C{i}" }, TinyModel.Ints("pads", 1, 1, 1, 1))
                .Node("Relu", new[] { $"C{i}" }, new[] { i == 4 ? "Y" : $"R{i}" });
            input = $"R{i}";
        }
        return model.Save(directory.Path);
    }

    [TestMethod]
    public void FusedConvsAccumulateIntegersAsTheKernelsDoAndAgreeToTheLastStep()
    {
        using var directory = new TempDirectory();
        var run = QuantizedRun.Of(ConvChain(directory), ml => TinyData.X(ml, TinyData.Normal(48, 32 * 576, seed: 5), 32 * 576), "Y");

        var simulated = run.SimulatedModel;
        Assert.AreEqual(0, simulated.Graph.Node.Count(n => n.OpType is "QuantizeLinear" or "DequantizeLinear"), "still float ops only");
        foreach (var conv in simulated.Graph.Node.Where(n => n.OpType == "Conv"))
        {
            var weights = MLNet.Quantization.Onnx.Tensors.ReadFloats(simulated.FindInitializer(conv.Input[1])!);
            Assert.IsTrue(weights.All(v => v == MathF.Round(v) && Math.Abs(v) <= 127), $"Conv '{conv.Name}' reads integer weights");
            // One Mul requantizes the accumulator; another gives the float value, which the calibration passes read.
            var readers = simulated.Consumers(conv.Output[0]);
            Assert.AreEqual(2, readers.Count, $"Conv '{conv.Name}': requantized and scaled, each by one multiply");
            foreach (var reader in readers)
            {
                Assert.AreEqual("Mul", reader.OpType);
                Assert.AreEqual(conv.Output[0], reader.Input[1], "the accumulator is the Mul's second input, so ONNX Runtime folds nothing into the Conv");
            }
        }

        // Y is quantized (the fused Relu): equal outputs mean equal uint8 values after four layers.
        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} quantized output values");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void MatMulsAndGemmsAccumulateIntegersToo()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 4, 64).Output("Y", 4, 16)
            .Weight("M", new long[] { 64, 32 }, 0.2f).Weight("G", new long[] { 32, 16 }, 0.2f).Weight("GB", new long[] { 16 }, 0.1f)
            .Node("MatMul", new[] { "X", "M" }, new[] { "H" })
            .Node("Relu", new[] { "H" }, new[] { "R" })
            .Node("Gemm", new[] { "R", "G", "GB" }, new[] { "Y" })
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(32, 256), 256), "Y");

        foreach (var node in run.SimulatedModel.Graph.Node.Where(n => n.OpType is "MatMul" or "Gemm"))
        {
            var weights = MLNet.Quantization.Onnx.Tensors.ReadFloats(run.SimulatedModel.FindInitializer(node.Input[1])!);
            Assert.IsTrue(weights.All(v => v == MathF.Round(v)), $"{node.OpType} '{node.Name}' reads integer weights");
        }
        float bound = 1e-5f * run.Int8.SelectMany(r => r).Max(MathF.Abs);
        Assert.IsTrue(TinyData.MaxAbsDifference(run.Simulated, run.Int8) <= bound, "realized and simulated agree to float rounding");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
    }

    // An attention's scores: Q = X·Wq and K = X·Wk, then Q·Kᵀ divided by √d (d = 24, not a power of two) and a
    // Softmax. ONNX Runtime runs the quantized Q·Kᵀ as MatMulIntegerToFloat and the division after it; in the simulated
    // model it would fold a float32 Mul by the accumulator's scalar scale, and the division with it, into one alpha.
    [TestMethod]
    public void AnActivationProductFollowedByADivisionRoundsAsTheRealizedModelDoes()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 8, 24).Output("Y", 1, 8, 8)
            .Weight("Wq", new long[] { 24, 24 }, 0.3f).Weight("Wk", new long[] { 24, 24 }, 0.3f)
            .Constant("D", Array.Empty<long>(), new[] { MathF.Sqrt(24) })
            .Node("MatMul", new[] { "X", "Wq" }, new[] { "Q" })
            .Node("MatMul", new[] { "X", "Wk" }, new[] { "K" })
            .Node("Transpose", new[] { "K" }, new[] { "Kt" }, TinyModel.Ints("perm", 0, 2, 1))
            .Node("MatMul", new[] { "Q", "Kt" }, new[] { "S" })
            .Node("Div", new[] { "S", "D" }, new[] { "Z" })
            .Node("Softmax", new[] { "Z" }, new[] { "Y" }, TinyModel.Int("axis", -1))
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(48, 8 * 24, seed: 9), 8 * 24), "Y", perChannel: false);

        Assert.IsTrue(run.SimulatedModel.Graph.Node.Any(n => n.OpType == "MatMul" && n.Input.All(i => i.Contains("fq", StringComparison.Ordinal))),
            "Q·Kᵀ is an activation product in the simulated model");
        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} of {run.Int8.Sum(r => r.Length)} output values");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void AConvWithAFloatBiasKeepsTheFloatFormAndReadsItsWeightsAsTheRealizedModelDoes()
    {
        // A bias of 10⁷ does not fit int32 at the input scale × weight scale, so it stays float in an Add after the Conv:
        // ONNX Runtime then runs the Conv in float on DequantizeLinear outputs. The simulation reads its weights through
        // DequantizeLinear too, so that ONNX Runtime optimizes both alike (a constant float weight would let it fold the
        // Add into the Conv, which sums in another order).
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16, 8, 8).Output("Y", 1, 8, 8, 8)
            .Weight("W", new long[] { 8, 16, 3, 3 }).Weight("B", new long[] { 8 }, 1f, offset: 1e7f)
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "Y" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Save(directory.Path);
        var run = QuantizedRun.Of(model, ml => TinyData.X(ml, TinyData.Normal(16, 1024), 1024), "Y");

        Assert.IsNotNull(run.Table.Find("W", TensorRole.Weight), "the Conv's weight is quantized");
        Assert.AreEqual(2, run.Int8Model.Graph.Node.Single(n => n.OpType == "Conv").Input.Count, "the bias stays float, in an Add after the Conv");
        var conv = run.SimulatedModel.Graph.Node.Single(n => n.OpType == "Conv");
        Assert.AreEqual("DequantizeLinear", run.SimulatedModel.Producer(conv.Input[1])?.OpType,
            "the unfused Conv reads its int8 weights through DequantizeLinear, as in the realized model");
        Assert.IsFalse(run.SimulatedModel.Graph.Node.Any(n => n.OpType == "QuantizeLinear"), "activations are still fake-quantized in float ops");
        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} quantized output values");
    }

    [TestMethod]
    public void ResidualAddsRoundAsTheQLinearAddKernelDoesAndAgreeToTheLastStep()
    {
        // Four residual blocks, R_i = Relu(Conv(R_{i-1}) + R_{i-1}), then a Conv whose float output shows every step of
        // R_4. ONNX Runtime fuses each Add with its quantization into QLinearAdd, which sums q_a · (s_a / s_c) and
        // q_b · (s_b / s_c) in fused multiply-adds; the float form ((q_a − z_a) s_a + (q_b − z_b) s_b) / s_c rounds
        // elsewhere, and values near a tie land one step away.
        using var directory = new TempDirectory();
        var model = new TinyModel().Input("X", 1, 16, 32, 32).Output("Y", 1, 4, 32, 32);
        string input = "X";
        for (int i = 1; i <= 4; i++)
        {
            model.Weight($"W{i}", new long[] { 16, 16, 3, 3 }, 0.1f).Weight($"B{i}", new long[] { 16 }, 0.1f)
                .Node("Conv", new[] { input, $"W{i}", $"B{i}" }, new[] { $"C{i}" }, TinyModel.Ints("pads", 1, 1, 1, 1))
                .Node("Add", new[] { $"C{i}", input }, new[] { $"S{i}" })
                .Node("Relu", new[] { $"S{i}" }, new[] { $"R{i}" });
            input = $"R{i}";
        }
        model.Weight("W5", new long[] { 4, 16, 1, 1 }, 0.3f).Node("Conv", new[] { "R4", "W5" }, new[] { "Y" });
        var run = QuantizedRun.Of(model.Save(directory.Path), ml => TinyData.X(ml, TinyData.Normal(64, 16 * 1024, seed: 7), 16 * 1024), "Y");

        var simulated = run.SimulatedModel;
        int integerAdds = simulated.Graph.Node.Count(n => n.OpType == "Cast" && n.Name.Contains("_qladd", StringComparison.Ordinal)) / 5;
        Assert.AreEqual(4, integerAdds, "every Add in the kernel's form (five Casts to and from float64 each)");
        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} output values");
        Assert.IsTrue(run.MinCosine > 0.99, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void LinearResidualAddsComputeTheKernelsFixedPartInOneFusedMultiplyAdd()
    {
        // Linear bottlenecks as MobileNetV2's, S_i = Conv(S_{i-1}) + S_{i-1} with no Relu: both inputs of each Add are
        // signed, so both have a zero point, and the kernel's F = z_c − (r_a z_a + r_b z_b) depends on how that sum is
        // rounded. ONNX Runtime's x64 build computes it in one fused multiply-add; summed apart, F is one unit in the
        // last place away for some scales, and values near a tie land one step away.
        using var directory = new TempDirectory();
        const int Blocks = 8;
        var model = new TinyModel().Input("X", 1, 16, 32, 32).Output("Y", 1, 4, 32, 32);
        string input = "X";
        for (int i = 1; i <= Blocks; i++)
        {
            model.Weight($"W{i}", new long[] { 16, 16, 1, 1 }, 0.15f).Weight($"B{i}", new long[] { 16 }, 0.1f)
                .Node("Conv", new[] { input, $"W{i}", $"B{i}" }, new[] { $"C{i}" })
                .Node("Add", new[] { $"C{i}", input }, new[] { $"S{i}" });
            input = $"S{i}";
        }
        model.Weight("W0", new long[] { 4, 16, 1, 1 }, 0.3f).Node("Conv", new[] { input, "W0" }, new[] { "Y" });
        // Seed 12: three of the eight Adds have scales where the two roundings of F differ, and 15 output values differ
        // when the simulation sums F apart.
        var run = QuantizedRun.Of(model.Save(directory.Path), ml => TinyData.X(ml, TinyData.Normal(64, 16 * 1024, seed: 12), 16 * 1024), "Y");

        int roundingsDiffer = Enumerable.Range(1, Blocks).Count(i =>
        {
            var (a, b, c) = (run.Table.Find($"C{i}", TensorRole.Activation)!, run.Table.Find(i == 1 ? "X" : $"S{i - 1}", TensorRole.Activation)!,
                run.Table.Find($"S{i}", TensorRole.Activation)!);
            float ra = a.Scale / c.Scale, rb = b.Scale / c.Scale;
            return c.ZeroPoint - (ra * a.ZeroPoint + rb * b.ZeroPoint) != c.ZeroPoint - MathF.FusedMultiplyAdd(ra, a.ZeroPoint, rb * b.ZeroPoint);
        });
        Assert.IsTrue(roundingsDiffer > 0, "the premise: some Add has scales where the two roundings of F differ");
        var simulated = run.SimulatedModel;
        int integerAdds = simulated.Graph.Node.Count(n => n.OpType == "Cast" && n.Name.Contains("_qladd", StringComparison.Ordinal)) / 5;
        Assert.AreEqual(Blocks, integerAdds, "every Add in the kernel's form");
        int differing = run.Simulated.Zip(run.Int8).Sum(p => p.First.Zip(p.Second).Count(v => v.First != v.Second));
        Assert.AreEqual(0, differing, $"realized and simulated differ at {differing} output values");
    }
}
