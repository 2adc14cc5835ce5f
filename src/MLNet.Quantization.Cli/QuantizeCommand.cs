using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Quantization.Cli.Calibration;
using Spectre.Console;

namespace MLNet.Quantization.Cli;

/// <summary>
/// <c>mlnet-quantize MODEL.onnx --calibration PATH --output OUT.onnx [options]</c>: the command line over
/// <see cref="QuantizingEstimator"/>. Exit codes: 0 success; 2 bad arguments or bad input (one line on the error
/// writer, naming the culprit, and no output file); 1 anything else.
/// </summary>
public static class QuantizeCommand
{
    private static readonly Dictionary<string, CalibrationMethod> Methods = new(StringComparer.Ordinal)
    {
        ["max"] = CalibrationMethod.Max, ["kl"] = CalibrationMethod.KlDivergence,
        ["percentile"] = CalibrationMethod.Percentile, ["kl-pow2"] = CalibrationMethod.KlDivergencePowerOfTwo,
        ["mean-min-max"] = CalibrationMethod.MeanMinMax, ["mse"] = CalibrationMethod.MeanSquaredError,
    };

    private static readonly Dictionary<string, BiasCorrection> BiasCorrections = new(StringComparer.Ordinal)
    {
        ["none"] = BiasCorrection.None, ["fast"] = BiasCorrection.Fast, ["full"] = BiasCorrection.Full,
    };

    private static readonly Dictionary<string, WeightRounding> WeightRoundings = new(StringComparer.Ordinal)
    {
        ["balanced"] = WeightRounding.Balanced, ["nearest"] = WeightRounding.Nearest,
    };

    private static readonly Dictionary<string, WeightRange> WeightRanges = new(StringComparer.Ordinal)
    {
        ["pair-bounded"] = WeightRange.PairBounded, ["seven-bit"] = WeightRange.SevenBit, ["full"] = WeightRange.Full,
    };

