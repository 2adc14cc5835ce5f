using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using MLNet.Quantization.Samples;

namespace MLNet.Quantization.Benchmarks;

// PaddleOCR v4 models (weights in Constant nodes, opsets 9 and 11, dynamic shapes), which no test was written for:
// does QuantizeCalibrated run on them, how close are the outputs, how fast. Fetch them first: scripts/fetch-ocr-models.sh.
// Usage: dotnet run -c Release --project bench/MLNet.Quantization.Benchmarks -- ocr [threads] [calibrationRows] [only models whose file contains this] [all: every configuration of issue 11, or only those whose name contains this]
internal static class OcrHarness
{
    private static readonly (string File, int Height, int Width)[] Models =
    {
        ("ch_PP-OCRv4_det_infer.onnx", 224, 224),
        ("ch_ppocr_mobile_v2.0_cls_infer.onnx", 48, 192),
        ("ch_PP-OCRv4_rec_infer.onnx", 48, 320),
    };

    // Issue 11: the defaults, then each accuracy algorithm (SmoothQuant has no MatMul with constant weights to act on in
    // the classifier; the recognizer has some).
    private static readonly (string Name, Action<QuantizingEstimator.Options> Set)[] Configurations =
    {
        ("defaults", _ => { }),
        ("issue 17: recipe defaults, not tuned", o => o.Tuning = null),
        ("issue 17: tuned, no deployment check", o => o.CheckDeployment = false),
        ("issue 17: not tuned, no deployment check", o => { o.Tuning = null; o.CheckDeployment = false; }),
        ("+ fast bias correction", o => o.BiasCorrection = BiasCorrection.Fast),
        ("+ full bias correction", o => o.BiasCorrection = BiasCorrection.Full),
        ("+ cross-layer equalization", o => o.CrossLayerEqualization = true),
        ("+ CLE + fast bias correction", o => { o.CrossLayerEqualization = true; o.BiasCorrection = BiasCorrection.Fast; }),
        ("+ CLE + full bias correction", o => { o.CrossLayerEqualization = true; o.BiasCorrection = BiasCorrection.Full; }),
        ("+ SmoothQuant 0.5", o => o.SmoothQuantAlpha = 0.5),
        ("+ SmoothQuant 0.8", o => o.SmoothQuantAlpha = 0.8),
        ("+ SmoothQuant 0.95", o => o.SmoothQuantAlpha = 0.95),
        ("+ SmoothQuant 0.8 + fast bias correction", o => { o.SmoothQuantAlpha = 0.8; o.BiasCorrection = BiasCorrection.Fast; }),
        ("defaults, fallback to 0.999 output cosine", o => o.MinimumOutputCosine = 0.999),
        // The defaults before balanced weight rounding (sixth session of issues 16 and 17).
        ("nearest rounding: defaults, tuned", o => o.WeightRounding = WeightRounding.Nearest),
        ("nearest rounding: recipe defaults, not tuned", o => { o.Tuning = null; o.WeightRounding = WeightRounding.Nearest; }),
        ("mean min/max + fast bias correction", o => { o.ActivationCalibration = CalibrationMethod.MeanMinMax; o.BiasCorrection = BiasCorrection.Fast; }),
        ("squared error + fast bias correction", o => { o.ActivationCalibration = CalibrationMethod.MeanSquaredError; o.BiasCorrection = BiasCorrection.Fast; }),
        ("squared error + full bias correction", o => { o.ActivationCalibration = CalibrationMethod.MeanSquaredError; o.BiasCorrection = BiasCorrection.Full; }),
    };

