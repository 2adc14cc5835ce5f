using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

/// <summary>Bad inputs to <c>Fit</c> get a clear exception that names the file, input, column or tensor.</summary>
[TestClass]
public sealed class QuantizingEstimatorBadInputTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static string Mlp(TempDirectory directory, long batch = 1) => new TinyModel()
        .Input("X", batch, 4).Output("Y", batch, 4)
        .Weight("W", new long[] { 4, 8 }).Weight("W2", new long[] { 8, 4 })
        .Node("MatMul", new[] { "X", "W" }, new[] { "H" })
        .Node("Relu", new[] { "H" }, new[] { "R" })
        .Node("MatMul", new[] { "R", "W2" }, new[] { "Y" })
        .Save(directory.Path);

    private static IDataView Rows(int count = 16) => TinyData.X(Ml, TinyData.Normal(count, 4), 4);

    [TestMethod]
    public void AnAlreadyQuantizedModelIsRefusedByName()
    {
        using var directory = new TempDirectory();
        using (var fitted = Ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = Mlp(directory) }).Fit(Rows()))
            fitted.ExportOnnx(directory.File("int8.onnx"));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Ml.Transforms.QuantizeCalibrated(directory.File("int8.onnx")).Fit(Rows()));
        StringAssert.Contains(e.Message, "already quantized");
        StringAssert.Contains(e.Message, "int8.onnx");
    }

    [TestMethod]
    public void EveryWrongShapeDictionaryEntryIsNamed()
    {
        using var directory = new TempDirectory();
        var model = Mlp(directory);
        ArgumentException Refused(string input, params int[] dims) => Assert.ThrowsExactly<ArgumentException>(() =>
            Ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
            {
                CheckDeployment = false, Tuning = null, ModelFile = model, ShapeDictionary = new Dictionary<string, int[]> { [input] = dims },
            }).Fit(Rows()));

        var unknown = Refused("x", 1, 4);
        Assert.AreEqual("ShapeDictionary", unknown.ParamName);
        StringAssert.Contains(unknown.Message, "names no model input. Inputs: X");
        StringAssert.Contains(Refused("X", 1, 2, 2).Message, "rank 3");
        StringAssert.Contains(Refused("X", 0, 4).Message, "not positive");
        StringAssert.Contains(Refused("X", 1, 5).Message, "fixes at 4");
    }

    [TestMethod]
    public void AVariableSizeColumnForAFixedInputIsRefusedAtFit()
    {
        using var directory = new TempDirectory();
        var rows = Ml.Data.LoadFromEnumerable(TinyData.Normal(8, 4).Select(r => new XRow { X = r })); // float[] without a size
        var e = Assert.ThrowsExactly<ArgumentException>(() => Ml.Transforms.QuantizeCalibrated(Mlp(directory)).Fit(rows));
        StringAssert.Contains(e.Message, "Column 'X' is a vector of variable size");
    }

    [TestMethod]
    public void ValuesNearTheFloatLimitGiveFiniteScales()
    {
        using var directory = new TempDirectory();
        var data = TinyData.Normal(16, 4);
        data[0][0] = 3e38f;
        data[1][1] = -3e38f;
        using var fitted = Ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = Mlp(directory) }).Fit(TinyData.X(Ml, data, 4));
        var input = fitted.Calibration.Find("X", TensorRole.Activation)!;
        Assert.IsTrue(float.IsFinite(input.Scale) && input.Scale > 0, input.ToString());
        fitted.ExportOnnx(directory.File("int8.onnx"));
        Assert.AreEqual(fitted.Calibration.Count, CalibrationTable.FromOnnx(directory.File("int8.onnx")).Count, "the table serializes");
    }

    [TestMethod]
    public void TheFallbackNeedsHeldBackRows()
    {
        using var directory = new TempDirectory();
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = Mlp(directory), MinimumOutputCosine = 0.99,
        }).Fit(Rows(3)));
        StringAssert.Contains(e.Message, "at least 5 rows");
    }
    [TestMethod]
    public void AnOpOfAnUnknownDomainThatOnnxRuntimeCannotRunIsNamedWithTheFile()
    {
        using var directory = new TempDirectory();
        var tiny = new TinyModel().Input("X", 1, 4).Output("Y", 1, 4).Weight("W", new long[] { 4, 4 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "H" });
        var custom = MLNet.Quantization.Onnx.OnnxGraph.MakeNode("Frobnicate", "custom_0", new[] { "H" }, new[] { "Y" });
        custom.Domain = "com.example";
        var model = tiny.Node(custom).Save(directory.Path, "custom.onnx");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Ml.Transforms.QuantizeCalibrated(model).Fit(Rows()));
        StringAssert.Contains(e.Message, "custom.onnx");
        StringAssert.Contains(e.Message, "Frobnicate", "ONNX Runtime's reason stays");
        Assert.IsFalse(e.Message.Contains("[ErrorCode", StringComparison.Ordinal) || e.Message.Contains("mlnet-quantized-", StringComparison.Ordinal),
            $"no error-code tag, no temp copy's path: {e.Message}");
        var schema = Assert.ThrowsExactly<InvalidOperationException>(() =>
            Ml.Transforms.QuantizeCalibrated(model).GetOutputSchema(QuantizingEstimatorWorkout.ShapeOf(Rows().Schema)));
        Assert.IsFalse(schema.Message.Contains("[ErrorCode", StringComparison.Ordinal), schema.Message);
    }
    [TestMethod]
    public void AModelThatOnnxRuntimeCannotRunOnTheRowsIsNamedWithItsNodeAndFile()
    {
        using var directory = new TempDirectory();
        // It loads, but its Gather reads index 9 of 8 columns: every run fails, in ONNX Runtime's own words.
        var tiny = new TinyModel().Input("X", 1, 4).Output("Y", 1, 1).Weight("W", new long[] { 4, 8 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "H" });
        tiny.Graph.Initializer.Add(MLNet.Quantization.Onnx.Tensors.FromLongs("index", new long[] { 1 }, new long[] { 9 }));
        var model = tiny.Node("Gather", new[] { "H", "index" }, new[] { "Y" }, TinyModel.Int("axis", 1)).Save(directory.Path, "gather.onnx");
        int before = TempDirectory.ModelFiles().Count;

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Ml.Transforms.QuantizeCalibrated(model).Fit(Rows()));
        StringAssert.Contains(e.Message, "gather.onnx");
        StringAssert.Contains(e.Message, "'Gather_1'");
        Assert.IsFalse(e.Message.Contains("[ErrorCode", StringComparison.Ordinal), e.Message);
        Assert.IsInstanceOfType<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(e.InnerException, "ONNX Runtime's own words stay inside");
        Assert.AreEqual(before, TempDirectory.ModelFiles().Count, "no temp model left behind by the failed Fit");
    }

    [TestMethod]
    public void AnOutputTypeThatMlNetHasNoColumnForIsNamed()
    {
        using var directory = new TempDirectory();
        // ONNX's test_cast_FLOAT_to_BFLOAT16 ends so: ML.NET said only "Unsupported ONNX scalar type: Bfloat16".
        var tiny = new TinyModel().Input("X", 1, 4).TypedOutput("Y", (int)global::Onnx.TensorProto.Types.DataType.Bfloat16, 1, 4)
            .Weight("W", new long[] { 4, 4 }).Node("MatMul", new[] { "X", "W" }, new[] { "H" })
            .Node("Cast", new[] { "H" }, new[] { "Y" }, TinyModel.Int("to", (long)global::Onnx.TensorProto.Types.DataType.Bfloat16));
        var model = tiny.Save(directory.Path, "bf16.onnx");
        int before = TempDirectory.ModelFiles().Count;

        var e = Assert.ThrowsExactly<NotSupportedException>(() => Ml.Transforms.QuantizeCalibrated(model).Fit(Rows()));
        StringAssert.Contains(e.Message, "bf16.onnx");
        StringAssert.Contains(e.Message, "output 'Y' is Bfloat16");
        var schema = Assert.ThrowsExactly<NotSupportedException>(() =>
            Ml.Transforms.QuantizeCalibrated(model).GetOutputSchema(QuantizingEstimatorWorkout.ShapeOf(Rows().Schema)));
        Assert.AreEqual(e.Message, schema.Message, "the schema is refused in the same words");
        Assert.AreEqual(before, TempDirectory.ModelFiles().Count, "no temp model left behind");
    }

    [TestMethod]
    public void ASequenceInputAndAnOptionalOutputAreRefusedByNameAsMlNetCannotFeedOrReadThem()
    {
        using var directory = new TempDirectory();
        // ONNX's test_sequence_map_* take sequences: ML.NET has no column to feed one from.
        var tiny = new TinyModel().Input("X", 1, 4).Output("Y", 1, 4)
            .Weight("W", new long[] { 4, 4 }).Node("MatMul", new[] { "X", "W" }, new[] { "M" })
            .Node("SequenceLength", new[] { "S" }, new[] { "L" })
            .Node("Cast", new[] { "L" }, new[] { "Lf" }, TinyModel.Int("to", MLNet.Quantization.Onnx.Tensors.Float))
            .Node("Add", new[] { "M", "Lf" }, new[] { "Y" });
        tiny.Graph.Input.Add(TinyModel.FloatSequence("S"));
        var model = tiny.Save(directory.Path, "sequence.onnx");

        var e = Assert.ThrowsExactly<NotSupportedException>(() => Ml.Transforms.QuantizeCalibrated(model).Fit(Rows()));
        StringAssert.Contains(e.Message, "sequence.onnx");
        StringAssert.Contains(e.Message, "input 'S' is a sequence, which ML.NET cannot feed");

        // An optional output (opset 15), which ML.NET has no column for either.
        var optional = new TinyModel().Input("X", 1, 4).Output("Y", 1, 4)
            .Weight("W", new long[] { 4, 4 }).Node("MatMul", new[] { "X", "W" }, new[] { "Y" });
        optional.Graph.Output.Add(new global::Onnx.ValueInfoProto
        {
            Name = "O",
            Type = new global::Onnx.TypeProto { OptionalType = new global::Onnx.TypeProto.Types.Optional { ElemType = new global::Onnx.TypeProto { TensorType = new global::Onnx.TypeProto.Types.Tensor { ElemType = MLNet.Quantization.Onnx.Tensors.Float } } } },
        });
        var o = Assert.ThrowsExactly<NotSupportedException>(() => Ml.Transforms.QuantizeCalibrated(optional.Save(directory.Path, "optional.onnx")).Fit(Rows()));
        StringAssert.Contains(o.Message, "output 'O' is an optional, which ML.NET cannot read");
    }

    [TestMethod]
    public void AModelWithNothingToQuantizePassesThroughEvenWhereTheOpsetCannotBeRaised()
    {
        using var directory = new TempDirectory();
        // Upsample was deprecated in opset 10: it cannot move to 13, and nothing here is quantized anyway.
        var model = new TinyModel(opset: 9).Input("X", 1, 1, 2, 2).Output("Y", 1, 1, 4, 4)
            .Constant("scales", new long[] { 4 }, new[] { 1f, 1f, 2f, 2f })
            .Node("Upsample", new[] { "X", "scales" }, new[] { "Y" })
            .Save(directory.Path, "upsample.onnx");
        var rows = TinyData.X(Ml, TinyData.Normal(4, 4), 4);
        using var fitted = Ml.Transforms.QuantizeCalibrated(model).Fit(rows);
        Assert.AreEqual(0, fitted.Calibration.Count, "an empty table");
        var expected = TinyData.Column(Ml.Transforms.ApplyOnnxModel(model).Fit(rows).Transform(rows), "Y");
        var actual = TinyData.Column(fitted.Transform(rows), "Y");
        for (int r = 0; r < expected.Length; r++) CollectionAssert.AreEqual(expected[r], actual[r]);
        fitted.ExportOnnx(directory.File("out.onnx"));
        Assert.AreEqual(9L, MLNet.Quantization.Onnx.OnnxGraph.Load(directory.File("out.onnx")).Opset, "the opset stays");
    }
    [TestMethod]
    public void ExternalDataIsReadInAndAMissingFileIsNamed()
    {
        using var directory = new TempDirectory();
        var path = Mlp(directory);
        var model = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var w = model.Graph.Initializer.Single(i => i.Name == "W");
        File.WriteAllBytes(directory.File("weights.bin"), new byte[16].Concat(w.RawData.ToByteArray()).ToArray());
        w.RawData = Google.Protobuf.ByteString.Empty;
        w.DataLocation = global::Onnx.TensorProto.Types.DataLocation.External;
        w.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "location", Value = "weights.bin" });
        w.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "offset", Value = "16" });
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));

        var rows = Rows();
        var expected = TinyData.Column(Ml.Transforms.ApplyOnnxModel(path).Fit(rows).Transform(rows), "Y");
        using (var fitted = Ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = path }).Fit(rows))
        {
            Assert.IsNotNull(fitted.Calibration.Find("W", TensorRole.Weight));
            var actual = TinyData.Column(fitted.Transform(rows), "Y");
            Assert.IsTrue(expected.Zip(actual, TinyData.Cosine).Min() > 0.99);
        }
        File.Delete(directory.File("weights.bin"));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Ml.Transforms.QuantizeCalibrated(path).Fit(rows));
        StringAssert.Contains(e.Message, "weights.bin");
        StringAssert.Contains(e.Message, "'W'");
    }
}
