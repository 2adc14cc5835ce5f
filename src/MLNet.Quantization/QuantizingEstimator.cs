using Microsoft.ML;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization;

/// <summary>
/// Calibrates a float ONNX model on the rows of an <see cref="IDataView"/> and quantizes it to int8.
/// Create it with <see cref="QuantizationCatalog.QuantizeCalibrated(TransformsCatalog, string, string[], string[])"/>.
/// </summary>
/// <remarks>
/// <format type="text/markdown"><![CDATA[
/// ### Estimator Characteristics
/// |  |  |
/// | -- | -- |
/// | Does this estimator need to look at the data to train its parameters? | Yes: every calibration row is read once for ranges, and again for histograms when the method needs them (or `CollectHistograms` asks); not at all from saved statistics; once more each for SmoothQuant and fast bias correction when they are on. With tuning (the default), every fifth row is held back from calibration, and each trial streams only the steps that differ from a recipe already run, then runs its model over the held-back rows |
/// | Input column data type | Known-sized vectors of the model inputs' element types (the same as `ApplyOnnxModel`) |
/// | Output column data type | The model outputs' types, as `ApplyOnnxModel` gives them |
/// | Exportable to ONNX | No (no `ConvertToOnnx` support); the quantized model itself is an ONNX file: <xref:MLNet.Quantization.QuantizingTransformer.ExportOnnx(System.String)> writes it |
///
/// `Fit` follows TVM's quantization flow, as a list of passes (see `QuantizationPipeline`): prepare the graph (fold
/// BatchNormalization, raise the opset to 13), optionally equalize it (cross-layer equalization, SmoothQuant), annotate the tensors to quantize per op, collect per-tensor statistics by streaming the rows through the float model,
/// calibrate thresholds (max by default; KL divergence, percentile, power-of-two KL and mean of per-row min/max on request), optionally correct the biases, and realize the model as QuantizeLinear/DequantizeLinear pairs that
/// ONNX Runtime fuses into int8 kernels, or as simulated float fake-quantization; with `MinimumOutputCosine`, fall back
/// to float for the layers that cost the most accuracy. With `Tuning` (on by default), the recipe itself is searched
/// first, one knob at a time, on held-back rows (see <xref:MLNet.Quantization.TuningOptions>). Memory stays bounded whatever the number of rows.
/// ]]></format>
/// </remarks>
public sealed partial class QuantizingEstimator : IEstimator<QuantizingTransformer>
{
    private readonly TransformsCatalog _catalog;
    private readonly Options _options;
    private readonly object _schemaLock = new();
    private (string Key, Microsoft.ML.Transforms.Onnx.OnnxScoringEstimator Estimator)? _schemaEstimator;
    private TemporaryModelFile? _schemaModel;

    internal QuantizingEstimator(TransformsCatalog catalog, Options options)
    {
        _catalog = catalog ?? throw new ArgumentNullException(nameof(catalog));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Calibrates on <paramref name="input"/> and returns the quantized model.</summary>
    public QuantizingTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        var settings = _options.Freeze();
        try
        {
            return Fit(settings, input);
        }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
        {
            throw new InvalidOperationException(RunFailure(settings.ModelFile, e), e);
        }
    }

