using Microsoft.ML;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests;

/// <summary>A tiny model run in float, realized int8 and simulated, with the exported int8 graph to inspect.</summary>
internal sealed record QuantizedRun(float[][] Float, float[][] Int8, float[][] Simulated, OnnxGraph Int8Model, OnnxGraph SimulatedModel, CalibrationTable Table)
{
    public static QuantizedRun Of(string modelPath, Func<MLContext, IDataView> data, string output,
        CalibrationMethod method = CalibrationMethod.Max, bool perChannel = true)
    {
        var mlContext = new MLContext(seed: 1);
        var rows = data(mlContext);
        var floatOutput = TinyData.Column(mlContext.Transforms.ApplyOnnxModel(modelPath).Fit(rows).Transform(rows), output);
        QuantizingTransformer Fit(QuantizationMode mode) => mlContext.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options
        {
            CheckDeployment = false, Tuning = null, ModelFile = modelPath, Mode = mode, ActivationCalibration = method, PerChannelWeights = perChannel,
        }).Fit(rows);
        using var int8 = Fit(QuantizationMode.Int8);
        using var simulated = Fit(QuantizationMode.Simulated);
        using var directory = new TempDirectory();
        int8.ExportOnnx(directory.File("int8.onnx"));
        simulated.ExportOnnx(directory.File("simulated.onnx"));
        WeightPairs.AssertCannotSaturate(OnnxGraph.Load(directory.File("int8.onnx")), Path.GetFileName(modelPath));
        return new QuantizedRun(floatOutput,
            TinyData.Column(int8.Transform(rows), output),
            TinyData.Column(simulated.Transform(rows), output),
            OnnxGraph.Load(directory.File("int8.onnx")), OnnxGraph.Load(directory.File("simulated.onnx")), int8.Calibration);
    }

    public int Count(string opType) => Int8Model.Graph.Node.Count(n => n.OpType == opType);

    public float Scale(string tensor) => Table.Find(tensor, TensorRole.Activation)!.Scale;

    /// <summary>Smallest per-row cosine between the int8 and the float outputs.</summary>
    public double MinCosine => Float.Zip(Int8, TinyData.Cosine).Min();
}
