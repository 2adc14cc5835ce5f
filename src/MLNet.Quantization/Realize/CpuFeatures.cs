using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace MLNet.Quantization.Realize;

/// <summary>What the CPU that runs this process offers ONNX Runtime's int8 kernels, read from CPUID.</summary>
internal static class CpuFeatures
{
    /// <summary>Whether the process runs on an x86 CPU (x86 or x64), where VNNI and the AVX2 saturation are questions.</summary>
    public static bool IsX86 => RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;

    /// <summary>AVX512-VNNI: CPUID leaf 7, sub-leaf 0, ECX bit 11.</summary>
    public static bool HasAvx512Vnni => X86Base.IsSupported && (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    /// <summary>AVX-VNNI (VEX-encoded): CPUID leaf 7, sub-leaf 1, EAX bit 4.</summary>
    public static bool HasAvxVnni => X86Base.IsSupported && (X86Base.CpuId(7, 1).Eax & (1 << 4)) != 0;

    /// <summary>AVX512-VNNI or AVX-VNNI: the int8 dot products ONNX Runtime's u8s8 kernels gain most from.</summary>
    public static bool HasVnni => HasAvx512Vnni || HasAvxVnni;

    /// <summary>
    /// Whether ONNX Runtime's uint8 × int8 kernels add pairs of products into a saturating int16 here: x86-64 without
    /// VNNI, where they use <c>vpmaddubsw</c> (AVX2, or SSSE3's <c>pmaddubsw</c>).
    /// </summary>
    public static bool PairsSaturate => IsX86
        && !HasVnni;

    /// <summary>A short description, for reports: for example "x64 with AVX512-VNNI" or "x64 with AVX2, no VNNI".</summary>
    public static string Describe()
    {
        var architecture = RuntimeInformation.ProcessArchitecture;
        if (architecture is not (Architecture.X64 or Architecture.X86)) return architecture.ToString();
        if (HasAvx512Vnni) return $"{architecture} with AVX512-VNNI";
        if (HasAvxVnni) return $"{architecture} with AVX-VNNI";
        return $"{architecture} with {(Avx2.IsSupported ? "AVX2" : "no AVX2")}, no VNNI";
    }
}
