using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// The seed's accuracy table, rebuilt on data that is available here: ResNet18 features of Fashion-MNIST scored by a
// linear probe trained on fp32 features, for each calibration configuration. Fetch the full data set first with
// scripts/fetch-fashion-mnist.sh (else the shipped subset is used).
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- evaluate [testImages] [trainImages] [calibrationImages] [chart.png] [only configurations whose name contains this, or one of these |-separated parts] [bright|plain] [quick]
// "bright" inverts every image (white backgrounds: uint8 activations near the top of their range, where CPUs without VNNI saturate).
// The ms/row columns run the pipeline with preprocessing (ResNetPreprocess.onnx) included; the resnet18 command times the model alone.
internal static class EvaluationHarness
{
    // The configurations of issues 5 and 6 were measured with full 8-bit weights, before issue 9 made pair-bounded
    // weights the default; they keep them, so that their rows stay comparable.
    private sealed record Configuration(string Name, CalibrationMethod Activations, WeightScaleMethod Weights, bool PerChannel,
        bool Asymmetric = false, double? MinimumOutputCosine = null, WeightRange Range = WeightRange.Full,
        BiasCorrection Bias = BiasCorrection.None, bool Cle = false, bool Tuned = false, WeightRounding? Rounding = null);

    private static readonly Configuration[] Configurations =
    {
        new("max / max, per tensor", CalibrationMethod.Max, WeightScaleMethod.Max, false),
        new("KL + max weights, per tensor (seed 1)", CalibrationMethod.KlDivergence, WeightScaleMethod.Max, false),
        new("power-of-two KL + power-of-two weights, per tensor (seed 2)", CalibrationMethod.KlDivergencePowerOfTwo, WeightScaleMethod.PowerOfTwo, false),
        new("percentile 99.999, per tensor", CalibrationMethod.Percentile, WeightScaleMethod.Max, false),
        new("max / max, per channel", CalibrationMethod.Max, WeightScaleMethod.Max, true),
        new("KL + max weights, per channel (default before the evaluation)", CalibrationMethod.KlDivergence, WeightScaleMethod.Max, true),
        new("power-of-two KL + power-of-two weights, per channel", CalibrationMethod.KlDivergencePowerOfTwo, WeightScaleMethod.PowerOfTwo, true),
        new("percentile 99.999, per channel", CalibrationMethod.Percentile, WeightScaleMethod.Max, true),
        new("max / max, asymmetric activations, per channel", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true),
        new("KL + max weights, asymmetric activations, per channel", CalibrationMethod.KlDivergence, WeightScaleMethod.Max, true, Asymmetric: true),
        new("max / max, asymmetric activations, per channel, fallback to 0.998 output cosine", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, MinimumOutputCosine: 0.998),
        new("issue 9: max / max, asymmetric, per channel, full 8-bit weights (VNNI only)", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true),
        new("issue 9: max / max, asymmetric, per channel, 7-bit weights", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true,
            Range: WeightRange.SevenBit),
        new("issue 9: max / max, asymmetric, per channel, pair-bounded weights", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true,
            Range: WeightRange.PairBounded),
        new("issue 11: mean of per-sample min/max, asymmetric, per channel, pair-bounded weights", CalibrationMethod.MeanMinMax, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded),
        // Issue 11's algorithms, on and off, in one run: the defaults first, then each algorithm and their combinations.
        new("issue 11: defaults (max, asymmetric, per channel, pair-bounded)", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded),
        new("issue 17: defaults, tuned", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true, Range: WeightRange.PairBounded, Tuned: true),
        new("issue 17: defaults, not tuned", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true, Range: WeightRange.PairBounded),
        // The defaults before balanced weight rounding (sixth session of issues 16 and 17).
        new("nearest rounding: defaults, tuned", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true, Range: WeightRange.PairBounded,
            Tuned: true, Rounding: WeightRounding.Nearest),
        new("nearest rounding: defaults, not tuned", CalibrationMethod.Max, WeightScaleMethod.Max, true, Asymmetric: true, Range: WeightRange.PairBounded,
            Rounding: WeightRounding.Nearest),
        new("squared error: MSE search, asymmetric, per channel, pair-bounded, not tuned", CalibrationMethod.MeanSquaredError, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded),
        new("squared error: percentile, asymmetric, per channel, pair-bounded, not tuned", CalibrationMethod.Percentile, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded),
        new("issue 11: defaults + fast bias correction", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Fast),
        new("issue 11: defaults + full bias correction", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Full),
        new("issue 11: defaults + cross-layer equalization", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded, Cle: true),
        new("issue 11: defaults + CLE + fast bias correction", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Fast, Cle: true),
        new("issue 11: mean min/max + fast bias correction", CalibrationMethod.MeanMinMax, WeightScaleMethod.Max, true,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Fast),
        new("issue 11: per-tensor weights", CalibrationMethod.Max, WeightScaleMethod.Max, false,
            Asymmetric: true, Range: WeightRange.PairBounded),
        new("issue 11: per-tensor weights + CLE", CalibrationMethod.Max, WeightScaleMethod.Max, false,
            Asymmetric: true, Range: WeightRange.PairBounded, Cle: true),
        new("issue 11: per-tensor weights + CLE + fast bias correction", CalibrationMethod.Max, WeightScaleMethod.Max, false,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Fast, Cle: true),
        new("issue 11: defaults, fallback to 0.998 output cosine", CalibrationMethod.Max, WeightScaleMethod.Max, true,
            Asymmetric: true, MinimumOutputCosine: 0.998, Range: WeightRange.PairBounded),
        new("issue 11: per-tensor weights + CLE + full bias correction", CalibrationMethod.Max, WeightScaleMethod.Max, false,
            Asymmetric: true, Range: WeightRange.PairBounded, Bias: BiasCorrection.Full, Cle: true),
    };

