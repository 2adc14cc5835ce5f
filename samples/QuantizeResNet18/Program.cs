// Usage: dotnet run -c Release --project samples/QuantizeResNet18 [-- Max|KlDivergence|Percentile|KlDivergencePowerOfTwo]
var method = args.Length > 0 ? Enum.Parse<MLNet.Quantization.CalibrationMethod>(args[0], ignoreCase: true) : MLNet.Quantization.CalibrationMethod.Max;
MLNet.Quantization.Samples.QuantizeResNet18.Example(method);
