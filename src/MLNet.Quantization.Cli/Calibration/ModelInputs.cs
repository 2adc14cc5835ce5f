using Onnx;

namespace MLNet.Quantization.Cli.Calibration;

/// <summary>One input of the model as the ONNX file declares it: element type and dimensions (−1 where dynamic).</summary>
internal sealed record ModelInput(string Name, TensorProto.Types.DataType ElementType, long[] Dims)
{
    /// <summary>The inputs of <paramref name="modelFile"/> that are not initializers.</summary>
    public static IReadOnlyList<ModelInput> Read(string modelFile)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelFile));
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new UsageException($"'{modelFile}' is not an ONNX model: {e.Message}");
        }
        var initializers = model.Graph?.Initializer.Select(i => i.Name).ToHashSet() ?? new HashSet<string>();
        return (model.Graph?.Input ?? new Google.Protobuf.Collections.RepeatedField<ValueInfoProto>())
            .Where(i => !initializers.Contains(i.Name))
            .Select(i => new ModelInput(i.Name, (TensorProto.Types.DataType)(i.Type?.TensorType?.ElemType ?? 0),
                i.Type?.TensorType?.Shape?.Dim.Select(d => d.DimValue > 0 ? d.DimValue : -1).ToArray() ?? Array.Empty<long>()))
            .ToList();
    }

    public bool IsStatic => Dims.All(d => d > 0);
}
