using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Onnx;

namespace MLNet.Quantization.Tests;

/// <summary>
/// Every elementwise op of the default domain that takes a float tensor, between two quantized Convs, at opset 13 and
/// at opset 9 where it exists there: Fit in both modes, score, and compare with the float model.
/// </summary>
[TestClass]
public sealed class RobustnessTests
{
    private sealed record Op(string Type, int Since, bool Smooth = true, Func<TinyModel, string, string, TinyModel>? Build = null);

    private static TinyModel Unary(TinyModel m, string type, string input, string output, params AttributeProto[] attributes) =>
        m.Node(type, new[] { input }, new[] { output }, attributes);

    private static readonly Op[] Ops =
    {
        new("Abs", 6), new("Neg", 6), new("Exp", 6), new("Log", 6), new("Sqrt", 6), new("Reciprocal", 6),
        new("Floor", 6, Smooth: false), new("Ceil", 6, Smooth: false), new("Relu", 6), new("Sigmoid", 6), new("Tanh", 6),
        new("Elu", 6), new("Selu", 6), new("HardSigmoid", 6), new("LeakyRelu", 6), new("Softplus", 1), new("Softsign", 1),
        new("Sin", 7), new("Cos", 7), new("Tan", 7, Smooth: false), new("Asin", 7), new("Acos", 7), new("Atan", 7),
        new("Sinh", 9), new("Cosh", 9), new("Asinh", 9), new("Acosh", 9), new("Atanh", 9), new("Erf", 9),
        new("Sign", 9, Smooth: false), new("Round", 11, Smooth: false), new("Shrink", 9, Smooth: false),
        new("ThresholdedRelu", 10, Smooth: false), new("Celu", 12), new("Identity", 1), new("Dropout", 1),
        new("Softmax", 1), new("LogSoftmax", 1), new("Hardmax", 1, Smooth: false),
        new("Clip", 11, Build: (m, i, o) => m.Constant("lo", Array.Empty<long>(), new[] { -0.5f }).Constant("hi", Array.Empty<long>(), new[] { 0.5f })
            .Node("Clip", new[] { i, "lo", "hi" }, new[] { o })),
        new("PRelu", 9, Build: (m, i, o) => m.Constant("slope", new long[] { 4, 1, 1 }, new[] { 0.1f, 0.2f, 0.3f, 0.4f }).Node("PRelu", new[] { i, "slope" }, new[] { o })),
        new("Add", 7, Build: (m, i, o) => m.Node("Add", new[] { i, i }, new[] { o })),
        new("Sub", 7, Build: (m, i, o) => m.Constant("half", Array.Empty<long>(), new[] { 0.5f }).Node("Sub", new[] { i, "half" }, new[] { o })),
        new("Mul", 7, Build: (m, i, o) => m.Node("Mul", new[] { i, i }, new[] { o })),
        new("Div", 7, Build: (m, i, o) => m.Constant("two", Array.Empty<long>(), new[] { 2f }).Node("Div", new[] { "two", i }, new[] { o })),
        new("Pow", 7, Build: (m, i, o) => m.Constant("p", Array.Empty<long>(), new[] { 0.5f }).Node("Pow", new[] { i, "p" }, new[] { o })),
        new("Max", 8, Build: (m, i, o) => m.Node("Max", new[] { i, i }, new[] { o })),
        new("Min", 8, Build: (m, i, o) => m.Node("Min", new[] { i, i }, new[] { o })),
        new("Mean", 8, Build: (m, i, o) => m.Node("Mean", new[] { i, i }, new[] { o })),
        new("Sum", 8, Build: (m, i, o) => m.Node("Sum", new[] { i, i }, new[] { o })),
    };

