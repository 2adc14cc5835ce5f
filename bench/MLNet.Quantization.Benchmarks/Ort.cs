using Microsoft.ML.OnnxRuntime;

namespace MLNet.Quantization.Benchmarks;

// One RunOptions for every direct session run of the harnesses. `session.Run(Ort.RunOptions, ...)` leaves the
// options to the finalizer, which may free them while the native run still reads them (a segfault in
// libonnxruntime, seen once in three zoo-export runs of the PaddleOCR recognizer).
internal static class Ort
{
    public static readonly RunOptions RunOptions = new();
}
