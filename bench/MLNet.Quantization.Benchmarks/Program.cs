using BenchmarkDotNet.Running;
using MLNet.Quantization.Benchmarks;

// resnet18 [threads] [calibrationRows] [rounds]: the ResNet18 table (speed through ML.NET, size, agreement).
// minilm [threads] [calibrationRows] [rounds]: the all-MiniLM-L6-v2 table at 128 tokens.
// ocr [threads] [calibrationRows]: PaddleOCR models fetched by scripts/fetch-ocr-models.sh.
// evaluate [testImages] [trainImages] [calibrationImages] [chart]: the accuracy table per configuration.
// evaluate-minilm [train] [test] [calibration] [only configurations whose name contains this] [minilm|arctic]: the MiniLM (or arctic-embed-xs) table per configuration.
// report [directory] [calibrationRows]: ResNet18's calibration report as HTML and CSV.
// memory [rows...]: peak memory of calibrating ResNet18 on each row count, one child process each.
// cpu export DIR [calibrationRows] | cpu score DIR [threads]: the weight-range variants of issue 9 (score runs under qemu for AVX2).
// lifetime [schemaCalls] [fits]: RSS and temp files around repeated GetOutputSchema calls and Fit/Dispose cycles (issue 10).
// fit-time [resnetRows] [miniLmRows] [only]: Fit against one fp32 scoring pass, per configuration, with each pass's share (issue 11).
// zoo-diagnose NAME: where the realized int8 model first parts from the simulated one, per quantized tensor.
// optimized-export [level] [rows]: all-MiniLM-L6-v2 as ONNX Runtime's optimizer saves it (contrib ops), through Fit.
// zoo-profile NAME [runs]: the float and the int8 model's kernel time per op type of ONNX Runtime's optimized graph.
// zoo-export DIR [only] [rounds] [rows]: the zoo's float and int8 models, held-out rows and this CPU's outputs, for bench/device/zoo_check.py.
// zoo [only] [rounds] [unchecked] [untuned]: public models from npm and NuGet (scripts/fetch-zoo.sh), every output compared (issue 16).
// onnx-node-tests [directory] [only]: ONNX's backend node tests (Debian's libonnx-testdata) through Fit: refusals, defects, NaN introduced.
// rows-at-once [rows]: ResNet18 per row through ML.NET and ONNX Runtime, one row at a time and several at once (issue 17).
// anything else: BenchmarkDotNet over the calibration engine, e.g. --filter '*CalibrationBenchmarks*'.
switch (args.FirstOrDefault())
{
    case "resnet18":
        ResNet18Harness.Run(args[1..]);
        break;
    case "minilm":
        MiniLmHarness.Run(args[1..]);
        break;
    case "ocr":
        OcrHarness.Run(args[1..]);
        break;
    case "evaluate":
        EvaluationHarness.Run(args[1..]);
        break;
    case "evaluate-minilm":
        MiniLmEvaluation.Run(args[1..]);
        break;
    case "report":
        ReportHarness.Run(args[1..]);
        break;
    case "lifetime":
        LifetimeHarness.Run(args[1..]);
        break;
    case "cpu":
        SaturationHarness.Run(args[1..]);
        break;
    case "fit-time":
        FitTimeHarness.Run(args[1..]);
        break;
    case "zoo":
        ZooHarness.Run(args[1..]);
        break;
    case "onnx-node-tests":
        OnnxNodeTests.Run(args[1..]);
        break;
    case "rows-at-once":
        RowsAtOnceHarness.Run(args[1..]);
        break;
    case "optimized-export":
        OptimizedExportHarness.Run(args[1..]);
        break;
    case "zoo-profile":
        ZooProfile.Run(args[1..]);
        break;
    case "zoo-export":
        ZooExport.Run(args[1..]);
        break;
    case "zoo-diagnose":
        ZooHarness.Diagnose(args[1..]);
        break;
    case "memory":
        CalibrationMemory.Run(args[1..]);
        break;
    default:
        BenchmarkSwitcher.FromAssembly(typeof(CalibrationBenchmarks).Assembly).Run(args);
        break;
}
