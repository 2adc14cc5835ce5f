using BenchmarkDotNet.Attributes;
using MLNet.Quantization.Calibration;

namespace MLNet.Quantization.Benchmarks;

/// <summary>The calibration engine on one core: KL search at 8001/255 bins, and histogram building.</summary>
[MemoryDiagnoser]
public class CalibrationBenchmarks
{
    private const int Values = 1 << 20;
    private float[] _gaussian = Array.Empty<float>();
    private float[] _relu = Array.Empty<float>();
    private Histogram _gaussianHistogram = null!;
    private Histogram _reluHistogram = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _gaussian = new float[Values];
        for (int i = 0; i < Values; i++)
            _gaussian[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        _relu = _gaussian.Select(v => Math.Max(0, v)).ToArray();
        _gaussianHistogram = Histogram.Build(_gaussian);
        _reluHistogram = Histogram.Build(_relu);
    }

    /// <summary>KL search over a signed 8001-bin histogram, 255 quantized bins.</summary>
    [Benchmark]
    public TensorRange KlSearchSigned() => new KlDivergenceSearch().Search(_gaussianHistogram);

    /// <summary>KL search over a never-negative histogram (511 quantized bins).</summary>
    [Benchmark]
    public TensorRange KlSearchUnsigned() => new KlDivergenceSearch().Search(_reluHistogram);

    /// <summary>Counting 2^20 values into an 8001-bin histogram; divide by 2^20 for the time per value.</summary>
    [Benchmark(OperationsPerInvoke = Values)]
    public long HistogramAdd()
    {
        var histogram = Histogram.Symmetric(5, 8001);
        histogram.Add(_gaussian);
        return histogram.Total;
    }
}
