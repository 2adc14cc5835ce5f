using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Tests.Annotate;

/// <summary>Graph shapes found in the wild: integer inputs, dynamic lengths, subgraphs, exclusions.</summary>
[TestClass]
public sealed class AnnotatorTests
{
    public sealed class TokenRow
    {
        [VectorType]
        public long[] ids { get; set; } = Array.Empty<long>();

        [VectorType]
        public bool[] mask { get; set; } = Array.Empty<bool>();
    }

    [TestMethod]
    public void IntegerAndBoolInputsPassThroughAndSequencesMayDifferInLength()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel()
            .TypedInput("ids", Tensors.Int64, 1, -1).TypedInput("mask", (int)TensorProto.Types.DataType.Bool, 1, -1)
            .DynamicOutput("Y", 1, -1, 3)
            .Weight("E", new long[] { 10, 8 }).Weight("B", new long[] { 8, 3 })
            .Node("Gather", new[] { "E", "ids" }, new[] { "G" })
            .Node("Cast", new[] { "mask" }, new[] { "M" }, TinyModel.Int("to", Tensors.Float))
            .Node("Unsqueeze", new[] { "M", "axes" }, new[] { "M3" })
            .Node("Mul", new[] { "G", "M3" }, new[] { "GM" })
            .Node("MatMul", new[] { "GM", "B" }, new[] { "Y" });
        model.Graph.Initializer.Add(Tensors.FromLongs("axes", new long[] { 1 }, new long[] { 2 }));
        var path = model.Save(directory.Path);
        var random = new Random(3);
        var rows = Enumerable.Range(0, 24).Select(i =>
        {
            int length = 3 + i % 5;
            return new TokenRow
            {
                ids = Enumerable.Range(0, length).Select(_ => (long)random.Next(10)).ToArray(),
                mask = Enumerable.Range(0, length).Select(k => k < length - 1).ToArray(),
            };
        }).ToArray();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);

        using var int8 = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = path }).Fit(data);
        var expected = ml.Transforms.ApplyOnnxModel(path).Fit(data).Transform(data).GetColumn<float[]>("Y").ToArray();
        var actual = int8.Transform(data).GetColumn<float[]>("Y").ToArray();

        Assert.IsNull(int8.Calibration.Find("ids", TensorRole.Activation), "int64 inputs are never quantized");
        Assert.IsNull(int8.Calibration.Find("mask", TensorRole.Activation));
        Assert.IsNotNull(int8.Calibration.Find("GM", TensorRole.Activation));
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.AreEqual(rows[i].ids.Length * 3, actual[i].Length, "each row keeps its own length");
            Assert.IsTrue(TinyData.Cosine(expected[i], actual[i]) > 0.999, $"row {i}");
        }
    }

    [TestMethod]
    public void AnIfSubgraphStaysFloatAndStillReadsTheOuterTensor()
    {
        using var directory = new TempDirectory();
        GraphProto Branch(string name, string op)
        {
            var g = new GraphProto { Name = name };
            g.Node.Add(OnnxGraph.MakeNode(op, name + "_op", new[] { "C" }, new[] { name + "_out" }));
            g.Output.Add(TinyModel.FloatValue(name + "_out", 1, 2, 3, 3));
            return g;
        }
        var @if = OnnxGraph.MakeNode("If", "branch", new[] { "positive" }, new[] { "Y" });
        @if.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("then", "Relu") });
        @if.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("else", "Neg") });
        var path = new TinyModel().Input("X", 1, 2, 3, 3).Output("Y", 1, 2, 3, 3)
            .Weight("W", new long[] { 2, 2, 1, 1 }).Constant("zero", Array.Empty<long>(), new[] { 0f })
            .Node("Conv", new[] { "X", "W" }, new[] { "C" })
            .Node("ReduceMean", new[] { "X" }, new[] { "S" }, TinyModel.Int("keepdims", 0))
            .Node("Greater", new[] { "S", "zero" }, new[] { "positive" })
            .Node(@if)
            .Save(directory.Path);
        var run = QuantizedRun.Of(path, ml => TinyData.X(ml, TinyData.Normal(16, 18, seed: 4), 18), "Y");

        var branch = run.Int8Model.Graph.Node.Single(n => n.OpType == "If");
        Assert.IsTrue(branch.Attribute.All(a => a.G.Node.All(n => n.OpType is "Relu" or "Neg")), "the branches are untouched");
        Assert.IsTrue(run.MinCosine > 0.999, $"int8 vs float cosine {run.MinCosine}");
    }

    [TestMethod]
    public void ExcludedNodesAndOpTypesStayFloat()
    {
        using var directory = new TempDirectory();
        var path = new TinyModel().Input("X", 1, 2, 3, 3).Output("Y", 1, 2, 3, 3)
            .Weight("W1", new long[] { 2, 2, 1, 1 }).Weight("W2", new long[] { 2, 2, 1, 1 })
            .Node("Conv", new[] { "X", "W1" }, new[] { "A" })
            .Node("Conv", new[] { "A", "W2" }, new[] { "Y" })
            .Save(directory.Path);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(8, 18), 18);
        QuantizingTransformer Fit(string[]? nodes, string[]? types) => ml.Transforms.QuantizeCalibrated(
            new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = path, ExcludeNodes = nodes, ExcludeOpTypes = types }).Fit(rows);

        using (var one = Fit(new[] { "Conv_1" }, null))
        {
            Assert.IsNotNull(one.Calibration.Find("W1", TensorRole.Weight));
            Assert.IsNull(one.Calibration.Find("W2", TensorRole.Weight), "Conv_1 stays float");
        }
        using (var none = Fit(null, new[] { "Conv" }))
            Assert.AreEqual(0, none.Calibration.Count);

        var node = Assert.ThrowsExactly<ArgumentException>(() => Fit(new[] { "conv_l" }, null));
        StringAssert.Contains(node.Message, "'conv_l'");
        StringAssert.Contains(node.Message, "'Conv_1'");
        Assert.AreEqual("ExcludeNodes", node.ParamName);
        var type = Assert.ThrowsExactly<ArgumentException>(() => Fit(null, new[] { "Cnv" }));
        StringAssert.Contains(type.Message, "Closest op types: 'Conv'");
    }
}
