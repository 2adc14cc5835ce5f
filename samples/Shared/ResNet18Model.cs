namespace MLNet.Quantization.Samples;

/// <summary>Where the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 puts its models in the build output.</summary>
public static class ResNet18Model
{
    /// <summary>ResNet18.onnx: input <c>Input247</c> [1,3,224,224], output <c>Pooling395_Output_0</c> [1,512,1,1].</summary>
    public static string ResNet18 => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>ResNetPreprocess.onnx: RGB 0..255 (<c>OriginalInput</c>) to BGR minus the mean image (<c>PreprocessedInput</c>).</summary>
    public static string Preprocess => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>The model's input tensor.</summary>
    public const string Input = "Input247";

    /// <summary>The model's output tensor: 512 features.</summary>
    public const string Output = "Pooling395_Output_0";
}
