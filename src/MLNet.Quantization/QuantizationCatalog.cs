using MLNet.Quantization;

namespace Microsoft.ML;

/// <summary>Post-training int8 quantization of ONNX models, calibrated on data, for <see cref="TransformsCatalog"/>.</summary>
public static class QuantizationCatalog
{
    /// <summary>
    /// Calibrates the float ONNX model <paramref name="modelFile"/> on the rows given to <c>Fit</c> and quantizes it to int8
    /// with the default settings: max activation ranges with asymmetric zero points, per-channel max weight scales, realized int8.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelFile">The float ONNX model.</param>
    /// <param name="outputColumnNames">Model outputs to produce (and their column names); null for all of them.</param>
    /// <param name="inputColumnNames">Model inputs to feed (and their column names); null for all of them.</param>
    /// <example>
    /// <code>
    /// var estimator = mlContext.Transforms.QuantizeCalibrated("ResNet18.onnx");
    /// using var int8 = estimator.Fit(calibrationImages);
    /// var features = int8.Transform(images);
    /// </code>
    /// </example>
    public static QuantizingEstimator QuantizeCalibrated(this TransformsCatalog catalog, string modelFile,
        string[]? outputColumnNames = null, string[]? inputColumnNames = null) =>
        QuantizeCalibrated(catalog, new QuantizingEstimator.Options
        {
            ModelFile = modelFile,
            OutputColumnNames = outputColumnNames,
            InputColumnNames = inputColumnNames,
        });

    /// <summary>Calibrates and quantizes an ONNX model with the given <paramref name="options"/>.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">The settings; they are validated and frozen when <c>Fit</c> starts.</param>
    public static QuantizingEstimator QuantizeCalibrated(this TransformsCatalog catalog, QuantizingEstimator.Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (options is null) throw new ArgumentNullException(nameof(options));
        return new QuantizingEstimator(catalog, options);
    }
}
