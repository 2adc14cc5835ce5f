using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Onnx;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class WeightPayloadsTests
{
    [TestMethod]
    public void EachWeightsBytesAreMadeOnceAndHoldItsValues()
    {
        var values = new sbyte[] { -127, -3, 0, 5, 127, 64 };
        var w = new QuantizedWeight("W", new long[] { 2, 3 }, values, new[] { 0.5f, 0.25f }, 0);
        var renamed = w with { Tensor = "W2" }; // as the weight cache hands it out under another name

        var first = WeightPayloads.AsInt8("a", w);
        var second = WeightPayloads.AsInt8("b", renamed);
        Assert.AreSame(first.RawData, second.RawData, "one payload for one set of values");
        Assert.AreEqual("a", first.Name);
        Assert.AreEqual("b", second.Name);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, second.Dims.ToArray());
        Assert.AreEqual(Tensors.Int8, second.DataType);
        CollectionAssert.AreEqual(values, second.RawData.ToByteArray().Select(b => (sbyte)b).ToArray());

        var floats = WeightPayloads.AsFloatIntegers("f", w);
        Assert.AreSame(floats.RawData, WeightPayloads.AsFloatIntegers("g", renamed).RawData);
        CollectionAssert.AreEqual(values.Select(v => (float)v).ToArray(), Tensors.ReadFloats(floats));

        var other = new QuantizedWeight("W", new long[] { 2, 3 }, (sbyte[])values.Clone(), new[] { 0.5f, 0.25f }, 0);
        Assert.AreNotSame(first.RawData, WeightPayloads.AsInt8("c", other).RawData, "other values (even equal ones) get their own");
    }
}
