using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// all-MiniLM-L6-v2 per calibration configuration: a linear probe on fp32 sentence embeddings predicts the WordNet
// lexicographer class (26) of held-out noun glosses, and nearest-neighbour retrieval is compared with fp32.
// Fetch the full glosses first with scripts/fetch-wordnet.sh (else the shipped subset is used).
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- evaluate-minilm [train] [test] [calibration] [configurations] [minilm|arctic]
// (arctic: Snowflake's arctic-embed-xs, the same inputs and vocabulary, [CLS] pooling; see ArcticXs)
internal static class MiniLmEvaluation
{
    // The configurations of issue 5 were measured with full 8-bit weights, before issue 9; they keep them.
    private sealed record Configuration(string Name, CalibrationMethod Activations, bool Asymmetric, bool PerChannel, WeightRange Range = WeightRange.Full,
        BiasCorrection Bias = BiasCorrection.None, double? Alpha = null, bool Tuned = false, WeightRounding? Rounding = null);

    private static readonly Configuration[] Configurations =
    {
        new("KL, symmetric, per channel (the default before the evaluation)", CalibrationMethod.KlDivergence, false, true),
        new("max, symmetric, per channel", CalibrationMethod.Max, false, true),
        new("max, asymmetric, per tensor", CalibrationMethod.Max, true, false),
        new("max, asymmetric, per channel", CalibrationMethod.Max, true, true),
        new("percentile 99.999, asymmetric, per channel", CalibrationMethod.Percentile, true, true),
        new("KL, asymmetric, per channel", CalibrationMethod.KlDivergence, true, true),
        new("issue 9: max, asymmetric, per channel, pair-bounded weights (default)", CalibrationMethod.Max, true, true, WeightRange.PairBounded),
        new("issue 11: mean of per-sample min/max, asymmetric, per channel, pair-bounded weights", CalibrationMethod.MeanMinMax, true, true, WeightRange.PairBounded),
        // Issue 11's algorithms, on and off, in one run.
        new("issue 11: defaults (max, asymmetric, per channel, pair-bounded)", CalibrationMethod.Max, true, true, WeightRange.PairBounded),
        new("issue 11: defaults + fast bias correction", CalibrationMethod.Max, true, true, WeightRange.PairBounded, BiasCorrection.Fast),
        new("issue 11: defaults + full bias correction", CalibrationMethod.Max, true, true, WeightRange.PairBounded, BiasCorrection.Full),
        new("issue 11: defaults + SmoothQuant 0.5", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Alpha: 0.5),
        new("issue 11: defaults + SmoothQuant 0.95 (NNCF's alpha)", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Alpha: 0.95),
        new("issue 11: defaults + SmoothQuant 0.5 + fast bias correction", CalibrationMethod.Max, true, true, WeightRange.PairBounded, BiasCorrection.Fast, 0.5),
        new("issue 11: mean min/max + SmoothQuant 0.5", CalibrationMethod.MeanMinMax, true, true, WeightRange.PairBounded, Alpha: 0.5),
        new("issue 11b: defaults + SmoothQuant 0.8", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Alpha: 0.8),
        new("issue 11b: defaults + SmoothQuant 0.95", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Alpha: 0.95),
        new("issue 11b: defaults + SmoothQuant 1.0", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Alpha: 1.0),
        new("issue 11b: defaults + SmoothQuant 0.95 + fast bias correction", CalibrationMethod.Max, true, true, WeightRange.PairBounded, BiasCorrection.Fast, 0.95),
        new("issue 11b: mean min/max + SmoothQuant 0.95", CalibrationMethod.MeanMinMax, true, true, WeightRange.PairBounded, Alpha: 0.95),
        // Issue 17: the defaults, tuned (no recipe option set), against the same recipe untuned.
        new("issue 17: defaults, tuned", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Tuned: true),
        new("issue 17: defaults, not tuned", CalibrationMethod.Max, true, true, WeightRange.PairBounded),
        // The defaults before balanced weight rounding (sixth session of issues 16 and 17).
        new("nearest rounding: defaults, tuned", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Tuned: true, Rounding: WeightRounding.Nearest),
        new("nearest rounding: defaults, not tuned", CalibrationMethod.Max, true, true, WeightRange.PairBounded, Rounding: WeightRounding.Nearest),
        new("squared error: MSE search, asymmetric, per channel, pair-bounded, not tuned", CalibrationMethod.MeanSquaredError, true, true, WeightRange.PairBounded),
    };

