// Tests share temp folders per test and ONNX Runtime sessions are heavy on 2 cores: run classes one at a time.
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]
