using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Realize;

namespace MLNet.Quantization.Tests.Realize;

[TestClass]
public sealed class SessionsTests
{
    // Fit opens many sessions over the user's graph; ONNX Runtime's warnings about it (unread folded constants in
    // BlazeFace) would be written to stderr by each one. Only errors are logged, and the thread count is passed on.
    [TestMethod]
    public void FitsSessionsLogOnlyErrorsAndTakeTheThreadCount()
    {
        using var withThreads = Sessions.Options(2);
        Assert.AreEqual(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, withThreads.LogSeverityLevel);
        Assert.AreEqual(2, withThreads.IntraOpNumThreads);
        using var defaults = Sessions.Options(null);
        Assert.AreEqual(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, defaults.LogSeverityLevel);
        using var plain = new SessionOptions();
        Assert.AreEqual(plain.IntraOpNumThreads, defaults.IntraOpNumThreads, "ONNX Runtime's own default where none is given");
    }
}
