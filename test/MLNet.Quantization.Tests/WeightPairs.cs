using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;

namespace MLNet.Quantization.Tests;

/// <summary>
/// The no-saturation property, read from a realized model's own int8 initializers rather than from the calibration
/// table: per output channel of every weight that a Conv, MatMul or Gemm reads, the two largest same-sign |q| sum to at most 128.
/// Depthwise Convs (weights [C, 1, …] in C groups) are skipped: their kernels widen each product to int32 alone.
/// </summary>
internal static class WeightPairs
{
    public static int Largest(OnnxGraph int8Model)
    {
        int largest = 0;
        foreach (var dq in int8Model.Graph.Node.Where(n => n.OpType == "DequantizeLinear"))
        {
            var values = int8Model.FindInitializer(dq.Input[0]);
            if (values is null || values.DataType != Tensors.Int8 || values.Dims.Count == 0) continue;
            var reader = int8Model.Consumers(dq.Output[0]).FirstOrDefault(n => n.OpType is "Conv" or "MatMul" or "Gemm");
            if (reader is null) continue;
            var dims = values.Dims.ToArray();
            if (reader.OpType == "Conv" && global::MLNet.Quantization.Ops.ConvOp.IsDepthwise(reader, dims)) continue;
            int? axis = dq.Attribute.FirstOrDefault(a => a.Name == "axis")?.I is { } a ? (int)a : reader.OpType switch
            {
                "Conv" => 0,
                "Gemm" => reader.Attribute.Any(x => x.Name == "transB" && x.I == 1) ? 0 : 1,
                _ => dims.Length - 1,
            };
            var q = values.RawData.ToByteArray().Select(b => (sbyte)b).ToArray();
            largest = Math.Max(largest, WeightQuantizer.LargestPairSum(q, dims, axis));
        }
        return largest;
    }

    public static void AssertCannotSaturate(OnnxGraph int8Model, string what)
    {
        int largest = Largest(int8Model);
        Assert.IsTrue(largest <= 128, $"{what}: two weights of one output channel sum to |q| = {largest} > 128, which saturates int16 on CPUs without VNNI");
    }
}
