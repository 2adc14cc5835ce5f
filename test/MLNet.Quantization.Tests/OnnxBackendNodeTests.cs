using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace MLNet.Quantization.Tests;

/// <summary>
/// Every ONNX backend node test (about 900 graphs, one per op and variant) and every test converted from PyTorch's
/// modules (Conv1d to Conv3d, depthwise, grouped, dilated, Linear), from Debian's libonnx-testdata, which <c>.ci/run</c>
/// installs, through <c>Fit</c> with the defaults: no internal exception escapes, and no NaN or infinity appears where
/// the float model has a finite value (see <see cref="OnnxNodeTestSweep"/>).
/// </summary>
[TestClass]
public sealed class OnnxBackendNodeTests
{
    // The README's bad-input table: an already quantized model, a tensor type ML.NET has no column for, an old op with no
    // opset-13 form.
    private static readonly string[] DocumentedRefusals = { "is already quantized", "which ML.NET cannot feed or read", "cannot be moved from opset" };

    [TestMethod]
    [DataRow("node", false, 800, 3, DisplayName = "node tests as they feed them")]
    [DataRow("node", true, 450, 15, DisplayName = "node tests, weights as constants")]
    [DataRow("pytorch-converted", false, 50, 25, DisplayName = "PyTorch modules")]
    public void EveryTestGraphIsQuantizedOrRefusedClearlyAndGainsNoNaN(string folder, bool constants, int minimumRan, int minimumInt8)
    {
        var root = Path.Combine(Path.GetDirectoryName(OnnxNodeTestSweep.DefaultDirectory)!, folder);
        if (!Directory.Exists(root))
        {
            const string Missing = "ONNX's node tests are not installed: apt-get install libonnx-testdata";
            if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail(Missing);
            Assert.Inconclusive(Missing);
        }
        var ml = new MLContext(seed: 1);
        // MinimumSpeedup 0: these graphs are too small to gain, and the int8 model is what is checked.
        var outcomes = OnnxNodeTestSweep.Tests(root).Select(d => (Test: Path.GetFileName(d), Result: OnnxNodeTestSweep.Run(ml, d, constants, int8: true))).ToList();

        // ONNX Runtime runs each of these graphs in float (the sweep skips the others), so a refusal is a defect too,
        // unless it is one that the README documents for such a model.
        var defects = outcomes.Where(o => o.Result.Outcome.StartsWith(OnnxNodeTestSweep.Defect, StringComparison.Ordinal)
            || o.Result.Outcome.StartsWith(OnnxNodeTestSweep.NonFinite, StringComparison.Ordinal)
            || o.Result.Outcome.StartsWith("skipped: the sweep failed", StringComparison.Ordinal)
            || (o.Result.Outcome.StartsWith("refused", StringComparison.Ordinal) && !DocumentedRefusals.Any(r => o.Result.Detail.Contains(r, StringComparison.Ordinal))))
            .ToList();
        Assert.AreEqual(0, defects.Count, string.Join("\n", defects.Select(d => $"{d.Test}: {d.Result.Outcome}: {d.Result.Detail}")));
        // The sweep ran, and reached the quantizing paths: a missing or empty folder must not pass as clean.
        int ran = outcomes.Count(o => !o.Result.Outcome.StartsWith("skipped", StringComparison.Ordinal));
        int int8 = outcomes.Count(o => o.Result.Outcome == "int8");
        Assert.IsTrue(ran >= minimumRan, $"only {ran} of {outcomes.Count} test graphs ran");
        Assert.IsTrue(int8 >= minimumInt8, $"only {int8} test graphs came back in int8");
    }
}