    // ONNX Runtime loaded a model but could not run it on a row: the float model on the user's rows (an index out of
    // range, a shape it cannot take) or a model that Fit derived from it. Its message names the node; the rest of it,
    // in ONNX Runtime's own words, stays in the inner exception.
    private static string RunFailure(string file, Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
    {
        var node = System.Text.RegularExpressions.Regex.Match(e.Message, @"while running (\w+) node\. Name:'([^']*)'");
        string where = node.Success ? $"at node '{node.Groups[2].Value}' ({node.Groups[1].Value})" : "at a node it did not name";
        return $"ONNX Runtime could not run '{file}', or the model that Fit made of it, on the rows, {where}. Check that the rows " +
            "fit the model (shapes, and values such as indices); where the node is one that quantization rewrote, keep it in " +
            "float with ExcludeNodes. ONNX Runtime's own message is the inner exception.";
    }

    private QuantizingTransformer Fit(QuantizationSettings settings, IDataView input)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var loaded = Load(settings, input);
        // The recipe as set, or the best recipe the tuner finds; then the checks of the model returned.
        QuantizationContext context;
        if (settings.Tuning is not null)
        {
            context = Tune.Tuner.Run(loaded, clock.Elapsed);
            Tune.Tuner.ReleaseTrialMemory(context);
        }
        else
        {
            context = loaded;
            QuantizationPipeline.Run(context, QuantizationPipeline.Recipe(settings));
        }
        QuantizationPipeline.Run(context, QuantizationPipeline.Checks(context.Settings));
        context = RecipeAsSetIfFaster(context);
        StandInOutputs.Remove(context.Realized, context.StandIns); // the model returned gives the user's outputs
        context.FloatOutputs = null; // for the checks only: the report below keeps the context alive
        var report = new Lazy<CalibrationReport>(() => CalibrationReport.Create(context.Model, context.Plan, context.Parameters,
            context.Realized, context.Statistics, context.FloatNodes, context.Agreement, input, context.Settings, context.Deployment, context.Tuning));
        return new QuantizingTransformer(_catalog, context.Realized, context.Parameters.Table, context.Statistics, report,
            context.Agreement, context.Settings, input) { FitTimings = context.Timings, Deployment = context.Deployment, Tuning = context.Tuning };
    }

