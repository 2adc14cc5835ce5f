using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Quantization.Samples;

/// <summary>
/// Sentence embeddings with all-MiniLM-L6-v2 in int8: tokenize, quantize and mean-pool inside one ML.NET pipeline,
/// calibrated on 200 WordNet glosses, then compared with the float model on 1,000 others.
/// </summary>
public static class QuantizeMiniLM
{
    /// <summary>Runs the sample.</summary>
    public static void Example()
    {
        var mlContext = new MLContext(seed: 1);
        var (glosses, _) = WordNetGlosses.Read(AppContext.BaseDirectory);
        IDataView Text(IEnumerable<string> rows) => mlContext.Data.LoadFromEnumerable(rows.Select(t => new MiniLm.TextRow { Text = t }));
        var calibration = Text(glosses.Take(200));
        var heldOut = Text(glosses.Skip(200));

        // The defaults: Fit tunes the recipe (SmoothQuant, the calibration method, bias correction) on held-back rows.
        // Setting an option such as ActivationCalibration would pin that knob.
        var quantize = mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            ModelFile = MiniLm.ModelFile,
            OutputColumnNames = new[] { MiniLm.Output },
        });
        var clock = Stopwatch.StartNew();
        var int8 = MiniLm.Tokenize(mlContext).Append(quantize).Append(MiniLm.MeanPool(mlContext)).Fit(calibration);
        Console.WriteLine($"Calibrated in {clock.Elapsed.TotalSeconds:F1} s");
        // What Fit chose, and what it measured of the model it returns on this CPU.
        var quantizer = int8.OfType<QuantizingTransformer>().Single();
        if (quantizer.Tuning is { } tuning) Console.WriteLine($"tuning: {tuning.Summary}");
        if (quantizer.Deployment is { } deployment) Console.WriteLine($"deployment check: {deployment.Summary}");
        var fp32 = MiniLm.Tokenize(mlContext)
            .Append(mlContext.Transforms.ApplyOnnxModel(new[] { MiniLm.Output }, new[] { "input_ids", "attention_mask", "token_type_ids" }, MiniLm.ModelFile))
            .Append(MiniLm.MeanPool(mlContext)).Fit(calibration);

        float[][] Embed(ITransformer model, out double seconds)
        {
            var watch = Stopwatch.StartNew();
            var embeddings = model.Transform(heldOut).GetColumn<float[]>("Embedding").ToArray();
            seconds = watch.Elapsed.TotalSeconds;
            return embeddings;
        }
        var reference = Embed(fp32, out double floatSeconds);
        var quantized = Embed(int8, out double int8Seconds);
        var cosines = reference.Zip(quantized, Cosine).OrderBy(c => c).ToArray();

        // Nearest neighbours: does int8 retrieve the same closest gloss as fp32?
        int agree = Enumerable.Range(0, 200).Count(i => Nearest(reference, i) == Nearest(quantized, i));
        Console.WriteLine($"int8 vs fp32 embedding cosine on {cosines.Length} held-out glosses: mean {cosines.Average():F4}, worst 1% {cosines[cosines.Length / 100]:F4}");
        Console.WriteLine($"nearest-neighbour agreement on 200 queries: {agree / 2.0:F1}%");
        Console.WriteLine($"speed-up {floatSeconds / int8Seconds:F2}x (tokenization included, default threads)");
        Console.WriteLine($"example: \"{glosses[200]}\" → int8 [{string.Join(", ", quantized[0].Take(4).Select(v => v.ToString("F3")))}, ...]");
        ((IDisposable)int8.Skip(1).First()).Dispose();
    }

    private static int Nearest(float[][] embeddings, int query)
    {
        int best = -1;
        double bestCosine = double.NegativeInfinity;
        for (int i = 0; i < embeddings.Length; i++)
        {
            if (i == query) continue;
            double c = Cosine(embeddings[query], embeddings[i]);
            if (c > bestCosine) (best, bestCosine) = (i, c);
        }
        return best;
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
