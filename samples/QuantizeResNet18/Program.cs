// Usage: dotnet run -c Release --project samples/QuantizeResNet18 [-- Max|KlDivergence|Percentile|KlDivergencePowerOfTwo|MeanMinMax|MeanSquaredError]
// Without an argument, Fit tunes the calibration method with the rest of the recipe; a method given pins it.
MLNet.Quantization.CalibrationMethod? method = args.Length > 0 ? Enum.Parse<MLNet.Quantization.CalibrationMethod>(args[0], ignoreCase: true) : null;
MLNet.Quantization.Samples.QuantizeResNet18.Example(method);
