using Microsoft.ML;
using MLNet.Quantization.Annotate;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Pipeline;

namespace MLNet.Quantization.Tests.Pipeline;

/// <summary>Contexts for running single passes on tiny models.</summary>
internal static class Contexts
{
    /// <summary>
    /// The context of <paramref name="modelFile"/>'s prepared model. <paramref name="tuning"/> null: a pass under test runs
    /// alone, on every row; else the tuner's root context, every fifth row held back.
    /// </summary>
    public static QuantizationContext For(string modelFile, IDataView rows, QuantizingEstimator.Options? options = null, TuningOptions? tuning = null)
    {
        var o = options ?? new QuantizingEstimator.Options();
        o.ModelFile = modelFile;
        o.Tuning = tuning;
        var model = GraphPreparation.Prepare(OnnxGraph.Load(modelFile));
        return new QuantizationContext(o.Freeze(), rows, model, Exclusions.Create(model, null, null), "", new Dictionary<string, string>());
    }

    /// <summary>Runs <paramref name="passes"/> as one step each.</summary>
    public static QuantizationContext Run(this QuantizationContext context, params IQuantizationPass[] passes)
    {
        QuantizationPipeline.Run(context, passes.Select(p => (IReadOnlyList<IQuantizationPass>)new[] { p }).ToList());
        return context;
    }

    /// <summary>Writes the context's float model to <paramref name="path"/>.</summary>
    public static string SaveModel(this QuantizationContext context, string path)
    {
        File.WriteAllBytes(path, context.Model.ToBytes());
        return path;
    }
}
