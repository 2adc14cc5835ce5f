using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests.Onnx;

/// <summary>
/// A scalar (rank-0) graph output, which ML.NET's OnnxTransformer declares but cannot read
/// (dotnet/machinelearning#7225): the model returned gives it as one value of shape [1], int8 or float.
/// </summary>
[TestClass]
public sealed class ScalarOutputConversionTests
{
    private const int Size = 16, Outputs = 8;

    // X [1, 16] → MatMul W → Y [1, 8]; S = ReduceSum(Y) over every axis, a scalar; Z = Y · S, which reads the scalar.
    private static string Model(TempDirectory directory)
    {
        var tiny = new TinyModel().Input("X", 1, Size).Output("Y", 1, Outputs).Output("Z", 1, Outputs)
            .Weight("W", new long[] { Size, Outputs })
            .Node("MatMul", new[] { "X", "W" }, new[] { "Y" })
            .Node("ReduceSum", new[] { "Y" }, new[] { "S" }, TinyModel.Int("keepdims", 0))
            .Node("Mul", new[] { "Y", "S" }, new[] { "Z" });
        tiny.Graph.Output.Add(TinyModel.FloatValue("S"));
        return tiny.Save(directory.Path);
    }

    // The float model's S for each row, from ONNX Runtime.
    private static float[] FloatSums(string model, float[][] rows)
    {
        using var session = new InferenceSession(model);
        using var runOptions = new RunOptions();
        return rows.Select(row =>
        {
            using var x = OrtValue.CreateTensorValueFromMemory(row, new long[] { 1, Size });
            using var results = session.Run(runOptions, new[] { "X" }, new[] { x }, new[] { "S" });
            Assert.AreEqual(0, results[0].GetTensorTypeAndShape().Shape.Length, "the original output is a scalar");
            return results[0].GetTensorDataAsSpan<float>()[0];
        }).ToArray();
    }

    [TestMethod]
    public void TheConversionReshapesTheOutputUnderItsNameAndItsReadersReadTheScalar()
    {
        using var directory = new TempDirectory();
        var graph = OnnxGraph.Load(Model(directory));

        var notes = ScalarOutputConversion.Convert(graph);

        Assert.AreEqual(1, notes.Count);
        StringAssert.Contains(notes[0], "'S'");
        var reshape = graph.Producer("S")!;
        Assert.AreEqual("Reshape", reshape.OpType);
        Assert.AreEqual("ReduceSum", graph.Producer(reshape.Input[0])!.OpType);
        Assert.AreEqual(reshape.Input[0], graph.Graph.Node.Single(n => n.OpType == "Mul").Input[1], "the Mul reads the scalar, not the reshaped output");
        Assert.AreEqual(1, graph.Graph.Output.Single(o => o.Name == "S").Type.TensorType.Shape.Dim.Single().DimValue);
        Assert.AreEqual(0, ScalarOutputConversion.Convert(graph).Count, "a converted model has no scalar output left");
    }

    [TestMethod]
    [DataRow(0.0, DisplayName = "int8")]
    [DataRow(1000.0, DisplayName = "kept float by the speed check")]
    public void AScalarOutputIsReadThroughMlNetAsOneValueEqualToTheFloatModels(double minimumSpeedup)
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = Model(directory);
        var rows = TinyData.Normal(40, Size);
        var data = TinyData.X(ml, rows, Size);
        var estimator = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = model, MinimumSpeedup = minimumSpeedup });

        var declared = estimator.GetOutputSchema(QuantizingEstimatorWorkout.ShapeOf(data.Schema)).Single(c => c.Name == "S");
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, declared.Kind, "GetOutputSchema gives the column that Transform gives");
        // The estimator keeps the converted model that answered GetOutputSchema for its next call; Fit leaves nothing.
        var temporaryModels = TempDirectory.ModelFiles();
        using (var fitted = estimator.Fit(data))
        {
            Assert.AreEqual(minimumSpeedup > 0, fitted.Deployment!.KeptFloat, fitted.Deployment.Summary);
            Assert.IsTrue(fitted.Deployment.Conversions.Any(c => c.Contains("'S'", StringComparison.Ordinal)), string.Join("; ", fitted.Deployment.Conversions));
            var scored = fitted.Transform(data);
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 1), scored.Schema["S"].Type);
            var sums = scored.GetColumn<float[]>("S").ToList(); // every row read before the transformer goes
            var expected = FloatSums(model, rows);
            float scale = expected.Max(Math.Abs);
            for (int r = 0; r < rows.Length; r++)
            {
                Assert.AreEqual(1, sums[r].Length);
                Assert.AreEqual(expected[r], sums[r][0], 0.05 * scale, $"row {r}");
            }
        }
        // Files only: another test's estimator may delete its own meanwhile, from its finalizer.
        CollectionAssert.AreEqual(Array.Empty<string>(), TempDirectory.ModelFiles().Except(temporaryModels).ToList(), "no temp model is left behind");
    }
}
