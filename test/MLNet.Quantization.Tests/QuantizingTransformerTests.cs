using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

/// <summary>The fitted transformer's lifetime: its temp file, Dispose, and what works after it.</summary>
[TestClass]
public sealed class QuantizingTransformerTests
{
    private static string Mlp(TempDirectory directory) => new TinyModel()
        .Input("X", 1, 4).Output("Y", 1, 4)
        .Weight("W", new long[] { 4, 8 }).Weight("W2", new long[] { 8, 4 })
        .Node("MatMul", new[] { "X", "W" }, new[] { "H" })
        .Node("Relu", new[] { "H" }, new[] { "R" })
        .Node("MatMul", new[] { "R", "W2" }, new[] { "Y" })
        .Save(directory.Path);

    // Files directly in the temp folder (the tests' own folders live in a subfolder).
    private static HashSet<string> TempFiles() => Directory.GetFiles(Path.GetTempPath()).ToHashSet();

    [TestMethod]
    public void NoFitLeavesAFileInTheTempFolder()
    {
        using var directory = new TempDirectory();
        var model = Mlp(directory);
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(16, 4), 4);
        var before = TempFiles();
        foreach (int? threads in new int?[] { null, 1 })
        {
            var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { CheckDeployment = false, Tuning = null, ModelFile = model, IntraOpNumThreads = threads }).Fit(rows);
            Assert.AreEqual(1, TempFiles().Except(before).Count(f => Path.GetFileName(f).StartsWith(TemporaryModelFile.Prefix)),
                "the transformer's own file, while it lives");
            fitted.Transform(rows).GetColumn<float[]>("Y").ToArray();
            mlContext_Save(ml, fitted, rows, directory.File($"model-{threads}.zip"));
            fitted.Dispose();
            CollectionAssert.AreEquivalent(before.ToList(), TempFiles().ToList(), $"Fit + Dispose (threads {threads}) leave the temp folder as it was");
        }
        var wrong = TinyData.X(ml, TinyData.Normal(4, 5), 5);
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.QuantizeCalibrated(model).Fit(wrong));
        CollectionAssert.AreEquivalent(before.ToList(), TempFiles().ToList(), "a failed Fit leaves nothing either");

        static void mlContext_Save(MLContext ml, ITransformer model, IDataView rows, string path) => ml.Model.Save(model, rows.Schema, path);
    }

    [TestMethod]
    public void AfterDisposeScoringAndSavingAreObjectDisposedWhileTheResultsStay()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(16, 4), 4);
        var fitted = ml.Transforms.QuantizeCalibrated(Mlp(directory)).Fit(rows);
        fitted.Dispose();
        fitted.Dispose(); // twice is harmless

        Assert.ThrowsExactly<ObjectDisposedException>(() => fitted.Transform(rows));
        Assert.ThrowsExactly<ObjectDisposedException>(() => fitted.GetOutputSchema(rows.Schema));
        var save = Assert.Throws<Exception>(() => ml.Model.Save(fitted, rows.Schema, directory.File("model.zip")));
        Assert.IsTrue(save is ObjectDisposedException || save.InnerException is ObjectDisposedException, save.ToString());
        // (ML.NET's Model.Save(path) creates the file before it asks the transformer to save, and leaves it on failure.)
        var engine = Assert.Throws<Exception>(() => ml.Model.CreatePredictionEngine<XRow, YRow>(fitted));
        Assert.IsTrue(engine is ObjectDisposedException || engine.InnerException is ObjectDisposedException, engine.ToString());

        fitted.ExportOnnx(directory.File("int8.onnx"));
        Assert.AreEqual(fitted.Calibration.Count, CalibrationTable.FromOnnx(directory.File("int8.onnx")).Count);
        Assert.IsTrue(fitted.Statistics.Tensors.Count > 0);
    }

    [TestMethod]
    public void RepeatedSchemaQueriesReuseOneScoringEstimator()
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var rows = TinyData.X(ml, TinyData.Normal(4, 4), 4);
        var estimator = ml.Transforms.QuantizeCalibrated(Mlp(directory));
        var shape = QuantizingEstimatorWorkout.ShapeOf(rows.Schema);
        var first = estimator.GetOutputSchema(shape);
        for (int i = 0; i < 20; i++)
        {
            var again = estimator.GetOutputSchema(shape);
            Assert.AreEqual(first.Count, again.Count);
            Assert.AreEqual(first.Single(c => c.Name == "Y").ItemType, again.Single(c => c.Name == "Y").ItemType);
        }
        Assert.AreEqual(NumberDataViewType.Single, first.Single(c => c.Name == "Y").ItemType);
    }

    public sealed class YRow
    {
        [VectorType(4)]
        public float[] Y { get; set; } = Array.Empty<float>();
    }
}
