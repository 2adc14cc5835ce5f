using Google.Protobuf;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;
using Onnx;

namespace MLNet.Quantization.Tests.Onnx;

/// <summary>
/// float16 models, which ML.NET cannot run: weights in float16 behind Casts (an fp16-weight export), and float16
/// inputs and outputs. Both are accepted, calibrated in float32, and run through ML.NET with float32 columns.
/// </summary>
[TestClass]
public sealed class Float16ConversionTests
{
    private const int Size = 16, Outputs = 8, Rows = 32;
    private const int Half = (int)TensorProto.Types.DataType.Float16;

    private static float[] Weights() => TinyData.Normal(1, Size * Outputs, seed: 21)[0].Select(v => (float)(Half)(0.3f * v)).ToArray();

    private static TensorProto HalfTensor(string name, long[] dims, float[] values, bool raw)
    {
        var t = new TensorProto { Name = name, DataType = Half };
        t.Dims.AddRange(dims);
        var bits = values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray();
        if (raw) t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()));
        else t.Int32Data.AddRange(bits.Select(b => (int)b));
        return t;
    }

    // X (float16 or float) → [Cast to float16] → MatMul with float16 W (raw_data) → Add float16 bias from a Constant
    // (int32_data) → [Cast to float] → Y.
    private static string Model(TempDirectory directory, bool halfInterface)
    {
        var tiny = halfInterface
            ? new TinyModel().TypedInput("X", Half, 1, Size)
            : new TinyModel().Input("X", 1, Size);
        if (halfInterface) tiny.Graph.Output.Add(HalfValue("Y", 1, Outputs));
        else tiny.Output("Y", 1, Outputs);
        tiny.Graph.Initializer.Add(HalfTensor("W", new long[] { Size, Outputs }, Weights(), raw: true));
        var bias = OnnxGraph.MakeNode("Constant", "bias", Array.Empty<string>(), new[] { "B" });
        bias.Attribute.Add(new AttributeProto
        {
            Name = "value", Type = AttributeProto.Types.AttributeType.Tensor,
            T = HalfTensor("B", new long[] { Outputs }, Enumerable.Range(0, Outputs).Select(i => 0.25f * i).ToArray(), raw: false),
        });
        tiny.Graph.Node.Add(bias);
        string x = "X", y = "Y";
        if (!halfInterface)
        {
            tiny.Node("Cast", new[] { "X" }, new[] { "Xh" }, TinyModel.Int("to", Half));
            x = "Xh";
            y = "Yh";
        }
        tiny.Node("MatMul", new[] { x, "W" }, new[] { "M" }).Node("Add", new[] { "M", "B" }, new[] { y });
        if (!halfInterface) tiny.Node("Cast", new[] { "Yh" }, new[] { "Y" }, TinyModel.Int("to", Tensors.Float));
        return tiny.Save(directory.Path, halfInterface ? "half-io.onnx" : "half-weights.onnx");
    }

    private static ValueInfoProto HalfValue(string name, params long[] dims)
    {
        var value = TinyModel.FloatValue(name, dims);
        value.Type.TensorType.ElemType = Half;
        return value;
    }

    // The float32 function of the model: X · W + b, with the float16 values of W and b.
    private static float[][] Expected(float[][] x)
    {
        var w = Weights();
        return x.Select(row => Enumerable.Range(0, Outputs).Select(o =>
            (float)(Half)(Enumerable.Range(0, Size).Sum(i => row[i] * w[i * Outputs + o]) + 0.25f * o)).ToArray()).ToArray();
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void AFloat16ModelQuantizesAndRunsThroughMlNetInFloat32(bool halfInterface)
    {
        using var directory = new TempDirectory();
        var path = Model(directory, halfInterface);
        var ml = new MLContext(seed: 1);
        var x = TinyData.Normal(Rows, Size, seed: 4);
        var rows = TinyData.X(ml, x, Size);
        var estimator = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = path, CheckDeployment = false, Tuning = null });

        var schema = estimator.GetOutputSchema(QuantizingEstimatorWorkout.ShapeOf(rows.Schema));
        var column = schema.Single(c => c.Name == "Y");
        Assert.AreEqual(NumberDataViewType.Single, column.ItemType, "Y is a float32 column");
        using var model = estimator.Fit(rows);

        Assert.AreEqual(TensorRole.Weight, model.Calibration.Find("W", TensorRole.Weight)?.Role, "the float16 weight is quantized");
        var output = TinyData.Column(model.Transform(rows), "Y");
        double worst = Expected(x).Zip(output, TinyData.Cosine).Min();
        Assert.IsTrue(worst > 0.99, $"int8 against the float16 model's function: worst cosine {worst}");
        using var checkedModel = ml.Transforms.QuantizeCalibrated(path).Fit(rows);
        var conversions = checkedModel.Deployment!.Conversions;
        if (halfInterface)
        {
            Assert.IsTrue(conversions.Any(c => c.Contains("input 'X'") && c.Contains("float16")), string.Join("; ", conversions));
            Assert.IsTrue(conversions.Any(c => c.Contains("output 'Y'")), string.Join("; ", conversions));
        }
        else
        {
            Assert.IsFalse(conversions.Any(c => c.Contains("input") || c.Contains("output")), "float inputs and outputs stay as they are");
        }
        Assert.IsTrue(conversions.Any(c => c.Contains("2 float16 constants")), string.Join("; ", conversions));
    }

    [TestMethod]
    public void TheConversionIsExactAndLeavesNoFloat16Behind()
    {
        using var directory = new TempDirectory();
        var graph = OnnxGraph.Load(Model(directory, halfInterface: true));

        var notes = Float16Conversion.Convert(graph);

        Assert.AreEqual(3, notes.Count, string.Join("; ", notes));
        Assert.IsFalse(graph.Graph.Input.Concat(graph.Graph.Output).Any(v => v.Type.TensorType.ElemType == Half), "no float16 input or output left");
        CollectionAssert.AreEqual(Weights(), Tensors.ReadFloats(graph.FindInitializer("W")!), "every half is a float");
        var bias = graph.Graph.Node.Single(n => n.OpType == "Constant").Attribute[0].T;
        CollectionAssert.AreEqual(Enumerable.Range(0, Outputs).Select(i => 0.25f * i).ToArray(), Tensors.ReadFloats(bias));
        Assert.AreEqual(0, Float16Conversion.Convert(graph).Count, "a float32 model is left as it is");
    }
}