    public static void Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0]) : 1;
        int calibrationRows = args.Length > 1 ? int.Parse(args[1]) : 100;
        string onlyModel = args.Length > 2 ? args[2] : "";
        string configuration = args.Length > 3 ? args[3] : "";
        bool all = configuration == "all";
        const int HeldOut = 100;
        var directory = Path.Combine(FashionMnist.DataDirectory(AppContext.BaseDirectory), "..", "models", "ocr");
        var (images, _) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset", count: calibrationRows + HeldOut);
        var ml = new MLContext(seed: 1);
        Console.WriteLine($"PaddleOCR models, intra-op threads {threads}, calibrated on {calibrationRows} Fashion-MNIST images, compared on {HeldOut} others");
        Console.WriteLine();
        Console.WriteLine($"CPU {Realize.CpuFeatures.Describe()}");
        Console.WriteLine();
        Console.WriteLine("| model | configuration | opset | result | int8 vs fp32 output cosine (mean / worst) | fp32 ms/row | int8 ms/row | speed-up | Fit |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (file, height, width) in Models.Where(m => m.File.Contains(onlyModel, StringComparison.Ordinal)))
        foreach (var (name, set) in all ? Configurations
                 : configuration.Length > 0 ? Configurations.Where(c => c.Name.Contains(configuration, StringComparison.Ordinal))
                 : Configurations.Take(1))
        {
            var path = Path.Combine(directory, file);
            var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            string input = graph.Graph.Input[0].Name, output = graph.Graph.Output[0].Name;
            long opset = graph.OpsetImport.First(o => o.Domain is "" or "ai.onnx").Version;
            var shapes = new Dictionary<string, int[]> { [input] = new[] { 1, 3, height, width } };
            IDataView Rows(IEnumerable<byte[]> source) => ml.Data.LoadFromEnumerable(
                source.Select(image => new Row { x = Normalize(image, height, width) }),
                SchemaFor(input, 3 * height * width));
            var calibration = Rows(images.Take(calibrationRows));
            var heldOut = Rows(images.Skip(calibrationRows));
            try
            {
                var options = new QuantizingEstimator.Options
                {
                    ModelFile = path, ShapeDictionary = shapes, IntraOpNumThreads = threads,
                    InputColumnNames = new[] { input }, OutputColumnNames = new[] { output },
                };
                // Every row but the two tuned ones is a fixed recipe (issue 11's table): nothing tuned.
                if (name is not ("defaults" or "issue 17: tuned, no deployment check" or "nearest rounding: defaults, tuned")) options.Tuning = null;
                set(options);
                // OCR_NO_CHECK=1: every row without the deployment check, so that the int8 model of each recipe is the one
                // compared (on a CPU where the check returns the float model).
                if (Environment.GetEnvironmentVariable("OCR_NO_CHECK") == "1") options.CheckDeployment = false;
                // OCR_SIMULATED=1: every row in simulated mode (fake quantization in float), to tell the arithmetic from the realization.
                if (Environment.GetEnvironmentVariable("OCR_SIMULATED") == "1") options.Mode = QuantizationMode.Simulated;
                var clock = Stopwatch.StartNew();
                using var int8 = ml.Transforms.QuantizeCalibrated(options).Fit(calibration);
                double fitSeconds = clock.Elapsed.TotalSeconds;
                if (int8.Tuning is { } tuning) Console.Error.WriteLine(tuning.Summary + "\n" + tuning.ToCsv());
                // OCR_REPORT=file.csv: the report of the (last) row's fit, per tensor: range, SQNR, added noise.
                if (Environment.GetEnvironmentVariable("OCR_REPORT") is { Length: > 0 } reportFile) int8.Report.WriteCsv(reportFile);
                var fp32 = ml.Transforms.ApplyOnnxModel(new OnnxOptions
                {
                    ModelFile = path, ShapeDictionary = shapes, InputColumns = new[] { input }, OutputColumns = new[] { output },
                    IntraOpNumThreads = threads, InterOpNumThreads = 1,
                }).Fit(calibration);
                (float[][] Values, double Ms) Score(ITransformer model)
                {
                    model.Transform(calibration).GetColumn<float[]>(output).Take(5).Count(); // warm-up
                    var watch = Stopwatch.StartNew();
                    var values = model.Transform(heldOut).GetColumn<float[]>(output).ToArray();
                    return (values, watch.Elapsed.TotalMilliseconds / HeldOut);
                }
                var reference = Score(fp32);
                var quantized = Score(int8);
                var cosines = reference.Values.Zip(quantized.Values, Report.Cosine).ToArray();
                Console.WriteLine($"| {file} | {name} | {opset} | ran, {int8.Calibration.Count} tensors quantized | {cosines.Average():F4} / {cosines.Min():F4} | " +
                    $"{reference.Ms:F2} | {quantized.Ms:F2} | {reference.Ms / quantized.Ms:F2}x | {fitSeconds:F1} s |");
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
            {
                Console.WriteLine($"| {file} | {name} | {opset} | refused: {e.Message} | | | | | |");
            }
        }
    }

    // PaddleOCR's normalization: RGB in [0, 1], minus ImageNet's mean, over its deviation; nearest-neighbour resize.
    private static float[] Normalize(byte[] image, int height, int width)
    {
        float[] mean = { 0.485f, 0.456f, 0.406f }, deviation = { 0.229f, 0.224f, 0.225f };
        var result = new float[3 * height * width];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    result[(c * height + y) * width + x] = (image[y * 28 / height * 28 + x * 28 / width] / 255f - mean[c]) / deviation[c];
        return result;
    }

    private static SchemaDefinition SchemaFor(string input, int size)
    {
        var definition = SchemaDefinition.Create(typeof(Row));
        definition[nameof(Row.x)].ColumnName = input;
        definition[nameof(Row.x)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        return definition;
    }

    /// <summary>One image.</summary>
    public sealed class Row
    {
#pragma warning disable IDE1006
        /// <summary>The normalized pixels.</summary>
        public float[] x { get; set; } = Array.Empty<float>();
#pragma warning restore IDE1006
    }
}