    public static void Run(string[] args)
    {
        int trainCount = args.Length > 0 ? int.Parse(args[0]) : 4000;
        int testCount = args.Length > 1 ? int.Parse(args[1]) : 2000;
        int calibrationCount = args.Length > 2 ? int.Parse(args[2]) : 200;
        string only = args.Length > 3 ? args[3] : "";
        bool arctic = args.Length > 4 && args[4] == "arctic";
        string modelFile = arctic ? ArcticXs.ModelFile : MiniLm.ModelFile;
        string modelName = arctic ? "snowflake-arctic-embed-xs ([CLS] pooling)" : "all-MiniLM-L6-v2";
        var ml = new MLContext(seed: 1);
        var (texts, classes) = Glosses(out bool isFull);
        // A fixed shuffle, so that every class appears in every split.
        var order = Enumerable.Range(0, texts.Length).OrderBy(i => (i * 2654435761u) % 1000003).ToArray();
        int[] Take(int skip, int count) => order.Skip(skip).Take(count).ToArray();
        var calibrationIds = Take(0, calibrationCount);
        var trainIds = Take(calibrationCount, trainCount);
        var testIds = Take(calibrationCount + trainCount, testCount);
        IDataView Text(int[] ids) => ml.Data.LoadFromEnumerable(ids.Select(i => new MiniLm.TextRow { Text = texts[i] }));
        var tokenize = MiniLm.Tokenize(ml).Fit(Text(calibrationIds));
        var calibration = tokenize.Transform(Text(calibrationIds));
        var train = tokenize.Transform(Text(trainIds));
        var test = tokenize.Transform(Text(testIds));
        var pool = arctic ? ArcticXs.ClsPool(ml) : MiniLm.MeanPool(ml);
        float[][] Embed(ITransformer model, IDataView rows) =>
            pool.Fit(model.Transform(calibration)).Transform(model.Transform(rows)).GetColumn<float[]>("Embedding").ToArray();

        var fp32 = ml.Transforms.ApplyOnnxModel(new[] { MiniLm.Output }, new[] { "input_ids", "attention_mask", "token_type_ids" }, modelFile).Fit(calibration);
        var trainEmbeddings = Embed(fp32, train);
        var testEmbeddings = Embed(fp32, test);
        var trainLabels = trainIds.Select(i => classes[i]).ToArray();
        var testLabels = testIds.Select(i => classes[i]).ToArray();
        var probe = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy())
            .Fit(ml.Data.LoadFromEnumerable(Rows(trainEmbeddings, trainLabels)));
        uint[] Predict(float[][] embeddings) => probe.Transform(ml.Data.LoadFromEnumerable(Rows(embeddings, testLabels)))
            .GetColumn<uint>("PredictedLabel").ToArray();
        var keys = probe.Transform(ml.Data.LoadFromEnumerable(Rows(testEmbeddings, testLabels))).GetColumn<uint>("Label").ToArray();
        double Accuracy(uint[] predicted) => predicted.Zip(keys, (p, k) => p == k ? 1.0 : 0.0).Average();
        var floatPredictions = Predict(testEmbeddings);
        double floatAccuracy = Accuracy(floatPredictions);
        var floatNeighbours = Neighbours(testEmbeddings, 500);