    /// <summary>Runs the tool in-process; returns its exit code.</summary>
    /// <param name="args">The command line, without the program name.</param>
    /// <param name="output">Where the summary and progress go (default: the console).</param>
    /// <param name="error">Where the one-line error goes (default: the console's error stream).</param>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var model = new Argument<FileInfo>("model") { Description = "The float ONNX model." };
        var calibration = new Option<string>("--calibration") { Description = "A folder of images, a text file (one sample a line), or a folder of test_data_set_*/input_*.pb tensors." };
        var kind = new Option<string?>("--calibration-kind") { Description = "images, text or tensors (default: from what --calibration is)." };
        kind.AcceptOnlyFromAmong("images", "text", "tensors");
        var outputFile = new Option<FileInfo>("--output") { Description = "The quantized ONNX model to write.", Required = true };
        var imageSize = new Option<string?>("--image-size") { Description = "H,W (default: the model input's own size)." };
        var layout = new Option<string?>("--layout") { Description = "nchw or nhwc (default: from the input's shape)." };
        layout.AcceptOnlyFromAmong("nchw", "nhwc");
        var channels = new Option<string>("--channels") { Description = "rgb or bgr (rgba or bgra for a 4-channel input; a 1-channel input takes gray).", DefaultValueFactory = _ => "rgb" };
        channels.AcceptOnlyFromAmong("rgb", "bgr");
        var scale = new Option<float>("--scale") { Description = "Pixels (0..255) are multiplied by this first.", DefaultValueFactory = _ => 1f };
        var mean = new Option<string?>("--mean") { Description = "a,b,c: subtracted per channel after scaling, in --channels order (one value for every channel, or one per channel)." };
        var std = new Option<string?>("--std") { Description = "a,b,c: divided per channel after the mean (one value, or one per channel)." };
        var vocab = new Option<string?>("--vocab") { Description = "vocab.txt of a BERT WordPiece tokenizer (text calibration)." };
        var sequenceLength = new Option<int>("--sequence-length") { Description = "Tokens per text row, padded.", DefaultValueFactory = _ => 128 };
        var method = new Option<string>("--method") { Description = "max, kl, percentile, kl-pow2, mean-min-max or mse.", DefaultValueFactory = _ => "max" };
        method.AcceptOnlyFromAmong(Methods.Keys.ToArray());
        var mode = new Option<string>("--mode") { Description = "int8 or simulated.", DefaultValueFactory = _ => "int8" };
        mode.AcceptOnlyFromAmong("int8", "simulated");
        var rows = new Option<int?>("--rows") { Description = "Calibrate on at most this many rows." };
        var excludeNode = new Option<string[]>("--exclude-node") { Description = "Keep this node in float (repeatable).", AllowMultipleArgumentsPerToken = false };
        var excludeOp = new Option<string[]>("--exclude-op") { Description = "Keep this op type in float (repeatable)." };
        var perTensor = new Option<bool>("--per-tensor") { Description = "One weight scale per tensor instead of per channel." };
        var minCosine = new Option<double?>("--min-cosine") { Description = "Keep layers in float until the output cosine to fp32 reaches this on held-back rows." };
        var weightRange = new Option<string>("--weight-range")
        {
            Description = "pair-bounded (default: cannot saturate on any x86-64 CPU), seven-bit, or full (only for CPUs with VNNI, or ARM).",
            DefaultValueFactory = _ => "pair-bounded",
        };
        weightRange.AcceptOnlyFromAmong(WeightRanges.Keys.ToArray());
        var weightRounding = new Option<string>("--weight-rounding")
        {
            Description = "balanced (default: rounding errors cancel within each kernel and output channel) or nearest.",
            DefaultValueFactory = _ => "balanced",
        };
        weightRounding.AcceptOnlyFromAmong(WeightRoundings.Keys.ToArray());
        var biasCorrection = new Option<string>("--bias-correction") { Description = "none, fast or full.", DefaultValueFactory = _ => "none" };
        biasCorrection.AcceptOnlyFromAmong(BiasCorrections.Keys.ToArray());
        var equalize = new Option<bool>("--cross-layer-equalization") { Description = "Equalize Conv → (Relu) → Conv chains first (exact in float)." };
        var smoothQuant = new Option<double?>("--smooth-quant") { Description = "SmoothQuant's alpha in [0, 1] for MatMuls with constant weights (NNCF: 0.95)." };
        var report = new Option<FileInfo?>("--report") { Description = "Write the calibration report as HTML here, and as CSV beside it." };
        var statistics = new Option<FileInfo?>("--statistics") { Description = "Save the calibration statistics here." };
        var fromStatistics = new Option<FileInfo?>("--from-statistics") { Description = "Calibrate from saved statistics, without data." };
        var inputShape = new Option<string[]>("--input") { Description = "NAME=d1,d2,... for inputs with dynamic dimensions (repeatable)." };
        var noDeploymentCheck = new Option<bool>("--no-deployment-check")
        {
            Description = "Return the quantized model as realized, without measuring it against fp32 (by default a model that int8 makes slower stays float).",
        };
        var minSpeedup = new Option<double?>("--min-speedup")
        {
            Description = "With the deployment check: how many times faster than fp32 the int8 model must run on this CPU to be written " +
                "(default 1.1; slower, the float model is written). 0 writes it whatever its speed here: for a model that will run on " +
                "another CPU (one with VNNI, where int8 gains most).",
        };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object." };
        var tune = new Option<bool>("--tune")
        {
            Description = "Search the recipe (the default): SmoothQuant, cross-layer equalization, the method, weight rounding and bias correction, " +
                "each where the model has the ops for it and the option is not given, scored on held-back rows.",
        };
        var noTune = new Option<bool>("--no-tune") { Description = "Quantize with the recipe as given, calibrated on every row." };
        var tuneBudget = new Option<double?>("--tune-budget") { Description = "Seconds the search may take (default: after the first trial, twice what Fit took until it was scored; at least 6 s in all)." };
        var tuneTolerance = new Option<double?>("--tune-tolerance")
        {
            Description = "Stop once the score is this close to fp32's (0.01: one point of agreement), and keep the most damaging layers " +
                "in float, as needed, to get there (unless --min-cosine is given).",
        };

