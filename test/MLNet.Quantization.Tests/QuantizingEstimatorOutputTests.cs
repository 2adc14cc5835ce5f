using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests;

/// <summary><c>OutputColumnNames</c>: only the outputs asked for are quantized for, compared and computed.</summary>
[TestClass]
public sealed class QuantizingEstimatorOutputTests
{
    // Y = Relu(X·W1), and Z = X·W2 on a branch that only Z reads.
    private static string TwoBranches(TempDirectory directory) => new TinyModel().Input("X", 1, 16).Output("Y", 1, 8).Output("Z", 1, 8)
        .Weight("W1", new long[] { 16, 8 }).Weight("W2", new long[] { 16, 8 })
        .Node("MatMul", new[] { "X", "W1" }, new[] { "A" })
        .Node("Relu", new[] { "A" }, new[] { "Y" })
        .Node("MatMul", new[] { "X", "W2" }, new[] { "Z" })
        .Save(directory.Path);

    [TestMethod]
    public void OnlyTheOutputsAskedForAreQuantizedComparedAndComputed()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.Normal(40, 16);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = TwoBranches(directory), OutputColumnNames = new[] { "Y" }, MinimumSpeedup = 0, // a tiny model is kept int8 whatever its speed
        }).Fit(TinyData.X(ml, rows, 16));

        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor.StartsWith("W1", StringComparison.Ordinal)), "the branch asked for is quantized");
        Assert.IsFalse(fitted.Calibration.Any(c => c.Tensor.StartsWith("W2", StringComparison.Ordinal)), "the other branch is not");
        CollectionAssert.AreEqual(new[] { "Y" }, fitted.Deployment!.Outputs.Select(o => o.Name).ToArray(), "only Y is compared");
        Assert.AreEqual(1, fitted.Tuning!.Objective.Split(':').Length - 1, fitted.Tuning.Objective);

        fitted.ExportOnnx(directory.File("int8.onnx"));
        var exported = OnnxGraph.Load(directory.File("int8.onnx"));
        CollectionAssert.AreEqual(new[] { "Y" }, exported.Graph.Output.Select(o => o.Name).ToArray());
        Assert.IsFalse(exported.Graph.Initializer.Any(i => i.Name.StartsWith("W2", StringComparison.Ordinal)), "Z's weights are gone");
        CollectionAssert.AreEqual(new[] { "X" }, exported.Graph.Input.Select(i => i.Name).ToArray());

        var scored = TinyData.Column(fitted.Transform(TinyData.X(ml, rows, 16)), "Y");
        Assert.AreEqual(rows.Length, scored.Length);
        Assert.IsTrue(scored.Zip(rows).All(p => TinyData.Cosine(p.First, Relu(p.Second, directory)) > 0.99), "Y is still Relu(X·W1)");
    }

    [TestMethod]
    public void AFloatModelReturnedForSpeedKeepsOnlyTheOutputsAskedFor()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = TwoBranches(directory), OutputColumnNames = new[] { "Y" }, MinimumSpeedup = 1000, // no int8 model is that fast
        }).Fit(TinyData.X(ml, TinyData.Normal(40, 16), 16));
        Assert.IsTrue(fitted.Deployment!.KeptFloat);
        fitted.ExportOnnx(directory.File("float.onnx"));
        var exported = OnnxGraph.Load(directory.File("float.onnx"));
        CollectionAssert.AreEqual(new[] { "Y" }, exported.Graph.Output.Select(o => o.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "MatMul", "Relu" }, exported.Graph.Node.Select(n => n.OpType).ToArray());
        Assert.IsFalse(exported.Graph.Initializer.Any(i => i.Name == "W2"));
    }

    [TestMethod]
    public void WithoutOutputColumnNamesEveryOutputIsQuantizedAndCompared()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = TwoBranches(directory), MinimumSpeedup = 0,
        }).Fit(TinyData.X(ml, TinyData.Normal(40, 16), 16));
        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor.StartsWith("W2", StringComparison.Ordinal)));
        CollectionAssert.AreEqual(new[] { "Y", "Z" }, fitted.Deployment!.Outputs.Select(o => o.Name).ToArray());
    }

    // The float model's Y for one row.
    private static float[] Relu(float[] x, TempDirectory directory)
    {
        var model = OnnxGraph.Load(Path.Combine(directory.Path, "tiny.onnx"));
        var w = Tensors.ReadFloats(model.Graph.Initializer.Single(i => i.Name == "W1"));
        var y = new float[8];
        for (int j = 0; j < 8; j++)
        {
            double sum = 0;
            for (int i = 0; i < 16; i++) sum += x[i] * w[i * 8 + j];
            y[j] = (float)Math.Max(0, sum);
        }
        return y;
    }

    // As skl2onnx exports a scikit-learn classifier: the label (ArgMax) as a tensor and the probabilities through ZipMap
    // as a sequence of maps from class to probability, which ML.NET reads as an OnnxSequenceType column.
    private static string ClassifierWithZipMap(TempDirectory directory)
    {
        var tiny = new TinyModel().Input("X", 1, 16).TypedOutput("label", Tensors.Int64, 1)
            .Weight("W", new long[] { 16, 3 }).Weight("B", new long[] { 3 })
            .Node("Gemm", new[] { "X", "W", "B" }, new[] { "G" })
            .Node("Softmax", new[] { "G" }, new[] { "P" }, TinyModel.Int("axis", 1))
            .Node("ArgMax", new[] { "P" }, new[] { "label" }, TinyModel.Int("axis", 1), TinyModel.Int("keepdims", 0));
        var zipMap = OnnxGraph.MakeNode("ZipMap", "ZipMap", new[] { "P" }, new[] { "output_probability" });
        zipMap.Domain = "ai.onnx.ml";
        zipMap.Attribute.Add(TinyModel.Ints("classlabels_int64s", 0, 1, 2));
        tiny.Node(zipMap);
        var probabilities = new global::Onnx.TypeProto.Types.Map { KeyType = Tensors.Int64, ValueType = new global::Onnx.TypeProto { TensorType = new global::Onnx.TypeProto.Types.Tensor { ElemType = Tensors.Float } } };
        tiny.Graph.Output.Add(new global::Onnx.ValueInfoProto
        {
            Name = "output_probability",
            Type = new global::Onnx.TypeProto { SequenceType = new global::Onnx.TypeProto.Types.Sequence { ElemType = new global::Onnx.TypeProto { MapType = probabilities } } },
        });
        var path = tiny.Save(directory.Path, "classifier.onnx");
        var graph = OnnxGraph.Load(path);
        graph.Model.OpsetImport.Add(new global::Onnx.OperatorSetIdProto { Domain = "ai.onnx.ml", Version = 1 });
        File.WriteAllBytes(path, graph.ToBytes());
        return path;
    }

    [TestMethod]
    public void AClassifiersZipMapOutputPassesThroughAndIsComparedThroughTheTensorItReads()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = ClassifierWithZipMap(directory);
        var data = TinyData.X(ml, TinyData.Normal(40, 16), 16);

        var estimator = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = model, MinimumSpeedup = 0 });
        Assert.IsTrue(estimator.GetOutputSchema(QuantizingEstimatorWorkout.ShapeOf(data.Schema)).Any(c => c.Name == "output_probability"));
        using var fitted = estimator.Fit(data);

        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor.StartsWith("X", StringComparison.Ordinal) && c.ElementType != "float"), "the Gemm is quantized");
        // The probabilities are compared through the tensor that the ZipMap reads, under their own name.
        CollectionAssert.AreEquivalent(new[] { "label", "output_probability" }, fitted.Deployment!.Outputs.Select(o => o.Name).ToArray());
        var probabilities = fitted.Deployment.Outputs.Single(o => o.Name == "output_probability");
        Assert.IsFalse(probabilities.ComparedByEquality);
        Assert.IsTrue(probabilities.MeanCosine > 0.99, $"{probabilities.MeanCosine}");
        Assert.AreEqual(0, fitted.Deployment.OutputsNotCompared.Count);
        // The report measures the returned model, whose stand-in output is gone, as Fit measured it.
        Assert.IsTrue(fitted.Report.OutputCosine > 0.99, $"{fitted.Report.OutputCosine}");
        var scored = fitted.Transform(data);
        CollectionAssert.AreEqual(new[] { "X", "label", "output_probability" }, scored.Schema.Select(c => c.Name).ToArray(), "the user's outputs only");
        Assert.IsInstanceOfType<Microsoft.ML.Transforms.Onnx.OnnxSequenceType>(scored.Schema["output_probability"].Type);
        var rows = scored.Preview(41).RowView; // every row read before the transformer goes
        Assert.AreEqual(40, rows.Length);
        var first = rows[0].Values.Single(v => v.Key == "output_probability").Value as System.Collections.IEnumerable;
        var maps = first!.Cast<IDictionary<long, float>>().ToList();
        Assert.AreEqual(1, maps.Count);
        Assert.AreEqual(1f, maps[0].Values.Sum(), 0.02f, "the probabilities of a row sum to 1");
    }

    [TestMethod]
    public void AStringOutputIsNamedAsNotComparedAndTheSummarySaysSo()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = new TinyModel().Input("X", 1, 16).Output("Y", 1, 8).TypedOutput("S", (int)global::Onnx.TensorProto.Types.DataType.String, 1, 8)
            .Weight("W", new long[] { 16, 8 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "Y" })
            .Node("Cast", new[] { "Y" }, new[] { "S" }, TinyModel.Int("to", (long)global::Onnx.TensorProto.Types.DataType.String))
            .Save(directory.Path);

        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = model, MinimumSpeedup = 0 })
            .Fit(TinyData.X(ml, TinyData.Normal(40, 16), 16));

        CollectionAssert.AreEqual(new[] { "Y" }, fitted.Deployment!.Outputs.Select(o => o.Name).ToArray());
        CollectionAssert.AreEqual(new[] { "S" }, fitted.Deployment.OutputsNotCompared.ToArray());
        StringAssert.Contains(fitted.Deployment.Summary, "Not compared (a sequence, map or string): 'S'");
    }

    // As ML.NET's ONNX exporter writes a pipeline: the label column enters as a string tensor and is encoded
    // (ai.onnx.ml LabelEncoder), and a column's slot names ride on a node 'mlnet.<column>.SlotNames' whose output
    // 'mlnet.<column>.unusedOutput' is a graph output. Here: Y = X·W, K = LabelEncoder(L), and Y's slot names.
    private static string ExportedByMlNet(TempDirectory directory)
    {
        var tiny = new TinyModel().Input("X", 1, 16).TypedInput("L", (int)global::Onnx.TensorProto.Types.DataType.String, 1, 1).Output("Y", 1, 8)
            .TypedOutput("K", Tensors.Int64, 1, 1).TypedOutput("mlnet.Y.unusedOutput", Tensors.Int64, 1)
            .Weight("W", new long[] { 16, 8 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "Y" });
        var encoder = OnnxGraph.MakeNode("LabelEncoder", "LabelEncoder", new[] { "L" }, new[] { "K" });
        encoder.Domain = "ai.onnx.ml";
        encoder.Attribute.Add(new global::Onnx.AttributeProto { Name = "keys_strings", Type = global::Onnx.AttributeProto.Types.AttributeType.Strings,
            Strings = { Google.Protobuf.ByteString.CopyFromUtf8("a"), Google.Protobuf.ByteString.CopyFromUtf8("b") } });
        encoder.Attribute.Add(TinyModel.Ints("values_int64s", 0, 1));
        encoder.Attribute.Add(TinyModel.Int("default_int64", -1));
        var slotNames = OnnxGraph.MakeNode("LabelEncoder", "mlnet.Y.SlotNames", new[] { "mlnet.Y.SlotNames" }, new[] { "mlnet.Y.unusedOutput" });
        slotNames.Domain = "ai.onnx.ml";
        slotNames.Attribute.Add(encoder.Attribute[0].Clone());
        slotNames.Attribute.Add(TinyModel.Ints("values_int64s", 0, 1));
        tiny.Graph.Initializer.Add(new global::Onnx.TensorProto { Name = "mlnet.Y.SlotNames", DataType = (int)global::Onnx.TensorProto.Types.DataType.String, Dims = { 1 },
            StringData = { Google.Protobuf.ByteString.CopyFromUtf8("a") } });
        var path = tiny.Node(encoder).Node(slotNames).Save(directory.Path, "exported.onnx");
        var graph = OnnxGraph.Load(path);
        graph.Model.OpsetImport.Add(new global::Onnx.OperatorSetIdProto { Domain = "ai.onnx.ml", Version = 2 });
        File.WriteAllBytes(path, graph.ToBytes());
        return path;
    }

    private sealed class LabelledRow
    {
        [Microsoft.ML.Data.VectorType(16)]
        public float[] X { get; set; } = Array.Empty<float>();

        public string L { get; set; } = "";
    }

    [TestMethod]
    public void AModelExportedByMlNetTakesItsTextColumnAndHidesItsSlotNamesOutput()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TinyData.Normal(40, 16).Select((x, i) => new LabelledRow { X = x, L = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c" }));

        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = ExportedByMlNet(directory), MinimumSpeedup = 0 }).Fit(data);

        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor == "X"), "the float part is quantized");
        var scored = fitted.Transform(data);
        Assert.IsNull(scored.Schema.GetColumnOrNull("mlnet.Y.unusedOutput"), "ML.NET hides the slot names' output, as its own OnnxTransformer does");
        var keys = Microsoft.ML.Data.ColumnCursorExtensions.GetColumn<long[]>(scored, "K").Select(k => k[0]).ToArray()[..3]; // every row read before the transformer goes
        CollectionAssert.AreEqual(new long[] { 0, 1, -1 }, keys, "the text column was fed as strings");
    }
}