        Console.WriteLine($"{modelName} + WordNet noun glosses ({(isFull ? "full data.noun" : "shipped subset")}): probe trained on {trainIds.Length} fp32 " +
            $"embeddings, calibrated on {calibrationIds.Length} other glosses, evaluated on {testIds.Length}; retrieval over the first 500 test glosses");
        Console.WriteLine();
        Console.WriteLine("| configuration | accuracy | drop (points) | top-1 agreement | mean cosine | nearest-neighbour agreement | calibration |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Console.WriteLine($"| fp32 | {floatAccuracy:F4} | | | | | |");
        foreach (var c in Configurations.Where(c => only.Split('|').Any(part => c.Name.Contains(part, StringComparison.Ordinal))))
        {
            var clock = Stopwatch.StartNew();
            var options = new QuantizingEstimator.Options
            {
                ModelFile = modelFile, OutputColumnNames = new[] { MiniLm.Output },
                AsymmetricActivations = c.Asymmetric, PerChannelWeights = c.PerChannel, WeightRange = c.Range,
            };
            if (c.Rounding is { } rounding) options.WeightRounding = rounding;
            if (!c.Tuned)
            {
                // A fixed recipe: every knob set, nothing searched.
                (options.ActivationCalibration, options.BiasCorrection, options.SmoothQuantAlpha, options.Tuning) = (c.Activations, c.Bias, c.Alpha, null);
            }
            using var int8 = ml.Transforms.QuantizeCalibrated(options).Fit(calibration);
            if (int8.Tuning is { } tuning) Console.Error.WriteLine(tuning.Summary + "\n" + tuning.ToCsv());
            double seconds = clock.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"{c.Name}: Fit {seconds:F1} s = " + string.Join(" + ", int8.FitTimings.Select(t => $"{t.Pass} {t.Seconds:F1}")));
            var embeddings = Embed(int8, test);
            var predictions = Predict(embeddings);
            double accuracy = Accuracy(predictions);
            double agreement = predictions.Zip(floatPredictions, (a, b) => a == b ? 1.0 : 0.0).Average();
            double cosine = testEmbeddings.Zip(embeddings, Report.Cosine).Average();
            double retrieval = Neighbours(embeddings, 500).Zip(floatNeighbours, (a, b) => a == b ? 1.0 : 0.0).Average();
            Console.WriteLine($"| {c.Name} | {accuracy:F4} | {100 * (floatAccuracy - accuracy):F2} | {100 * agreement:F2}% | {cosine:F4} | {100 * retrieval:F1}% | {seconds:F1} s |");
        }
    }

    private static (string[] Texts, uint[] Classes) Glosses(out bool isFull)
    {
        var full = Path.Combine(FashionMnist.DataDirectory(AppContext.BaseDirectory), "..", "wordnet", "full", "data.noun");
        isFull = File.Exists(full);
        if (!isFull) return WordNetGlosses.Read(AppContext.BaseDirectory);
        var rows = File.ReadLines(full, System.Text.Encoding.Latin1).Where(l => !l.StartsWith("  ") && l.Contains(" | "))
            .Select(l => (Class: uint.Parse(l.Split(' ')[1]), Gloss: l[(l.IndexOf(" | ", StringComparison.Ordinal) + 3)..].Trim())).ToArray();
        return (rows.Select(r => r.Gloss).ToArray(), rows.Select(r => r.Class).ToArray());
    }

    private static int[] Neighbours(float[][] embeddings, int count) => Enumerable.Range(0, count).Select(q =>
    {
        int best = -1;
        double bestCosine = double.NegativeInfinity;
        for (int i = 0; i < count; i++)
        {
            if (i == q) continue;
            double c = Report.Cosine(embeddings[q], embeddings[i]);
            if (c > bestCosine) (best, bestCosine) = (i, c);
        }
        return best;
    }).ToArray();

    private static IEnumerable<Row> Rows(float[][] embeddings, uint[] labels) =>
        embeddings.Select((e, i) => new Row { Features = e, Label = labels[i] });

    /// <summary>An embedding and its class.</summary>
    public sealed class Row
    {
        /// <summary>The sentence embedding.</summary>
        [VectorType(MiniLm.Dimensions)]
        public float[] Features { get; set; } = Array.Empty<float>();

        /// <summary>The lexicographer class.</summary>
        public uint Label { get; set; }
    }
}
