using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Tests;

/// <summary>all-MiniLM-L6-v2 tokenized in an ML.NET pipeline, calibrated on WordNet glosses, compared on held-out glosses.</summary>
[TestClass]
public sealed class MiniLmTests
{
    private static float[][] Embeddings(MLContext ml, IEstimator<ITransformer> model, IDataView calibration, IDataView rows)
    {
        var pipeline = MiniLm.Tokenize(ml).Append(model).Append(MiniLm.MeanPool(ml));
        var fitted = pipeline.Fit(calibration);
        foreach (var quantizer in fitted.OfType<QuantizingTransformer>().Where(q => q.Mode == QuantizationMode.Int8))
        {
            using var directory = new TempDirectory();
            quantizer.ExportOnnx(directory.File("minilm.onnx"));
            WeightPairs.AssertCannotSaturate(MLNet.Quantization.Onnx.OnnxGraph.Load(directory.File("minilm.onnx")), "all-MiniLM-L6-v2");
        }
        var embeddings = fitted.Transform(rows).GetColumn<float[]>("Embedding").ToArray();
        (fitted.LastTransformer as IDisposable)?.Dispose();
        foreach (var t in fitted) (t as IDisposable)?.Dispose();
        return embeddings;
    }

    [TestMethod]
    public void Int8EmbeddingsMatchFloatEmbeddings()
    {
        var ml = new MLContext(seed: 1);
        var (texts, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        IDataView Text(IEnumerable<string> rows) => ml.Data.LoadFromEnumerable(rows.Select(t => new MiniLm.TextRow { Text = t }));
        var calibration = Text(texts.Take(64));
        var heldOut = Text(texts.Skip(1000).Take(100));
        QuantizingEstimator Quantize(QuantizationMode mode) => ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = MiniLm.ModelFile, OutputColumnNames = new[] { MiniLm.Output }, Mode = mode,
            ActivationCalibration = CalibrationMethod.Max, AsymmetricActivations = true,
            // The realization itself against its simulation: the deployment check would send disagreeing layers of the
            // int8 model back to float, and the two would no longer realize the same plan.
            CheckDeployment = false, Tuning = null,
        });

        var reference = Embeddings(ml, ml.Transforms.ApplyOnnxModel(new[] { MiniLm.Output },
            new[] { "input_ids", "attention_mask", "token_type_ids" }, MiniLm.ModelFile), calibration, heldOut);
        var int8 = Embeddings(ml, Quantize(QuantizationMode.Int8), calibration, heldOut);
        var simulated = Embeddings(ml, Quantize(QuantizationMode.Simulated), calibration, heldOut);

        double cosine = reference.Zip(int8, TinyData.Cosine).Average();
        double agreement = simulated.Zip(int8, TinyData.Cosine).Average();
        Assert.IsTrue(cosine >= 0.99, $"mean int8 vs fp32 embedding cosine {cosine}");
        Assert.IsTrue(agreement >= 0.998, $"mean simulated vs int8 embedding cosine {agreement}");
    }
}
