MLNet.Quantization.Samples.QuantizeMiniLM.Example();