    public static void Run(string[] args)
    {
        int testCount = args.Length > 0 ? int.Parse(args[0]) : 10_000;
        int trainCount = args.Length > 1 ? int.Parse(args[1]) : 5_000;
        int calibrationCount = args.Length > 2 ? int.Parse(args[2]) : 1_000;
        string chart = args.Length > 3 ? args[3] : "docs/evaluation.png";
        string only = args.Length > 4 ? args[4] : "";
        bool bright = args.Length > 5 && args[5] == "bright";
        // "quick": accuracy only (no simulated twin, no timing), for the on/off rows of issue 11.
        bool quick = args.Length > 6 && args[6] == "quick";
        var ml = new MLContext(seed: 1);
        var root = FashionMnist.DataDirectory(AppContext.BaseDirectory);
        var full = Path.Combine(root, "full");
        bool isFull = File.Exists(Path.Combine(full, "t10k-images-idx3-ubyte.gz"));
        var (trainImages, trainLabels) = isFull ? FashionMnist.Read(full, "train", 0, trainCount) : FashionMnist.Read(root, "train-subset", 0, Math.Min(trainCount, 600));
        var (calibrationImages, calibrationLabels) = isFull ? FashionMnist.Read(full, "train", trainCount, calibrationCount) : FashionMnist.Read(root, "train-subset", 600, 400);
        var (testImages, testLabels) = isFull ? FashionMnist.Read(full, "t10k", 0, testCount) : FashionMnist.Read(root, "test-subset");
        if (bright)
        {
            static byte[][] Invert(byte[][] images) => images.Select(i => i.Select(p => (byte)(255 - p)).ToArray()).ToArray();
            (trainImages, calibrationImages, testImages) = (Invert(trainImages), Invert(calibrationImages), Invert(testImages));
        }

        var preprocess = ml.Transforms.ApplyOnnxModel(new[] { "PreprocessedInput" }, new[] { "OriginalInput" }, ResNet18Model.Preprocess)
            .Append(ml.Transforms.CopyColumns(ResNet18Model.Input, "PreprocessedInput"))
            .Fit(FashionMnist.ToDataView(ml, calibrationImages, calibrationLabels));
        IDataView Rows(byte[][] images, byte[] labels) => preprocess.Transform(FashionMnist.ToDataView(ml, images, labels));
        var calibration = Rows(calibrationImages, calibrationLabels);
        var test = Rows(testImages, testLabels);
        var timed = Rows(testImages.Take(50).ToArray(), testLabels.Take(50).ToArray());
        float[][] Features(ITransformer model, IDataView rows) => model.Transform(rows).GetColumn<float[]>(ResNet18Model.Output).ToArray();

        var fp32 = ml.Transforms.ApplyOnnxModel(ResNet18Model.ResNet18).Fit(calibration);
        var trainFeatures = Features(fp32, Rows(trainImages, trainLabels));
        var testFeatures = Features(fp32, test);
        var probe = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy())
            .Fit(ml.Data.LoadFromEnumerable(FeatureRows(trainFeatures, trainLabels)));
        uint[] Predict(float[][] features) => probe.Transform(ml.Data.LoadFromEnumerable(FeatureRows(features, testLabels)))
            .GetColumn<uint>("PredictedLabel").ToArray();
        // Keys number the labels in order of first appearance, so predictions are compared with the keys of the true labels.
        var keys = probe.Transform(ml.Data.LoadFromEnumerable(FeatureRows(testFeatures, testLabels))).GetColumn<uint>("Label").ToArray();
        double Accuracy(uint[] predicted) => predicted.Zip(keys, (p, k) => p == k ? 1.0 : 0.0).Average();
        var floatPredictions = Predict(testFeatures);
        double floatAccuracy = Accuracy(floatPredictions);