    // Ops that change the shape: they end the graph, Conv → op → Y, with Y's dimensions left dynamic.
    private static readonly (string Type, Func<TinyModel, TinyModel> Build)[] TailOps =
    {
        ("ReduceMean", m => m.Node("ReduceMean", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 2, 3))),
        ("ReduceMax", m => m.Node("ReduceMax", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceMin", m => m.Node("ReduceMin", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceSum", m => m.Node("ReduceSum", new[] { "C" }, new[] { "Y" })), // no axes: over all of them
        ("ReduceProd", m => m.Node("ReduceProd", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceL1", m => m.Node("ReduceL1", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceL2", m => m.Node("ReduceL2", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceLogSumExp", m => m.Node("ReduceLogSumExp", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("ReduceSumSquare", m => m.Node("ReduceSumSquare", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("axes", 1))),
        ("GlobalAveragePool", m => m.Node("GlobalAveragePool", new[] { "C" }, new[] { "Y" })),
        ("GlobalMaxPool", m => m.Node("GlobalMaxPool", new[] { "C" }, new[] { "Y" })),
        ("MaxPool", m => m.Node("MaxPool", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("kernel_shape", 2, 2), TinyModel.Ints("strides", 2, 2))),
        ("AveragePool", m => m.Node("AveragePool", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("kernel_shape", 2, 2))),
        ("LpPool", m => m.Node("LpPool", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("kernel_shape", 2, 2))),
        ("Flatten", m => m.Node("Flatten", new[] { "C" }, new[] { "Y" })),
        ("Transpose", m => m.Node("Transpose", new[] { "C" }, new[] { "Y" }, TinyModel.Ints("perm", 0, 2, 3, 1))),
        ("Concat", m => m.Node("Concat", new[] { "C", "C" }, new[] { "Y" }, TinyModel.Int("axis", 1))),
        ("DepthToSpace", m => m.Node("DepthToSpace", new[] { "C" }, new[] { "Y" }, TinyModel.Int("blocksize", 2))),
        ("SpaceToDepth", m => m.Node("SpaceToDepth", new[] { "C" }, new[] { "Y" }, TinyModel.Int("blocksize", 2))),
        ("InstanceNormalization", m => m.Weight("scale", new long[] { 4 }, 0.2f, 1f).Weight("bias", new long[] { 4 })
            .Node("InstanceNormalization", new[] { "C", "scale", "bias" }, new[] { "Y" })),
        ("LRN", m => m.Node("LRN", new[] { "C" }, new[] { "Y" }, TinyModel.Int("size", 3))),
        ("MeanVarianceNormalization", m => m.Node("MeanVarianceNormalization", new[] { "C" }, new[] { "Y" })),
        ("LpNormalization", m => m.Node("LpNormalization", new[] { "C" }, new[] { "Y" })),
        ("BatchNormalization", m => m.Weight("g", new long[] { 4 }, 0.2f, 1f).Weight("b", new long[] { 4 }).Weight("mu", new long[] { 4 })
            .Weight("v", new long[] { 4 }, 0.2f, 1f).Node("Relu", new[] { "C" }, new[] { "R" })
            .Node("BatchNormalization", new[] { "R", "g", "b", "mu", "v" }, new[] { "Y" })),
        ("Pad", m => m.Constant("pads", new long[] { 8 }, new[] { 0f, 0, 1, 1, 0, 0, 1, 1 }).Node("Cast", new[] { "pads" }, new[] { "pads64" }, TinyModel.Int("to", 7))
            .Node("Pad", new[] { "C", "pads64" }, new[] { "Y" })),
        ("Tile", m => m.Constant("reps", new long[] { 4 }, new[] { 1f, 1, 2, 1 }).Node("Cast", new[] { "reps" }, new[] { "reps64" }, TinyModel.Int("to", 7))
            .Node("Tile", new[] { "C", "reps64" }, new[] { "Y" })),
        ("Slice", m => m.Constant("s", new long[] { 1 }, new[] { 1f }).Constant("e", new long[] { 1 }, new[] { 3f }).Constant("a", new long[] { 1 }, new[] { 2f })
            .Node("Cast", new[] { "s" }, new[] { "s64" }, TinyModel.Int("to", 7)).Node("Cast", new[] { "e" }, new[] { "e64" }, TinyModel.Int("to", 7))
            .Node("Cast", new[] { "a" }, new[] { "a64" }, TinyModel.Int("to", 7)).Node("Slice", new[] { "C", "s64", "e64", "a64" }, new[] { "Y" })),
        ("CumSum", m => m.Constant("ax", Array.Empty<long>(), new[] { 1f }).Node("Cast", new[] { "ax" }, new[] { "ax64" }, TinyModel.Int("to", 7))
            .Node("CumSum", new[] { "C", "ax64" }, new[] { "Y" })),
        ("Einsum", m => m.Node("Einsum", new[] { "C", "C" }, new[] { "Y" }, new AttributeProto { Name = "equation", Type = AttributeProto.Types.AttributeType.String,
            S = Google.Protobuf.ByteString.CopyFromUtf8("nchw,nchw->nc") })),
        ("MatMul of two activations", m => m.Node("Transpose", new[] { "C" }, new[] { "T" }, TinyModel.Ints("perm", 0, 1, 3, 2)).Node("MatMul", new[] { "C", "T" }, new[] { "Y" })),
        ("ConvTranspose", m => m.Weight("WT", new long[] { 4, 2, 2, 2 }).Node("ConvTranspose", new[] { "C", "WT" }, new[] { "Y" }, TinyModel.Ints("strides", 2, 2))),
        ("Resize", m => m.Constant("roi", new long[] { 0 }, Array.Empty<float>()).Constant("scales", new long[] { 4 }, new[] { 1f, 1f, 2f, 2f })
            .Node("Resize", new[] { "C", "roi", "scales" }, new[] { "Y" })),
        ("Gemm", m => m.Weight("G", new long[] { 64, 6 }).Node("Flatten", new[] { "C" }, new[] { "F" }).Node("Gemm", new[] { "F", "G" }, new[] { "Y" })),
        ("TopK", m => m.Constant("k", new long[] { 1 }, new[] { 2f }).Node("Cast", new[] { "k" }, new[] { "k64" }, TinyModel.Int("to", 7))
            .Node("TopK", new[] { "C", "k64" }, new[] { "Y", "TopKIndices" })),
        ("Expand", m => m.Constant("shape", new long[] { 4 }, new[] { 2f, 4, 4, 4 }).Node("Cast", new[] { "shape" }, new[] { "shape64" }, TinyModel.Int("to", 7))
            .Node("Expand", new[] { "C", "shape64" }, new[] { "Y" })),
        ("Where", m => m.Constant("zero", Array.Empty<long>(), new[] { 0f }).Node("Greater", new[] { "C", "zero" }, new[] { "positive" })
            .Node("Where", new[] { "positive", "C", "zero" }, new[] { "Y" })),
        ("GRU", m => m.Weight("Wg", new long[] { 1, 9, 16 }).Weight("Rg", new long[] { 1, 9, 3 })
            .Constant("shape3", new long[] { 3 }, new[] { 4f, 1, 16 }).Node("Cast", new[] { "shape3" }, new[] { "shape3_64" }, TinyModel.Int("to", 7))
            .Node("Reshape", new[] { "C", "shape3_64" }, new[] { "sequence" })
            .Node("GRU", new[] { "sequence", "Wg", "Rg" }, new[] { "Y" }, TinyModel.Int("hidden_size", 3))),
    };

    [TestMethod]
    public void EveryShapeChangingFloatOpAtTheEndOfAGraphQuantizesBeforeItOrPassesThrough()
    {
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(16, 48), 48);
        var failures = new List<string>();
        using var directory = new TempDirectory();
        foreach (var (type, build) in TailOps)
        {
            var file = build(new TinyModel().Input("X", 1, 3, 4, 4).DynamicOutput("Y", -1, -1, -1, -1)
                .Weight("W", new long[] { 4, 3, 1, 1 }).Node("Conv", new[] { "X", "W" }, new[] { "C" })).Save(directory.Path, $"{type}.onnx");
            if (type is "Flatten") FixRank(file, 2);
            if (type.StartsWith("Reduce") || type is "Einsum" or "Gemm") FixRank(file, type is "Einsum" or "Gemm" ? 2 : 4);
            if (type is "TopK") AddOutput(file, "TopKIndices");
            var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(file).Fit(rows).Transform(rows), "Y");
            foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
            {
                try
                {
                    using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = file, Mode = mode, Tuning = null }).Fit(rows);
                    var output = TinyData.Column(fitted.Transform(rows), "Y");
                    double worst = reference.Zip(output, (a, b) => a.All(float.IsFinite) && b.All(float.IsFinite) && a.Any(v => v != 0) ? TinyData.Cosine(a, b) : 1).Min();
                    if (reference.Zip(output).Any(p => p.First.Zip(p.Second).Any(v => float.IsFinite(v.First) && !float.IsFinite(v.Second))))
                        failures.Add($"{type} {mode}: non-finite output where float is finite");
                    if (worst < 0.98) failures.Add($"{type} {mode}: worst row cosine {worst:F4}");
                }
                catch (Exception e)
                {
                    failures.Add($"{type} {mode}: {e.GetType().Name}: {e.Message}");
                }
            }
        }
        Console.WriteLine($"Robustness, shape-changing ops: {TailOps.Length} models, {failures.Count} failures");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Take(30)));
    }

    // Declares a second graph output (an op's extra output, so that no node output dangles).
    private static void AddOutput(string file, string name)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(file));
        var value = model.Graph.Output[0].Clone();
        value.Name = name;
        value.Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Int64;
        model.Graph.Output.Add(value);
        File.WriteAllBytes(file, Google.Protobuf.MessageExtensions.ToByteArray(model));
    }

    // Declares Y with the rank the op gives (its dimensions stay dynamic).
    private static void FixRank(string file, int rank)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(file));
        var shape = model.Graph.Output[0].Type.TensorType.Shape;
        while (shape.Dim.Count > rank) shape.Dim.RemoveAt(shape.Dim.Count - 1);
        File.WriteAllBytes(file, Google.Protobuf.MessageExtensions.ToByteArray(model));
    }

    private static string Model(TempDirectory directory, Op op, long opset)
    {
        var m = new TinyModel(opset: opset).Input("X", 1, 3, 4, 4).Output("Y", 1, 4, 4, 4)
            .Weight("W", new long[] { 4, 3, 1, 1 }).Weight("W2", new long[] { 4, 4, 1, 1 })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" });
        m = op.Build is null
            ? Unary(m, op.Type, "C", "O", op.Type is "Softmax" or "LogSoftmax" or "Hardmax" && opset < 13 ? new[] { TinyModel.Int("axis", 1) } : Array.Empty<AttributeProto>())
            : op.Build(m, "C", "O");
        return m.Node("Conv", new[] { "O", "W2" }, new[] { "Y" }).Save(directory.Path, $"{op.Type}-{opset}.onnx");
    }

    [TestMethod]
    public void EveryElementwiseFloatOpQuantizesAroundItOrPassesThrough()
    {
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(24, 48), 48);
        var failures = new List<string>();
        int tried = 0, quantized = 0, passedThrough = 0;
        using var directory = new TempDirectory();
        foreach (var op in Ops)
            foreach (long opset in new long[] { 13, 9 }.Where(v => v >= op.Since).Distinct())
            {
                tried++;
                var file = Model(directory, op, opset);
                var reference = TinyData.Column(ml.Transforms.ApplyOnnxModel(file).Fit(rows).Transform(rows), "Y");
                foreach (var mode in new[] { QuantizationMode.Int8, QuantizationMode.Simulated })
                {
                    string where = $"{op.Type} at opset {opset}, {mode}";
                    try
                    {
                        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = file, Mode = mode, Tuning = null }).Fit(rows);
                        var output = TinyData.Column(fitted.Transform(rows), "Y");
                        if (mode == QuantizationMode.Int8)
                        {
                            if (fitted.Calibration.Any(c => c.Node.StartsWith(op.Type, StringComparison.Ordinal))) quantized++;
                            else passedThrough++;
                        }
                        double worst = 1;
                        bool nonFinite = false;
                        for (int r = 0; r < reference.Length; r++)
                        {
                            var finite = Enumerable.Range(0, reference[r].Length).Where(i => float.IsFinite(reference[r][i])).ToArray();
                            nonFinite |= finite.Any(i => !float.IsFinite(output[r][i]));
                            var a = finite.Select(i => reference[r][i]).ToArray();
                            var b = finite.Select(i => output[r][i]).ToArray();
                            if (a.Any(v => v != 0) && b.All(float.IsFinite)) worst = Math.Min(worst, TinyData.Cosine(a, b));
                        }
                        if (nonFinite) failures.Add($"{where}: non-finite output where float is finite");
                        if (op.Smooth && worst < 0.98) failures.Add($"{where}: worst row cosine to float {worst:F4}");
                    }
                    catch (Exception e) when (e is NullReferenceException or IndexOutOfRangeException or KeyNotFoundException
                        or Microsoft.ML.OnnxRuntime.OnnxRuntimeException or InvalidCastException)
                    {
                        failures.Add($"{where}: internal exception {e.GetType().Name}: {e.Message}");
                    }
                    catch (Exception e)
                    {
                        failures.Add($"{where}: refused with {e.GetType().Name}: {e.Message}");
                    }
                }
            }
        Console.WriteLine($"Robustness: {tried} models, {quantized} with the op itself quantized, {passedThrough} with it passed through in float, {failures.Count} failures");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Distinct().Take(30)));
    }
}
