return MLNet.Quantization.Cli.QuantizeCommand.Run(args);