        double MsPerRow(string modelFile, int threads)
        {
            var model = ml.Transforms.ApplyOnnxModel(new OnnxOptions
            {
                ModelFile = modelFile, InputColumns = new[] { ResNet18Model.Input }, OutputColumns = new[] { ResNet18Model.Output },
                IntraOpNumThreads = threads, InterOpNumThreads = 1,
            }).Fit(calibration);
            Features(model, timed);
            var times = Enumerable.Range(0, 3).Select(_ =>
            {
                var watch = Stopwatch.StartNew();
                Features(model, timed);
                return watch.Elapsed.TotalMilliseconds / 50;
            }).OrderBy(t => t).ToArray();
            (model as IDisposable)?.Dispose();
            return times[1];
        }

        Console.WriteLine($"ResNet18 + {(bright ? "inverted (bright) " : "")}Fashion-MNIST ({(isFull ? "full data set" : "shipped subset")}), CPU {Realize.CpuFeatures.Describe()}: probe trained on {trainImages.Length} fp32 train features, " +
            $"calibrated on {calibrationImages.Length} other train images, evaluated on {testImages.Length} test images; {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| configuration | accuracy | drop (points) | top-1 agreement with fp32 | mean cosine | calibration | int8 ms/row 1 thread | int8 ms/row 2 threads | simulated ms/row 1 thread | size |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        Console.WriteLine(quick ? $"| fp32 | {floatAccuracy:F4} | | | | | | | | {new FileInfo(ResNet18Model.ResNet18).Length / 1e6:F1} MB |"
            : $"| fp32 | {floatAccuracy:F4} | | | | | {MsPerRow(ResNet18Model.ResNet18, 1):F2} (fp32) | {MsPerRow(ResNet18Model.ResNet18, 2):F2} (fp32) | | {new FileInfo(ResNet18Model.ResNet18).Length / 1e6:F1} MB |");
        var results = new List<(string Name, double Accuracy, double SpeedUp)>();
        var defaults = new QuantizingEstimator.Options();
        double fp32Ms = quick ? double.NaN : MsPerRow(ResNet18Model.ResNet18, 1);
        foreach (var configuration in Configurations.Where(c => only.Split('|').Any(part => c.Name.Contains(part, StringComparison.Ordinal))))
        {
            QuantizingEstimator.Options Options(QuantizationMode mode)
            {
                var options = new QuantizingEstimator.Options
                {
                    ModelFile = ResNet18Model.ResNet18, Mode = mode,
                    WeightScale = configuration.Weights, PerChannelWeights = configuration.PerChannel,
                    AsymmetricActivations = configuration.Asymmetric, MinimumOutputCosine = configuration.MinimumOutputCosine,
                    WeightRange = configuration.Range,
                };
                if (configuration.Rounding is { } rounding) options.WeightRounding = rounding;
                // A fixed recipe sets every knob and searches nothing; a tuned row leaves them to the tuner.
                if (!configuration.Tuned)
                    (options.ActivationCalibration, options.BiasCorrection, options.CrossLayerEqualization, options.Tuning) =
                        (configuration.Activations, configuration.Bias, configuration.Cle, null);
                return options;
            }
            var clock = Stopwatch.StartNew();
            using var int8 = ml.Transforms.QuantizeCalibrated(Options(QuantizationMode.Int8)).Fit(calibration);
            double calibrationSeconds = clock.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"{configuration.Name}: Fit {calibrationSeconds:F1} s = " +
                string.Join(" + ", int8.FitTimings.Select(t => $"{t.Pass} {t.Seconds:F1}")));
            if (int8.Tuning is { } tuning) Console.Error.WriteLine(tuning.Summary + "\n" + tuning.ToCsv());
            using var simulated = quick ? null : ml.Transforms.QuantizeCalibrated(Options(QuantizationMode.Simulated)).Fit(calibration);
            var features = Features(int8, test);
            var predictions = Predict(features);
            double accuracy = Accuracy(predictions);
            double agreement = predictions.Zip(floatPredictions, (a, b) => a == b ? 1.0 : 0.0).Average();
            double cosine = testFeatures.Zip(features, Report.Cosine).Average();
            var files = new[] { "int8", "simulated" }.Select(m => Path.Combine(Path.GetTempPath(), $"evaluate-{m}-{Guid.NewGuid():N}.onnx")).ToArray();
            int8.ExportOnnx(files[0]);
            simulated?.ExportOnnx(files[1]);
            double ms1 = quick ? double.NaN : MsPerRow(files[0], 1), ms2 = quick ? double.NaN : MsPerRow(files[0], 2);
            double sim1 = simulated is null ? double.NaN : MsPerRow(files[1], 1);
            foreach (var f in files) File.Delete(f);
            if (int8.Report.FloatNodes.Count > 0)
                Console.WriteLine($"|   kept in float by the fallback: {string.Join(", ", int8.Report.FloatNodes)} (output cosine {int8.Report.OutputCosine:F4}) | | | | | | | | | |");
            Console.WriteLine($"| {configuration.Name} | {accuracy:F4} | {100 * (floatAccuracy - accuracy):F2} | {100 * agreement:F2}% | {cosine:F4} | " +
                $"{calibrationSeconds:F1} s | {ms1:F2} | {ms2:F2} | {sim1:F2} | {int8.ModelSize / 1e6:F1} MB |");
            if (simulated is not null && (configuration.Name.Contains("(default") || configuration.Name == "max / max, per channel" || configuration.Name.StartsWith("issue ")))
            {
                double simulatedAccuracy = Accuracy(Predict(Features(simulated, test)));
                Console.WriteLine($"|   simulated, same calibration | {simulatedAccuracy:F4} | {100 * (floatAccuracy - simulatedAccuracy):F2} | | | | | | | |");
                Console.WriteLine($"|   simulated − int8 accuracy | {100 * (simulatedAccuracy - accuracy):+0.00;-0.00} points | | | | | | | | |");
            }
            bool isDefault = configuration.Activations == defaults.ActivationCalibration && configuration.Weights == defaults.WeightScale
                && configuration.PerChannel == defaults.PerChannelWeights && configuration.Asymmetric == defaults.AsymmetricActivations
                && configuration.MinimumOutputCosine is null && configuration.Range == defaults.WeightRange
                && configuration.Bias == defaults.BiasCorrection && configuration.Cle == defaults.CrossLayerEqualization;
            results.Add((isDefault ? configuration.Name + " [default]" : configuration.Name, accuracy, fp32Ms / ms1));
        }
        Chart(chart, floatAccuracy, results);
        Console.WriteLine();
        Console.WriteLine($"Chart: {chart}");
    }

    // One bar per configuration: its accuracy, labelled with the int8 speed-up at 1 thread; a line marks fp32.
    private static void Chart(string path, double floatAccuracy, List<(string Name, double Accuracy, double SpeedUp)> results)
    {
        var plot = new ScottPlot.Plot();
        var bars = results.Select((r, i) => new ScottPlot.Bar
        {
            Position = i + 1, Value = 100 * r.Accuracy, Label = $"{100 * r.Accuracy:F1}%, {r.SpeedUp:F1}x",
            FillColor = r.Name.EndsWith("[default]") ? ScottPlot.Colors.Orange : ScottPlot.Colors.SteelBlue,
        }).ToList();
        plot.Add.Bars(bars);
        var line = plot.Add.HorizontalLine(100 * floatAccuracy);
        line.LegendText = $"fp32 {100 * floatAccuracy:F1}%";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            results.Select((r, i) => new ScottPlot.Tick(i + 1, Short(r.Name))).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 20;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 160;
        plot.Axes.Left.Label.Text = "linear-probe accuracy (%)";
        plot.Axes.SetLimitsY(100 * Math.Min(floatAccuracy, results.Min(r => r.Accuracy)) - 3, 100 * floatAccuracy + 2);
        plot.Title("ResNet18 + Fashion-MNIST: int8 accuracy per configuration (label: accuracy, speed-up at 1 thread)");
        plot.ShowLegend();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 1400, 700);
    }

    private static string Short(string name) => name.Replace(" weights", "").Replace("power-of-two", "pow2").Replace("percentile 99.999", "pct").Replace(", per ", "/");

    private static IEnumerable<FeatureRow> FeatureRows(float[][] features, byte[] labels) =>
        features.Select((f, i) => new FeatureRow { Features = f, Label = labels[i] });

    /// <summary>A feature vector and its label.</summary>
    public sealed class FeatureRow
    {
        /// <summary>ResNet18 features.</summary>
        [VectorType(512)]
        public float[] Features { get; set; } = Array.Empty<float>();

        /// <summary>The class.</summary>
        public uint Label { get; set; }
    }
}
