using System.Text.Json;
using Google.Protobuf;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNet.Quantization.Calibration;
using MLNet.Quantization.Cli;
using MLNet.Quantization.Samples;

using SkiaSharp;

namespace MLNet.Quantization.Tests.Cli;

/// <summary>The mlnet-quantize entry point, in-process: each calibration kind, the summary, and every bad input.</summary>
[TestClass]
public sealed class QuantizeCommandTests
{
    private static (int Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = QuantizeCommand.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static Summary Json(string output) => JsonSerializer.Deserialize<Summary>(output.Trim(),
        new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;

    private static string ConvModel(TempDirectory directory) => new TinyModel()
        .Input("image", 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
        .Weight("W", new long[] { 4, 3, 3, 3 }, 0.02f).Weight("B", new long[] { 4 }, 0.2f)
        .Node("Conv", new[] { "image", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
        .Node("Relu", new[] { "C" }, new[] { "Y" })
        .Save(directory.Path, "conv.onnx");

    private static string Images(TempDirectory directory, int count, int size = 12)
    {
        var random = new Random(5);
        return Pngs(directory, "images", count, size, (bitmap, i) =>
        {
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    bitmap.SetPixel(x, y, new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256), (byte)(i == 0 ? 128 : 255)));
        });
    }

    // A folder of count RGBA PNG files, size × size, each painted by paint (given the image's index).
    private static string Pngs(TempDirectory directory, string name, int count, int size, Action<SKBitmap, int> paint)
    {
        var folder = Directory.CreateDirectory(directory.File(name)).FullName;
        for (int i = 0; i < count; i++)
        {
            using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul));
            paint(bitmap, i);
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, $"image{i}.png"), data.ToArray());
        }
        return folder;
    }

    [TestMethod]
    public void ImagesReportStatisticsAndJsonSummary()
    {
        using var directory = new TempDirectory();
        var model = ConvModel(directory);
        var images = Images(directory, 6);
        var (code, output, error) = Run(model, "--calibration", images, "--output", directory.File("out.onnx"),
            "--scale", "0.00392157", "--report", directory.File("report.html"), "--statistics", directory.File("stats.bin"), "--json",
            "--no-deployment-check");
        Assert.AreEqual(0, code, error);
        var summary = Json(output);
        Assert.AreEqual("images", summary.CalibrationKind);
        Assert.AreEqual(5, summary.Rows, "one of six images held back for tuning");
        Assert.AreEqual("Int8", summary.Mode);
        Assert.IsTrue(summary.QuantizedTensorsByOpType["Conv weight"] == 1 && summary.QuantizedBytes > 0);
        Assert.IsTrue(summary.OutputCosine > 0.99, $"{summary.OutputCosine}");
        Assert.IsTrue(summary.RealizedVsSimulatedCosine > 0.999);
        Assert.IsTrue(summary.RealizedVsSimulatedRelativeError is >= 0 and <= 0.02, $"{summary.RealizedVsSimulatedRelativeError}");
        Assert.AreEqual("PairBounded", summary.WeightRange);
        Assert.IsTrue(CalibrationTable.FromOnnx(directory.File("out.onnx")).Count > 0);
        Assert.IsTrue(File.Exists(directory.File("report.html")) && File.Exists(directory.File("report.csv")));

        // Again from the saved statistics, without data, in simulated mode, refit with the squared-error search.
        var again = Run(model, "--from-statistics", directory.File("stats.bin"), "--output", directory.File("again.onnx"), "--mode", "simulated",
            "--method", "mse", "--json");
        Assert.AreEqual(0, again.Code, again.Error);
        Assert.AreEqual("statistics", Json(again.Output).CalibrationKind);
        Assert.IsTrue(CalibrationTable.FromOnnx(directory.File("again.onnx")).Where(e => e.Role == TensorRole.Activation && e.Method != "SharedWith")
            .All(e => e.Method == nameof(CalibrationMethod.MeanSquaredError) || e.Method.StartsWith("SharedWith", StringComparison.Ordinal)));

        // Without --json: a table.
        var table = Run(model, "--calibration", images, "--output", directory.File("out2.onnx"), "--method", "kl", "--per-tensor");
        Assert.AreEqual(0, table.Code, table.Error);
        StringAssert.Contains(table.Output, "realized vs simulated");

        // The accuracy algorithms of issue 11.
        var corrected = Run(model, "--calibration", images, "--output", directory.File("out3.onnx"), "--bias-correction", "full",
            "--cross-layer-equalization", "--method", "mean-min-max", "--json", "--no-deployment-check");
        Assert.AreEqual(0, corrected.Code, corrected.Error);
        StringAssert.Contains(CalibrationTable.FromOnnx(directory.File("out3.onnx")).Single(e => e.Role == TensorRole.Bias).Note, "bias corrected");

        // With the deployment check (the default): the verdict, the speed-up and every output's error; a model that int8
        // made slower is written as the float model.
        var checkedRun = Run(model, "--calibration", images, "--output", directory.File("out4.onnx"), "--json");
        Assert.AreEqual(0, checkedRun.Code, checkedRun.Error);
        var verdict = Json(checkedRun.Output);
        Assert.IsNotNull(verdict.Deployment);
        Assert.IsTrue(verdict.Speedup > 0);
        Assert.AreEqual(verdict.Speedup < QuantizationDefaults.MinimumSpeedup, verdict.KeptFloat, verdict.Deployment);
        Assert.AreEqual(verdict.KeptFloat, CalibrationTable.FromOnnx(directory.File("out4.onnx")).Count == 0, verdict.Deployment);
        Assert.AreEqual(1, verdict.OutputErrors.Count, "one entry per model output");
    }

    [TestMethod]
    public void ResNet18FromFashionMnistImages()
    {
        using var directory = new TempDirectory();
        var folder = Directory.CreateDirectory(directory.File("fashion")).FullName;
        var (images, _) = FashionMnist.Read(FashionMnist.DataDirectory(AppContext.BaseDirectory), "train-subset", 0, 8);
        for (int i = 0; i < images.Length; i++)
        {
            using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
            for (int p = 0; p < 28 * 28; p++) bitmap.SetPixel(p % 28, p / 28, new SKColor(images[i][p], images[i][p], images[i][p]));
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, $"{i}.png"), data.ToArray());
        }
        var (code, output, error) = Run(ResNet18Model.ResNet18, "--calibration", folder, "--output", directory.File("resnet18-int8.onnx"),
            "--channels", "bgr", "--mean", "103.9,116.8,123.7", "--json");
        Assert.AreEqual(0, code, error);
        var summary = Json(output);
        Assert.AreEqual(7, summary.Rows, "one of eight images held back for tuning");
        Assert.AreEqual(22, summary.QuantizedTensorsByOpType["Conv weight"]);
        Assert.IsTrue(summary.QuantizedBytes < 0.3 * summary.FloatBytes);
        Assert.IsTrue(summary.OutputCosine > 0.98, $"{summary.OutputCosine}");
    }

    [TestMethod]
    public void TextAndTensorCalibration()
    {
        using var directory = new TempDirectory();
        var vocab = directory.File("vocab.txt");
        File.WriteAllLines(vocab, new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "a", "mat", "dog", "##s" });
        var lines = directory.File("lines.txt");
        File.WriteAllLines(lines, new[] { "the cat sat on a mat", "dogs sat", "", "a cat", "the dog sat on the mat" });
        var tokens = new TinyModel()
            .TypedInput("input_ids", MLNet.Quantization.Onnx.Tensors.Int64, 1, -1).TypedInput("attention_mask", MLNet.Quantization.Onnx.Tensors.Int64, 1, -1)
            .TypedInput("token_type_ids", MLNet.Quantization.Onnx.Tensors.Int64, 1, -1).DynamicOutput("Y", 1, -1, 4)
            .Weight("E", new long[] { 13, 8 }).Weight("W", new long[] { 8, 4 })
            .Node("Gather", new[] { "E", "input_ids" }, new[] { "G" })
            .Node("MatMul", new[] { "G", "W" }, new[] { "Y" })
            .Save(directory.Path, "tokens.onnx");
        var (code, output, error) = Run(tokens, "--calibration", lines, "--vocab", vocab, "--sequence-length", "16", "--output", directory.File("t.onnx"), "--json");
        Assert.AreEqual(0, code, error);
        Assert.AreEqual("text", Json(output).CalibrationKind);
        Assert.AreEqual(4, Json(output).Rows, "blank lines are skipped");

        var mlp = new TinyModel().Input("X", 1, 4).Output("Y", 1, 4).Weight("W", new long[] { 4, 4 })
            .Node("MatMul", new[] { "X", "W" }, new[] { "Y" }).Save(directory.Path, "mlp.onnx");
        var data = Directory.CreateDirectory(directory.File("tensors")).FullName;
        var random = new Random(2);
        for (int set = 0; set < 5; set++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(data, $"test_data_set_{set}")).FullName;
            var tensor = MLNet.Quantization.Onnx.Tensors.FromFloats("X", new long[] { 1, 4 }, Enumerable.Range(0, 4).Select(_ => (float)random.NextDouble()).ToArray());
            File.WriteAllBytes(Path.Combine(folder, "input_0.pb"), tensor.ToByteArray());
        }
        var tensors = Run(mlp, "--calibration", data, "--output", directory.File("m.onnx"), "--json");
        Assert.AreEqual(0, tensors.Code, tensors.Error);
        Assert.AreEqual("tensors", Json(tensors.Output).CalibrationKind);
        Assert.AreEqual(4, Json(tensors.Output).Rows, "one of five tensor sets held back for tuning");
    }

    // An image model that takes its pixels as uint8 and normalises them itself: images feed the pixels as they are, and
    // the float-only normalisation options are refused by input.
    [TestMethod]
    public void ImagesFeedAUint8PixelInputAsItIsAndRefuseFloatNormalisationForIt()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().TypedInput("pixels", (int)global::Onnx.TensorProto.Types.DataType.Uint8, 1, 3, 8, 8).Output("Y", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 3, 3, 3 }, 0.02f).Weight("B", new long[] { 4 }, 0.2f)
            .Constant("S", new long[] { 1 }, new[] { 1f / 255 })
            .Node("Cast", new[] { "pixels" }, new[] { "P" }, TinyModel.Int("to", MLNet.Quantization.Onnx.Tensors.Float))
            .Node("Mul", new[] { "P", "S" }, new[] { "X" })
            .Node("Conv", new[] { "X", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", new[] { "C" }, new[] { "Y" })
            .Save(directory.Path, "pixels.onnx");
        var images = Images(directory, 6, size: 8);

        var (code, output, error) = Run(model, "--calibration", images, "--output", directory.File("p.onnx"), "--json", "--min-speedup", "0");
        Assert.AreEqual(0, code, error);
        Assert.AreEqual("images", Json(output).CalibrationKind);
        Assert.IsTrue(Json(output).OutputCosine > 0.98, $"{Json(output).OutputCosine}");

        var refused = Run(model, "--calibration", images, "--output", directory.File("q.onnx"), "--scale", "0.5");
        Assert.AreEqual(2, refused.Code, refused.Error);
        StringAssert.Contains(refused.Error, "'pixels'");
        StringAssert.Contains(refused.Error, "--scale");
    }

    // Gray (1 channel) and RGBA (4 channels, channels-last as M-LSD's input) image models: the layout comes from the
    // shape, and the values fed, read back from the saved statistics of the tensor the Conv reads, are the luma of the
    // image over white, and the image's own RGBA (alpha not composited), normalised per channel.
    [TestMethod]
    public void ImagesFeedGrayAndRgbaInputsTheirOwnChannels()
    {
        using var directory = new TempDirectory();
        string Solid(string name, SKColor color) => Pngs(directory, name, 6, 8, (bitmap, _) => bitmap.Erase(color));
        var opaque = Solid("opaque", new SKColor(200, 100, 50, 255));
        var translucent = Solid("translucent", new SKColor(200, 100, 50, 128));
        var gray = new TinyModel().Input("gray", 1, 1, 8, 8).Output("Y", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 1, 3, 3 }, 0.02f).Weight("B", new long[] { 4 }, 0.2f)
            .Node("Conv", new[] { "gray", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", new[] { "C" }, new[] { "Y" })
            .Save(directory.Path, "gray.onnx");
        var rgba = new TinyModel().Input("rgba", 1, 8, 8, 4).Output("Y", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 4, 3, 3 }, 0.02f).Weight("B", new long[] { 4 }, 0.2f)
            .Node("Transpose", new[] { "rgba" }, new[] { "T" }, TinyModel.Ints("perm", 0, 3, 1, 2))
            .Node("Conv", new[] { "T", "W", "B" }, new[] { "C" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Node("Relu", new[] { "C" }, new[] { "Y" })
            .Save(directory.Path, "rgba.onnx");
        TensorStatistics Fed(string model, string images, string tensor, params string[] options)
        {
            var stats = directory.File("stats.bin");
            var (code, _, error) = Run(new[] { model, "--calibration", images, "--output", directory.File("out.onnx"), "--statistics", stats,
                "--min-speedup", "0", "--no-tune" }.Concat(options).ToArray());
            Assert.AreEqual(0, code, error);
            return CalibrationStatistics.Load(stats).ByTensor()[tensor];
        }

        // ITU-R 601 luma, as PIL's "L": (299·200 + 587·100 + 114·50) / 1000.
        var luma = Fed(gray, opaque, "gray");
        Assert.AreEqual(124.2, luma.Min, 1e-3);
        Assert.AreEqual(124.2, luma.Max, 1e-3);
        // Channels-last read from [1, 8, 8, 4]; the alpha kept (128), and the colour not composited over white (which
        // would lift blue from 50 to 152). Unpremultiplying after the resize may move a value by one.
        var own = Fed(rgba, translucent, "T");
        Assert.AreEqual(50, own.Min, 2);
        Assert.AreEqual(200, own.Max, 2);
        // One mean per channel, in RGBA order: every channel lands on 0.
        var centred = Fed(rgba, translucent, "T", "--mean", "200,100,50,128");
        Assert.IsTrue(centred.Min >= -2 && centred.Max <= 2, $"[{centred.Min}, {centred.Max}]");
        // BGRA: blue first; one mean for every channel.
        var bgra = Fed(rgba, translucent, "T", "--channels", "bgr", "--mean", "50");
        Assert.AreEqual(0, bgra.Min, 2);
        Assert.AreEqual(150, bgra.Max, 2);

        // Neither 1, 3 nor 4 channels, and a --mean of another count: refused by input.
        var two = new TinyModel().Input("two", 1, 2, 8, 8).Output("Y", 1, 4, 8, 8)
            .Weight("W", new long[] { 4, 2, 3, 3 }, 0.02f).Weight("B", new long[] { 4 }, 0.2f)
            .Node("Conv", new[] { "two", "W", "B" }, new[] { "Y" }, TinyModel.Ints("pads", 1, 1, 1, 1))
            .Save(directory.Path, "two.onnx");
        var refused = Run(two, "--calibration", opaque, "--output", directory.File("two-int8.onnx"), "--layout", "nchw");
        Assert.AreEqual(2, refused.Code, refused.Error);
        StringAssert.Contains(refused.Error, "'two' has 2 channels");
        refused = Run(rgba, "--calibration", translucent, "--output", directory.File("bad.onnx"), "--mean", "1,2,3");
        Assert.AreEqual(2, refused.Code, refused.Error);
        StringAssert.Contains(refused.Error, "--mean takes one value, or one per channel: 4 for model input 'rgba', not 3");
    }

    // A model that takes its pixels as uint8 (as many image exports do) and casts them: its tensor sets are read with
    // their values in int32_data, ONNX's field for 8-bit types; a set of the wrong type is refused by input and folder.
    [TestMethod]
    public void TensorSetsOfAUint8InputAreReadAndOneOfAnotherTypeIsRefusedByName()
    {
        using var directory = new TempDirectory();
        var model = new TinyModel().TypedInput("pixels", (int)global::Onnx.TensorProto.Types.DataType.Uint8, 1, 16).Output("Y", 1, 4)
            .Weight("W", new long[] { 16, 4 })
            .Node("Cast", new[] { "pixels" }, new[] { "P" }, TinyModel.Int("to", MLNet.Quantization.Onnx.Tensors.Float))
            .Node("MatMul", new[] { "P", "W" }, new[] { "Y" })
            .Save(directory.Path, "pixels.onnx");
        var data = Directory.CreateDirectory(directory.File("tensors")).FullName;
        var random = new Random(4);
        for (int set = 0; set < 6; set++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(data, $"test_data_set_{set}")).FullName;
            var tensor = new global::Onnx.TensorProto { Name = "pixels", DataType = (int)global::Onnx.TensorProto.Types.DataType.Uint8, Dims = { 1, 16 } };
            tensor.Int32Data.AddRange(Enumerable.Range(0, 16).Select(_ => random.Next(256)));
            File.WriteAllBytes(Path.Combine(folder, "input_0.pb"), tensor.ToByteArray());
        }
        var (code, output, error) = Run(model, "--calibration", data, "--output", directory.File("p.onnx"), "--json", "--min-speedup", "0");
        Assert.AreEqual(0, code, error);
        Assert.AreEqual("tensors", Json(output).CalibrationKind);
        Assert.IsTrue(Json(output).OutputCosine > 0.99, $"{Json(output).OutputCosine}");
        Assert.IsTrue(File.Exists(directory.File("p.onnx")));

        var wrong = MLNet.Quantization.Onnx.Tensors.FromFloats("pixels", new long[] { 1, 16 }, new float[16]);
        File.WriteAllBytes(Path.Combine(data, "test_data_set_3", "input_0.pb"), wrong.ToByteArray());
        var refused = Run(model, "--calibration", data, "--output", directory.File("q.onnx"));
        Assert.AreEqual(2, refused.Code, refused.Error);
        StringAssert.Contains(refused.Error, "'pixels'");
        StringAssert.Contains(refused.Error, "test_data_set_3");
        Assert.IsFalse(File.Exists(directory.File("q.onnx")), "nothing is written for a refused run");
    }

    [TestMethod]
    public void EveryBadInputExitsWith2AndOneLineNamingTheCulpritAndKeepsAnExistingOutput()
    {
        using var directory = new TempDirectory();
        var model = ConvModel(directory);
        var images = Images(directory, 3);
        var output = directory.File("out.onnx");
        File.WriteAllText(output, "the previous model");
        void Refused(string culprit, params string[] args)
        {
            var (code, _, error) = Run(args);
            Assert.AreEqual(2, code, $"{string.Join(" ", args)}: {error}");
            Assert.AreEqual(1, error.Trim().Split('\n').Length, error);
            StringAssert.Contains(error, culprit);
            Assert.AreEqual("the previous model", File.ReadAllText(output), "a failed run leaves the output as it was");
        }
        Refused("nope.onnx", directory.File("nope.onnx"), "--calibration", images, "--output", output);
        Refused("missing", model, "--calibration", directory.File("missing"), "--output", output);
        Refused("--output", model, "--calibration", images);
        Refused("--method", model, "--calibration", images, "--output", output, "--method", "median");
        Refused("nowhere", model, "--calibration", images, "--output", output, "--exclude-node", "nowhere");
        Refused("--image-size", model, "--calibration", images, "--output", output, "--image-size", "9,9");
        Refused("--mean", model, "--calibration", images, "--output", output, "--mean", "1,2");
        File.WriteAllText(Path.Combine(images, "broken.png"), "not a png");
        Refused("broken.png", model, "--calibration", images, "--output", output, "--rows", "100");
        File.Delete(Path.Combine(images, "broken.png"));
        var lines = directory.File("lines.txt");
        File.WriteAllLines(lines, new[] { "some text" });
        Refused("input_ids", model, "--calibration", lines, "--output", output);
        Refused("--input", model, "--calibration", images, "--output", output, "--input", "image");
        Refused("--bias-correction", model, "--calibration", images, "--output", output, "--bias-correction", "slow");
        Refused("SmoothQuantAlpha", model, "--calibration", images, "--output", output, "--smooth-quant", "2");
        Refused("--no-tune", model, "--calibration", images, "--output", output, "--tune", "--no-tune");
        Refused("--tune-budget", model, "--calibration", images, "--output", output, "--tune-budget", "0");
        Refused("--tune-budget", model, "--calibration", images, "--output", output, "--no-tune", "--tune-budget", "5");
        Refused("--tune-tolerance", model, "--calibration", images, "--output", output, "--tune-tolerance", "-1");
        Refused("--tune-tolerance", model, "--calibration", images, "--output", output, "--no-tune", "--tune-tolerance", "0.01");
        Refused("--min-speedup", model, "--calibration", images, "--output", output, "--min-speedup", "-1");
        Refused("--min-speedup", model, "--calibration", images, "--output", output, "--min-speedup", "NaN");
        Refused("--min-speedup", model, "--calibration", images, "--output", output, "--no-deployment-check", "--min-speedup", "0");
    }

    // The speed verdict is this CPU's: --min-speedup 1000 writes the float model and says how to write int8 instead;
    // --min-speedup 0 writes the int8 model, checked for accuracy still.
    [TestMethod]
    public void MinSpeedupDecidesWhetherTheInt8ModelIsWritten()
    {
        using var directory = new TempDirectory();
        var model = ConvModel(directory);
        var images = Images(directory, 6);
        var strict = Run(model, "--calibration", images, "--output", directory.File("float.onnx"), "--no-tune", "--min-speedup", "1000");
        Assert.AreEqual(0, strict.Code, strict.Error);
        StringAssert.Contains(strict.Output, "--min-speedup 0");
        Assert.AreEqual(0, CalibrationTable.FromOnnx(directory.File("float.onnx")).Count, "the float model is written");

        var any = Run(model, "--calibration", images, "--output", directory.File("int8.onnx"), "--no-tune", "--min-speedup", "0", "--json");
        Assert.AreEqual(0, any.Code, any.Error);
        var summary = Json(any.Output);
        Assert.IsFalse(summary.KeptFloat, summary.Deployment);
        Assert.IsTrue(CalibrationTable.FromOnnx(directory.File("int8.onnx")).Count > 0, "the int8 model is written");
        Assert.IsTrue(summary.OutputCosine > 0.99, $"{summary.OutputCosine}");
    }

    [TestMethod]
    public void TuningIsOnByDefaultAndItsTrialsReachTheJsonAndTheReport()
    {
        using var directory = new TempDirectory();
        var model = ConvModel(directory);
        var images = Images(directory, 10);
        var tuned = Run(model, "--calibration", images, "--output", directory.File("a.onnx"), "--json", "--tune-budget", "120",
            "--report", directory.File("report.html"), "--method", "max");
        Assert.AreEqual(0, tuned.Code, tuned.Error);
        var summary = Json(tuned.Output);
        Assert.IsNotNull(summary.Tuning);
        Assert.IsTrue(summary.Trials.Count >= 1 && summary.Trials.All(t => t.Knob != "ActivationCalibration"), "--method pins the method");
        Assert.AreEqual(8, summary.Rows, "two of ten images held back");
        Assert.AreEqual(summary.Trials.Count + 1, File.ReadAllLines(directory.File("report.trials.csv")).Length);

        // A tolerance that only float can meet: the last knob keeps layers in float.
        var strict = Run(model, "--calibration", images, "--output", directory.File("c.onnx"), "--json", "--tune-budget", "120",
            "--method", "max", "--tune-tolerance", "0.000000001");
        Assert.AreEqual(0, strict.Code, strict.Error);
        Assert.IsTrue(Json(strict.Output).Trials.Any(t => t.Knob == "MinimumOutputCosine"), strict.Output);
        Assert.IsFalse(summary.Trials.Any(t => t.Knob == "MinimumOutputCosine"), "no tolerance, no fallback");

        var plain = Run(model, "--calibration", images, "--output", directory.File("b.onnx"), "--json", "--no-tune");
        Assert.AreEqual(0, plain.Code, plain.Error);
        Assert.IsNull(Json(plain.Output).Tuning);
        Assert.AreEqual(0, Json(plain.Output).Trials.Count);
        Assert.AreEqual(10, Json(plain.Output).Rows);
    }

    [TestMethod]
    public void HelpNamesTheOptions()
    {
        var (code, output, _) = Run("--help");
        Assert.AreEqual(0, code);
        foreach (var option in new[] { "--calibration", "--output", "--weight-range", "--report", "--json", "--from-statistics", "--min-speedup" })
            StringAssert.Contains(output, option);
    }
}