        var root = new RootCommand("Calibrates a float ONNX model and quantizes it to int8 (MLNet.Quantization).")
        {
            model, calibration, kind, outputFile, imageSize, layout, channels, scale, mean, std, vocab, sequenceLength, method, mode, rows,
            excludeNode, excludeOp, perTensor, minCosine, weightRange, weightRounding, biasCorrection, equalize, smoothQuant, report, statistics, fromStatistics,
            inputShape, noDeploymentCheck, minSpeedup, json, tune, noTune, tuneBudget, tuneTolerance,
        };
        var parsed = root.Parse(args);
        bool wantsHelp = args.Any(a => a is "--help" or "-h" or "-?" or "--version");
        if (wantsHelp)
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
        if (parsed.Errors.Count > 0)
        {
            var first = parsed.Errors[0];
            // Name the option whose value failed, which System.CommandLine's message may leave out.
            var option = first.SymbolResult switch
            {
                System.CommandLine.Parsing.OptionResult o => o.Option.Name,
                System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option.Name,
                _ => null,
            };
            return Fail(error, 2, option is null || first.Message.Contains(option, StringComparison.Ordinal) ? first.Message : $"{option}: {first.Message}");
        }

        var clock = Stopwatch.StartNew();
        try
        {
            var modelFile = parsed.GetValue(model)!;
            if (!modelFile.Exists) throw new UsageException($"The model '{modelFile.FullName}' does not exist.");
            var inputs = ModelInput.Read(modelFile.FullName);
            var shapes = ParseShapes(parsed.GetValue(inputShape) ?? Array.Empty<string>());
            var saved = parsed.GetValue(fromStatistics);
            string calibrationPath = parsed.GetValue(calibration) ?? "";
            if (saved is null && calibrationPath.Length == 0)
                throw new UsageException("--calibration PATH is required (or --from-statistics FILE).");

            IDataView data;
            string calibrationKind;
            int? rowCount = null;
            CalibrationStatistics? loaded = null;
            if (saved is not null)
            {
                if (!saved.Exists) throw new UsageException($"The statistics file '{saved.FullName}' does not exist.");
                loaded = CalibrationStatistics.Load(saved.FullName);
                data = EmptyRows(inputs, shapes);
                calibrationKind = "statistics";
            }
            else
            {
                calibrationKind = parsed.GetValue(kind) ?? (Directory.Exists(calibrationPath)
                    ? Directory.EnumerateDirectories(calibrationPath, "test_data_set_*").Any() ? "tensors" : "images"
                    : File.Exists(calibrationPath) ? "text"
                    : throw new UsageException($"The calibration data '{calibrationPath}' does not exist."));
                switch (calibrationKind)
                {
                    case "images":
                        if (!Directory.Exists(calibrationPath)) throw new UsageException($"Image calibration needs a folder; '{calibrationPath}' is not one.");
                        if (inputs.Count != 1) throw new UsageException($"Image calibration feeds one input; the model takes {inputs.Count}: {string.Join(", ", inputs.Select(i => i.Name))}.");
                        var files = ImageRows.Files(calibrationPath);
                        var settings = ImageRows.Settings(inputs[0], ParseSize(parsed.GetValue(imageSize)), parsed.GetValue(layout),
                            parsed.GetValue(channels)!, parsed.GetValue(scale), ParseFloats(parsed.GetValue(mean), "--mean"), ParseFloats(parsed.GetValue(std), "--std"));
                        ImageRows.Read(files[0], settings); // an unreadable first image fails here, before any work
                        data = ImageRows.View(inputs[0], files, settings);
                        rowCount = files.Count;
                        if (!inputs[0].IsStatic)
                            shapes.TryAdd(inputs[0].Name, settings.Dims);
                        break;
                    case "text":
                        if (!File.Exists(calibrationPath)) throw new UsageException($"Text calibration needs a file; '{calibrationPath}' is not one.");
                        int length = parsed.GetValue(sequenceLength);
                        data = TextRows.View(inputs, calibrationPath, parsed.GetValue(vocab), length, out int lines);
                        rowCount = lines;
                        foreach (var name in TextRows.InputNames)
                            if (!inputs.First(i => i.Name == name).IsStatic) shapes.TryAdd(name, new[] { 1, length });
                        break;
                    default:
                        if (!Directory.Exists(calibrationPath)) throw new UsageException($"Tensor calibration needs a folder; '{calibrationPath}' is not one.");
                        var sets = TensorRows.Sets(calibrationPath);
                        data = TensorRows.View(inputs, sets, out var tensorShapes);
                        rowCount = sets.Count;
                        foreach (var input in inputs.Where(i => !i.IsStatic)) shapes.TryAdd(input.Name, tensorShapes[input.Name]);
                        break;
                }
            }

            var options = new QuantizingEstimator.Options
            {
                ModelFile = modelFile.FullName,
                Mode = parsed.GetValue(mode) == "simulated" ? QuantizationMode.Simulated : QuantizationMode.Int8,
                WeightRange = WeightRanges[parsed.GetValue(weightRange)!],
                PerChannelWeights = !parsed.GetValue(perTensor),
                MaximumCalibrationRows = parsed.GetValue(rows),
                ExcludeNodes = NullIfEmpty(parsed.GetValue(excludeNode)),
                ExcludeOpTypes = NullIfEmpty(parsed.GetValue(excludeOp)),
                CheckDeployment = !parsed.GetValue(noDeploymentCheck),
                ShapeDictionary = shapes.Count == 0 ? null : shapes,
                Statistics = loaded,
                // A report shows clipping and KL per tensor, and saved statistics should serve any method later.
                CollectHistograms = parsed.GetValue(report) is not null || parsed.GetValue(statistics) is not null ? true : null,
            };
            // An option given on the command line pins its knob; the tuner searches the others.
            bool Given(Option option) => parsed.GetResult(option) is { Implicit: false };
            if (Given(method)) options.ActivationCalibration = Methods[parsed.GetValue(method)!];
            if (Given(biasCorrection)) options.BiasCorrection = BiasCorrections[parsed.GetValue(biasCorrection)!];
            if (Given(weightRounding)) options.WeightRounding = WeightRoundings[parsed.GetValue(weightRounding)!];
            if (Given(equalize)) options.CrossLayerEqualization = parsed.GetValue(equalize);
            if (Given(smoothQuant)) options.SmoothQuantAlpha = parsed.GetValue(smoothQuant);
            if (Given(minCosine)) options.MinimumOutputCosine = parsed.GetValue(minCosine);
            if (parsed.GetValue(noDeploymentCheck) && Given(minSpeedup))
                throw new UsageException("--min-speedup needs the deployment check, which --no-deployment-check turns off.");
            if (parsed.GetValue(minSpeedup) is { } speedup)
            {
                if (!(speedup >= 0 && double.IsFinite(speedup)))
                    throw new UsageException($"--min-speedup must be a non-negative number, not {speedup.ToString(CultureInfo.InvariantCulture)}.");
                options.MinimumSpeedup = speedup;
            }
            if (parsed.GetValue(noTune) && parsed.GetValue(tune))
                throw new UsageException("--tune and --no-tune contradict each other.");
            if (parsed.GetValue(noTune) && Given(tuneBudget))
                throw new UsageException("--tune-budget needs tuning, which --no-tune turns off.");
            if (parsed.GetValue(noTune) && Given(tuneTolerance))
                throw new UsageException("--tune-tolerance needs tuning, which --no-tune turns off.");
            if (parsed.GetValue(noTune)) options.Tuning = null;
            else if (parsed.GetValue(tuneBudget) is { } seconds)
            {
                if (!(seconds > 0 && seconds <= TimeSpan.MaxValue.TotalSeconds / 2))
                    throw new UsageException($"--tune-budget must be a positive number of seconds, not {seconds.ToString(CultureInfo.InvariantCulture)}.");
                options.Tuning!.TimeBudget = TimeSpan.FromSeconds(seconds);
            }
            if (!parsed.GetValue(noTune) && parsed.GetValue(tuneTolerance) is { } tolerance)
            {
                if (!(tolerance >= 0 && double.IsFinite(tolerance)))
                    throw new UsageException($"--tune-tolerance must be a non-negative number, not {tolerance.ToString(CultureInfo.InvariantCulture)}.");
                options.Tuning!.AbsoluteTolerance = tolerance;
            }
            var mlContext = new MLContext(seed: 1);
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(output),
                Interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected ? InteractionSupport.Yes : InteractionSupport.No,
                Ansi = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            });
            bool quiet = parsed.GetValue(json);
            int? total = rowCount is { } n ? Math.Min(n, parsed.GetValue(rows) ?? int.MaxValue) : null;
            QuantizingTransformer fitted = quiet
                ? mlContext.Transforms.QuantizeCalibrated(options).Fit(data)
                : FitWithProgress(console, mlContext, options, data, total);
            using (fitted)
            {
                var outputPath = parsed.GetValue(outputFile)!.FullName;
                // The model is written last (atomically), so that a failure before it, a report path that cannot be
                // written included, leaves no output file.
                var quantizedReport = saved is null || options.MinimumOutputCosine is not null ? fitted.Report : null;
                if (parsed.GetValue(report) is { } reportFile)
                {
                    fitted.Report.WriteHtml(reportFile.FullName);
                    fitted.Report.WriteCsv(Path.ChangeExtension(reportFile.FullName, ".csv"));
                    fitted.Tuning?.WriteCsv(Path.ChangeExtension(reportFile.FullName, ".trials.csv"));
                }
                if (parsed.GetValue(statistics) is { } statsFile) fitted.Statistics.Save(statsFile.FullName);
                fitted.ExportOnnx(outputPath);
                var summary = new Summary
                {
                    Model = modelFile.FullName, Output = outputPath, CalibrationKind = calibrationKind, Rows = fitted.Statistics.Rows,
                    Mode = fitted.Mode.ToString(), FloatBytes = modelFile.Length, QuantizedBytes = fitted.ModelSize,
                    QuantizedTensorsByOpType = fitted.Calibration.Where(c => c.ElementType != "float")
                        .GroupBy(c => $"{c.OpType} {c.Role.ToString().ToLowerInvariant()}").OrderBy(g => g.Key, StringComparer.Ordinal)
                        .ToDictionary(g => g.Key, g => g.Count()),
                    OutputCosine = quantizedReport is { Rows: > 0 } q ? q.OutputCosine : null,
                    MeasuredRows = quantizedReport?.Rows ?? 0,
                    RealizedVsSimulatedCosine = fitted.Agreement?.OutputCosine,
                    RealizedVsSimulatedRelativeError = fitted.Agreement?.WorstRelativeError,
                    Cpu = fitted.Agreement?.Cpu ?? "",
                    WeightRange = options.WeightRange.ToString(),
                    FloatNodes = quantizedReport?.FloatNodes ?? Array.Empty<string>(),
                    Deployment = fitted.Deployment?.Summary,
                    KeptFloat = fitted.Deployment?.KeptFloat ?? false,
                    Speedup = fitted.Deployment?.Speedup,
                    OutputErrors = fitted.Deployment?.Outputs.ToDictionary(o => o.Name, o => o.RelativeError) ?? new Dictionary<string, double>(),
                    Conversions = fitted.Deployment?.Conversions ?? Array.Empty<string>(),
                    Tuning = fitted.Tuning?.Summary,
                    Trials = fitted.Tuning?.Trials ?? Array.Empty<TuningTrial>(),
                    Seconds = Math.Round(clock.Elapsed.TotalSeconds, 2),
                };
                if (quiet) output.WriteLine(JsonSerializer.Serialize(summary, JsonOptions));
                else Print(console, summary, fitted.Agreement);
            }
            return 0;
        }
        catch (UsageException e)
        {
            return Fail(error, 2, e.Message);
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException)
        {
            return Fail(error, 2, e.Message);
        }
        catch (Exception e)
        {
            return Fail(error, 1, $"{e.GetType().Name}: {e.Message}");
        }
    }

    // Skipped trials have no score (NaN).
    private static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private static int Fail(TextWriter error, int code, string message)
    {
        error.WriteLine($"mlnet-quantize: {message.ReplaceLineEndings(" ")}");
        return code;
    }

    private static QuantizingTransformer FitWithProgress(IAnsiConsole console, MLContext mlContext, QuantizingEstimator.Options options,
        IDataView data, int? total)
    {
        QuantizingTransformer? fitted = null;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var tasks = new Dictionary<int, ProgressTask>();
                options.Progress = new Reporter(p =>
                {
                    if (!tasks.TryGetValue(p.Pass, out var task))
                    {
                        foreach (var previous in tasks.Values) previous.Value = previous.MaxValue;
                        string name = p.Pass switch { 1 => "ranges", 2 => "histograms", 5 => "tuning", _ => "measuring" };
                        task = tasks[p.Pass] = context.AddTask($"pass {p.Pass} ({name})",
                            maxValue: p.Pass == 5 ? options.Tuning?.MaximumTrials ?? 1 : total ?? Math.Max(p.Rows, 1));
                    }
                    if (task.MaxValue < p.Rows) task.MaxValue = p.Rows;
                    task.Value = p.Rows;
                    task.Description = Markup.Escape(p.Trial is { } t
                        ? $"trial {t.Number}: {t.Knob} {t.Value} " + (t.Skipped is null ? $"score {t.Score.ToString("F4", CultureInfo.InvariantCulture)}" : "skipped")
                        : $"pass {p.Pass}: {p.Rows} rows, {p.RowsPerSecond:F1} rows/s");
                });
                fitted = mlContext.Transforms.QuantizeCalibrated(options).Fit(data);
                foreach (var task in tasks.Values) task.Value = task.MaxValue;
            });
        return fitted!;
    }

    private static void Print(IAnsiConsole console, Summary s, RealizationAgreement? agreement)
    {
        var table = new Table().AddColumn("").AddColumn("");
        table.HideHeaders();
        table.AddRow("model", Markup.Escape($"{s.Model} ({s.FloatBytes / 1e6:F1} MB)"));
        table.AddRow("output", Markup.Escape($"{s.Output} ({s.QuantizedBytes / 1e6:F1} MB, {100.0 * s.QuantizedBytes / Math.Max(1, s.FloatBytes):F1}%)"));
        table.AddRow("calibration", Markup.Escape($"{s.CalibrationKind}, {s.Rows} rows, {s.Mode}, {s.WeightRange} weights"));
        table.AddRow("quantized tensors", Markup.Escape(string.Join(", ", s.QuantizedTensorsByOpType.Select(kv => $"{kv.Key} {kv.Value}"))));
        table.AddRow("output cosine vs fp32", s.OutputCosine is { } c ? $"{c.ToString("F5", CultureInfo.InvariantCulture)} on {Plural.Of(s.MeasuredRows, "row")}" : "not measured");
        table.AddRow("realized vs simulated", agreement is null ? "-" : Markup.Escape(
            $"cosine {agreement.OutputCosine.ToString("F5", CultureInfo.InvariantCulture)}, relative error {agreement.WorstRelativeError.ToString("F4", CultureInfo.InvariantCulture)} on {s.Cpu}{(agreement.Agrees ? "" : ": " + agreement.Explanation)}"));
        if (s.FloatNodes.Count > 0) table.AddRow("kept in float", Markup.Escape(string.Join(", ", s.FloatNodes)));
        if (s.Tuning is { } tuning) table.AddRow("tuning", Markup.Escape(tuning));
        foreach (var t in s.Trials)
            table.AddRow($"  trial {t.Number}", Markup.Escape(t.Skipped is { } why ? $"{t.Knob} {t.Value}: skipped ({why})"
                : string.Create(CultureInfo.InvariantCulture, $"{t.Knob} {t.Value}: score {t.Score:F4} (hardest rows {t.HardRowsScore:F4}), cosine {t.MeanCosine:F5}, {t.Seconds:F1} s{(t.Chosen ? ", chosen" : "")}")));
        if (s.Deployment is { } deployment) table.AddRow("deployed model", Markup.Escape(deployment));
        if (s.KeptFloat) table.AddRow("to write int8", "--min-speedup 0 (for another CPU; the accuracy checks still apply)");
        if (s.OutputErrors.Count > 0)
            table.AddRow("relative error per output", Markup.Escape(string.Join(", ", s.OutputErrors.Select(kv => $"{kv.Key} {kv.Value.ToString("F4", CultureInfo.InvariantCulture)}"))));
        foreach (var conversion in s.Conversions) table.AddRow("conversion", Markup.Escape(conversion));
        table.AddRow("time", $"{s.Seconds.ToString("F1", CultureInfo.InvariantCulture)} s");
        console.Write(table);
    }

    private static string[]? NullIfEmpty(string[]? values) => values is { Length: > 0 } ? values : null;

    private static (int, int)? ParseSize(string? text)
    {
        if (text is null) return null;
        var parts = ParseInts(text, "--image-size");
        if (parts.Length != 2 || parts.Any(p => p <= 0)) throw new UsageException($"--image-size takes H,W with two positive numbers, not '{text}'.");
        return (parts[0], parts[1]);
    }

    private static float[]? ParseFloats(string? text, string option)
    {
        if (text is null) return null;
        var values = text.Split(',').Select(p => float.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : float.NaN).ToArray();
        if (values.Any(float.IsNaN)) throw new UsageException($"{option} takes comma-separated numbers, not '{text}'.");
        return values;
    }

    private static int[] ParseInts(string text, string option)
    {
        var values = text.Split(',').Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? (int?)v : null).ToArray();
        if (values.Any(v => v is null)) throw new UsageException($"{option} takes comma-separated integers, not '{text}'.");
        return values.Select(v => v!.Value).ToArray();
    }

    private static Dictionary<string, int[]> ParseShapes(string[] entries)
    {
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            int eq = entry.IndexOf('=');
            if (eq <= 0) throw new UsageException($"--input takes NAME=d1,d2,..., not '{entry}'.");
            shapes[entry[..eq]] = ParseInts(entry[(eq + 1)..], "--input");
        }
        return shapes;
    }

    // The data view that Fit takes with saved statistics: the inputs' columns, no rows.
    private static IDataView EmptyRows(IReadOnlyList<ModelInput> inputs, IReadOnlyDictionary<string, int[]> shapes)
    {
        var builder = new DataViewSchema.Builder();
        foreach (var input in inputs)
        {
            var dims = shapes.GetValueOrDefault(input.Name) ?? (input.IsStatic ? input.Dims.Select(d => (int)d).ToArray()
                : throw new UsageException($"Model input '{input.Name}' has dynamic dimensions: give --input {input.Name}=d1,d2,..."));
            builder.AddColumn(input.Name, new VectorDataViewType(TensorRows.Column(input), dims));
        }
        return new RowsDataView(builder.ToSchema(), () => Enumerable.Empty<Array[]>());
    }

    private sealed class Reporter : IProgress<CalibrationProgress>
    {
        private readonly Action<CalibrationProgress> _report;

        public Reporter(Action<CalibrationProgress> report) => _report = report;

        public void Report(CalibrationProgress value) => _report(value);
    }
}