    // The tuner weighs accuracy only, so the recipe it chose may be the one that int8 does not make faster (SmoothQuant's
    // Muls on a CPU without VNNI): when the deployment check returns it in float, the recipe as set is checked too and
    // returned if its int8 model is fast enough, with the trials table saying so. Not where the chosen recipe was fast
    // enough until layers went back to float for the error bound: the recipe as set, less accurate on the same rows,
    // would not need fewer, and its check (on a large model, minutes) would only confirm the float model.
    private static QuantizationContext RecipeAsSetIfFaster(QuantizationContext chosen)
    {
        var asSet = chosen.RecipeAsSet;
        chosen.RecipeAsSet = null;
        if (asSet is null || chosen.Deployment is not { KeptFloat: true } slow || chosen.Tuning is null || slow.SlowedByErrorBoundOnly)
            return chosen;
        asSet.FloatOutputs = chosen.FloatOutputs;
        QuantizationPipeline.Run(asSet, QuantizationPipeline.Checks(asSet.Settings));
        if (asSet.Deployment is not { KeptFloat: false, QuantizedNothing: false } fast)
            return chosen;
        asSet.Tuning = chosen.Tuning.WithRecipeAsSet(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"The best trial's int8 model ran {slow.Speedup:F2}x the float model's speed on this CPU, under MinimumSpeedup {slow.MinimumSpeedup}; the recipe as set ran {fast.Speedup:F2}x and is returned."));
        return asSet;
    }

    // Reads, checks and prepares the float model: everything the passes start from.
    private static QuantizationContext Load(QuantizationSettings settings, IDataView input)
    {
        var source = OnnxGraph.Load(settings.ModelFile);
        var conversions = ConvertForMlNet(source);
        CheckValues(source, settings.ModelFile);
        CheckNotQuantized(source, settings.ModelFile);
        CheckShapes(source, settings);
        var model = Prepare(source, settings.ModelFile);
        CheckColumnNames(model, settings);
        // Only the outputs asked for are computed, quantized for, compared and timed.
        if (settings.OutputColumnNames is { } wanted) GraphPreparation.KeepOutputs(model, wanted);
        // A sequence or map output is compared through the tensor it is made from.
        var standIns = StandInOutputs.Add(model);
        var exclusions = Exclusions.Create(model, settings.ExcludeNodes, settings.ExcludeOpTypes);
        return new QuantizationContext(settings, input, model, exclusions,
            CalibrationStatistics.Fingerprint(settings.ModelFile), InputShapes(model, settings))
        {
            Conversions = conversions, Source = source, StandIns = standIns,
        };
    }

    // What ML.NET cannot feed or read as the model has it, made so that it can, in place, for Fit and GetOutputSchema
    // alike: float16 widened to float32, scalar outputs given the shape [1]. One line per change (Deployment.Conversions).
    private static IReadOnlyList<string> ConvertForMlNet(OnnxGraph model) =>
        Float16Conversion.Convert(model).Concat(ScalarOutputConversion.Convert(model)).ToList();

    // The model's inputs as the statistics record them: element type and the shape the rows are fed with.
    private static IReadOnlyDictionary<string, string> InputShapes(OnnxGraph model, QuantizationSettings settings) =>
        model.RealInputs().ToDictionary(i => i.Name, i =>
        {
            var type = i.Type?.TensorType;
            var dims = settings.ShapeDictionary?.GetValueOrDefault(i.Name)?.Select(d => d.ToString())
                ?? type?.Shape?.Dim.Select(d => d.DimParam.Length > 0 ? d.DimParam : d.DimValue.ToString()) ?? Array.Empty<string>();
            return $"{(global::Onnx.TensorProto.Types.DataType)(type?.ElemType ?? 0)}[{string.Join(",", dims)}]";
        });

    /// <summary>
    /// The output schema, available before <c>Fit</c>: the same columns and types as the float model gives. ML.NET's
    /// scoring estimator answers it, and opens an ONNX Runtime session to do so: that estimator is kept for the next
    /// call with the same settings and model file, so that repeated calls cost one session, not one each.
    /// </summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var settings = _options.Freeze();
        var info = new FileInfo(settings.ModelFile);
        var key = string.Join("\n", settings.ModelFile, info.Length, info.LastWriteTimeUtc.Ticks,
            string.Join(",", settings.InputColumnNames ?? Array.Empty<string>()), string.Join(",", settings.OutputColumnNames ?? Array.Empty<string>()),
            string.Join(";", settings.ShapeDictionary?.Select(kv => $"{kv.Key}={string.Join(",", kv.Value)}") ?? Array.Empty<string>()));
        InvalidOperationException LoadFailure(Microsoft.ML.OnnxRuntime.OnnxRuntimeException ort, Exception inner) =>
            new($"ONNX Runtime cannot load the float model '{settings.ModelFile}': {Realize.Sessions.Reason(ort)}", inner);
        lock (_schemaLock)
        {
            if (_schemaEstimator is not { } cached || cached.Key != key)
            {
                var model = OnnxGraph.Load(settings.ModelFile);
                CheckColumnNames(model, settings);
                var shapes = settings.ShapeDictionary?.ToDictionary(kv => kv.Key, kv => kv.Value);
                // ML.NET refuses any Float16 tensor it meets, weights included, and cannot read a scalar output: the
                // schema of such a model is that of its float32 form with scalar outputs of shape [1], which is what the
                // quantized model takes and gives.
                _schemaModel?.Dispose();
                _schemaModel = null;
                var file = settings.ModelFile;
                bool converted = ConvertForMlNet(model).Count > 0;
                CheckValues(model, settings.ModelFile);
                if (converted)
                {
                    _schemaModel = new TemporaryModelFile(model.ToBytes());
                    file = _schemaModel.Path;
                }
                Microsoft.ML.Transforms.Onnx.OnnxScoringEstimator floatModel;
                try
                {
                    floatModel = settings.OutputColumnNames is null && settings.InputColumnNames is null
                        ? _catalog.ApplyOnnxModel(file, shapes)
                        : _catalog.ApplyOnnxModel(
                            settings.OutputColumnNames?.ToArray() ?? model.Graph.Output.Select(o => o.Name).ToArray(),
                            settings.InputColumnNames?.ToArray() ?? model.RealInputs().Select(i => i.Name).ToArray(),
                            file, shapes, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100);
                }
                catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
                {
                    throw LoadFailure(e, e);
                }
                catch (InvalidOperationException e) when (e.InnerException is Microsoft.ML.OnnxRuntime.OnnxRuntimeException ort)
                {
                    throw LoadFailure(ort, e); // ML.NET's own wrapping ("Error initializing model :Microsoft.ML.OnnxRuntime.…")
                }
                _schemaEstimator = cached = (key, floatModel);
            }
            return cached.Estimator.GetOutputSchema(inputSchema);
        }
    }

    // Ops that only a quantized model holds: quantizing such a model again would stack a second rounding on the first.
    private static readonly HashSet<string> QuantizedOps = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
        "ConvInteger", "QLinearAdd", "QLinearMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention",
    };

    // A model that cannot be raised to opset 13 but holds nothing to quantize passes through as it is: the raise serves
    // quantization only.
    private static OnnxGraph Prepare(OnnxGraph source, string file)
    {
        try
        {
            return GraphPreparation.Prepare(source);
        }
        catch (NotSupportedException) when (!source.Graph.Node.Any(n => OpRegistry.Find(n.OpType) is not null))
        {
            return source.Clone();
        }
        catch (NotSupportedException e)
        {
            throw new NotSupportedException($"'{file}': {e.Message}", e);
        }
    }

    // ML.NET maps every input and output to a column: each input needs a tensor type, each output a tensor type or a
    // sequence or map (ML.NET's OnnxSequenceType and OnnxMapType columns: a classifier's ZipMap probabilities), and a
    // model needs an output.
    private static void CheckValues(OnnxGraph model, string file)
    {
        if (model.Graph.Output.Count == 0)
            throw new InvalidDataException($"'{file}' declares no graph outputs: there is nothing to score.");
        var untyped = model.RealInputs().Concat(model.Graph.Output)
            .FirstOrDefault(v => v.Type is null || v.Type.ValueCase == global::Onnx.TypeProto.ValueOneofCase.None || string.IsNullOrEmpty(v.Name)
                || v.Type.TensorType is { ElemType: <= 0 });
        if (untyped is not null)
            throw new InvalidDataException(
                $"'{file}' declares graph {(model.Graph.Output.Contains(untyped) ? "output" : "input")} '{untyped.Name}' without a type, which ML.NET needs to map it to a column.");
        var notTensor = model.RealInputs().FirstOrDefault(v => v.Type.TensorType is null)
            ?? model.Graph.Output.FirstOrDefault(v => v.Type.TensorType is null && !IsSequenceOrMap(v.Type));
        if (notTensor is not null)
            throw new NotSupportedException(
                $"'{file}': graph {(model.Graph.Output.Contains(notTensor) ? "output" : "input")} '{notTensor.Name}' is {Kind(notTensor.Type)}, " +
                "which ML.NET cannot " + (model.Graph.Output.Contains(notTensor) ? "read" : "feed") + " (its OnnxTransformer takes tensor inputs, and reads tensors, sequences and maps).");
        var produced = model.Graph.Node.SelectMany(n => n.Output).Concat(model.Graph.Input.Select(i => i.Name))
            .Concat(model.Graph.Initializer.Select(i => i.Name)).ToHashSet(StringComparer.Ordinal);
        var orphan = model.Graph.Output.FirstOrDefault(o => !produced.Contains(o.Name));
        if (orphan is not null)
            throw new InvalidDataException($"'{file}' declares graph output '{orphan.Name}', which no node produces.");
        // After float16 became float32: a type that ML.NET's OnnxTransformer has no column for (bfloat16, complex),
        // which it would refuse later without naming the tensor.
        var unmapped = model.RealInputs().Concat(model.Graph.Output).FirstOrDefault(v => v.Type.TensorType is { } t && ElementTypes.Column(t.ElemType) is null);
        if (unmapped is not null)
            throw new NotSupportedException(
                $"'{file}': graph {(model.Graph.Output.Contains(unmapped) ? "output" : "input")} '{unmapped.Name}' is " +
                $"{(global::Onnx.TensorProto.Types.DataType)unmapped.Type.TensorType.ElemType}, which ML.NET cannot feed or read " +
                "(its OnnxTransformer maps float, double, integer, bool and string tensors; float16 is widened to float). Cast it to float in the model.");
    }

    /// <summary>Whether a value is a sequence or a map, which ML.NET reads as an OnnxSequenceType or OnnxMapType column, not a tensor.</summary>
    private static bool IsSequenceOrMap(global::Onnx.TypeProto type) =>
        type.ValueCase is global::Onnx.TypeProto.ValueOneofCase.SequenceType or global::Onnx.TypeProto.ValueOneofCase.MapType;

    private static string Kind(global::Onnx.TypeProto type) => type.ValueCase switch
    {
        global::Onnx.TypeProto.ValueOneofCase.SequenceType => "a sequence",
        global::Onnx.TypeProto.ValueOneofCase.MapType => "a map",
        global::Onnx.TypeProto.ValueOneofCase.OptionalType => "an optional",
        global::Onnx.TypeProto.ValueOneofCase.SparseTensorType => "a sparse tensor",
        _ => $"a value of kind {type.ValueCase}",
    };

    private static void CheckNotQuantized(OnnxGraph model, string file)
    {
        var quantized = model.Graph.Node.Where(n => QuantizedOps.Contains(n.OpType)).ToList();
        if (quantized.Count > 0)
            throw new InvalidOperationException(
                $"'{file}' is already quantized: it holds {quantized.Count} quantization nodes ({quantized[0].OpType} '{OnnxGraph.Label(quantized[0])}' first). " +
                "Quantize the float model instead.");
    }

    // Every shape given must name a model input, match its rank, be positive, and agree with its static dimensions.
    private static void CheckShapes(OnnxGraph model, QuantizationSettings settings)
    {
        if (settings.ShapeDictionary is null) return;
        var inputs = model.RealInputs().ToDictionary(i => i.Name);
        foreach (var (name, dims) in settings.ShapeDictionary)
        {
            string Problem(string what) => $"ShapeDictionary entry '{name}' [{string.Join(",", dims)}] {what}";
            if (!inputs.TryGetValue(name, out var input))
                throw new ArgumentException(Problem($"names no model input. Inputs: {string.Join(", ", inputs.Keys)}."), nameof(Options.ShapeDictionary));
            if (dims.Any(d => d <= 0))
                throw new ArgumentException(Problem("has a dimension that is not positive."), nameof(Options.ShapeDictionary));
            var declared = input.Type?.TensorType?.Shape?.Dim;
            if (declared is null) continue;
            if (declared.Count != dims.Length)
                throw new ArgumentException(Problem($"has rank {dims.Length}, and the input has rank {declared.Count}."), nameof(Options.ShapeDictionary));
            for (int d = 0; d < dims.Length; d++)
                if (declared[d].DimValue > 0 && declared[d].DimValue != dims[d])
                    throw new ArgumentException(Problem($"sets dimension {d} to {dims[d]}, which the model fixes at {declared[d].DimValue}."),
                        nameof(Options.ShapeDictionary));
        }
    }

    private static void CheckColumnNames(OnnxGraph model, QuantizationSettings settings)
    {
        Check(settings.InputColumnNames, model.RealInputs().Select(i => i.Name).ToList(), "input", nameof(Options.InputColumnNames));
        Check(settings.OutputColumnNames, model.Graph.Output.Select(o => o.Name).ToList(), "output", nameof(Options.OutputColumnNames));

        static void Check(IReadOnlyList<string>? names, List<string> real, string kind, string parameter)
        {
            var unknown = names?.FirstOrDefault(n => !real.Contains(n));
            if (unknown is not null)
                throw new ArgumentException(
                    $"Column '{unknown}' names no {kind} of the model. Its {kind}s are: {string.Join(", ", real)}.", parameter);
        }
    }
}
