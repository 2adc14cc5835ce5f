MLNet.Quantization.Samples.QuantizeResNet18.Example();
