using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Cli.Calibration;
using MLNet.Quantization.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace MLNet.Quantization.Tests.Calibration;

[TestClass]
public sealed class InputFeedTests
{
    // X (of the type under test) [1, 16] → Cast to float → MatMul by a constant W [16, 8] → Y: as an image model that
    // takes its pixels as uint8, or a model that takes ids or flags, casts them and multiplies.
    private static string Model(TempDirectory directory, DataType type) =>
        new TinyModel().TypedInput("X", (int)type, 1, 16).Output("Y", 1, 8)
            .Weight("W", new long[] { 16, 8 })
            .Node("Cast", new[] { "X" }, new[] { "Xf" }, TinyModel.Int("to", Tensors.Float))
            .Node("MatMul", new[] { "Xf", "W" }, new[] { "Y" })
            .Save(directory.Path);

    // 40 rows of 16 values of the column's raw type: 0…100 (−50…50 for int8, 0 or 1 for bool).
    private static IDataView Rows(DataType type)
    {
        var item = ElementTypes.Column((int)type)!;
        var random = new Random(3);
        var rows = Enumerable.Range(0, 40).Select(_ =>
        {
            var values = Array.CreateInstance(item.RawType, 16);
            for (int i = 0; i < 16; i++)
            {
                int v = type == DataType.Bool ? random.Next(2) : type == DataType.Int8 ? random.Next(-50, 51) : random.Next(101);
                values.SetValue(Convert.ChangeType(v, item.RawType, System.Globalization.CultureInfo.InvariantCulture), i);
            }
            return new[] { values };
        }).ToList();
        var builder = new DataViewSchema.Builder();
        builder.AddColumn("X", new VectorDataViewType(item, 16));
        return new RowsDataView(builder.ToSchema(), () => rows);
    }

    [TestMethod]
    [DataRow(DataType.Uint8)]
    [DataRow(DataType.Int8)]
    [DataRow(DataType.Int16)]
    [DataRow(DataType.Uint16)]
    [DataRow(DataType.Int32)]
    [DataRow(DataType.Uint32)]
    [DataRow(DataType.Int64)]
    [DataRow(DataType.Uint64)]
    [DataRow(DataType.Double)]
    [DataRow(DataType.Bool)]
    public void EveryNumberTypeThatMlNetFeedsIsFedAndTheModelBehindItQuantized(DataType type)
    {
        using var directory = new TempDirectory();
        var ml = new MLContext(seed: 1);
        var model = Model(directory, type);
        var data = Rows(type);

        using var fitted = ml.Transforms.QuantizeCalibrated(new QuantizingEstimator.Options { ModelFile = model, MinimumSpeedup = 0 }).Fit(data);

        Assert.IsTrue(fitted.Calibration.Any(c => c.Tensor.StartsWith("Xf", StringComparison.Ordinal) && c.ElementType != "float"), "the MatMul's cast input is quantized (its name may carry a pass's suffix)");
        Assert.IsFalse(fitted.Deployment!.KeptFloat || fitted.Deployment.QuantizedNothing, fitted.Deployment.Summary);
        // Every row read before the transformers go: ML.NET's float model as the reference.
        using var floatModel = ml.Transforms.ApplyOnnxModel(model).Fit(data);
        var expected = TinyData.Column(floatModel.Transform(data), "Y");
        var actual = TinyData.Column(fitted.Transform(data), "Y");
        Assert.AreEqual(expected.Length, actual.Length);
        for (int r = 0; r < expected.Length; r++)
            Assert.IsTrue(TinyData.Cosine(expected[r], actual[r]) > 0.99, $"row {r}: cosine {TinyData.Cosine(expected[r], actual[r]):F4}");
    }
}
