using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using X86 = System.Runtime.Intrinsics.X86;
using System.Text;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// The processor this process runs on, as CPUID reports it: vendor, brand string, family/model/stepping, and the
/// instruction-set levels that decide which OpenBLAS kernel it can run. Each level holds only when the processor has
/// every instruction the compiler may emit for the matching OpenBLAS kernel and the operating system saves the
/// registers involved (the .NET <c>IsSupported</c> flags check both).
/// </summary>
public sealed record CpuInfo
{
    /// <summary>The CPUID vendor string, e.g. <c>GenuineIntel</c>, <c>AuthenticAMD</c>; the architecture name off x86.</summary>
    public required string Vendor { get; init; }

    /// <summary>The brand string, e.g. <c>Intel(R) Xeon(R) Processor</c>.</summary>
    public required string Model { get; init; }

    /// <summary>Display family (base family plus extended family for family 15).</summary>
    public int Family { get; init; }

    /// <summary>Display model (extended model in the high nibble for families 6 and 15).</summary>
    public int ModelNumber { get; init; }

    public int Stepping { get; init; }

    /// <summary>AVX with OS support (OpenBLAS's Sandybridge kernels).</summary>
    public bool Avx { get; init; }

    /// <summary>AVX2, FMA3, BMI1/2, LZCNT, F16C and MOVBE (OpenBLAS's Haswell and Zen kernels, built for Haswell).</summary>
    public bool Avx2 { get; init; }

    /// <summary>AVX-512 F, CD, BW, DQ and VL on top of <see cref="Avx2"/> (OpenBLAS's SkylakeX kernels, built for skylake-avx512).</summary>
    public bool Avx512 { get; init; }

    /// <summary>AVX-512 VNNI and BF16 on top of <see cref="Avx512"/> (OpenBLAS's Cooperlake kernels).</summary>
    public bool Avx512Bf16 { get; init; }

    /// <summary>True for AMD and Hygon processors, whose AVX2 kernel in OpenBLAS is Zen rather than Haswell.</summary>
    public bool IsAmd => Vendor is "AuthenticAMD" or "HygonGenuine";

    /// <summary>The highest of the levels above, for logs: <c>AVX-512 BF16</c>, <c>AVX-512</c>, <c>AVX2 FMA</c>, <c>AVX</c> or <c>baseline</c>.</summary>
    public string Level => Avx512 ? (Avx512Bf16 ? "AVX-512 BF16" : "AVX-512") : Avx2 ? "AVX2 FMA" : Avx ? "AVX" : "baseline";

    /// <summary>This machine's processor, read once.</summary>
    public static CpuInfo Current { get; } = Detect();

    /// <summary>One line for logs: brand, vendor, family, model, stepping and level.</summary>
    public override string ToString() =>
        X86Base.IsSupported || Family != 0
            ? $"{Model} ({Vendor} family {Family} model {ModelNumber} stepping {Stepping}, {Level})"
            : $"{Model} ({Vendor})";

    private static CpuInfo Detect()
    {
        if (!X86Base.IsSupported)
        {
            var arch = RuntimeInformation.ProcessArchitecture.ToString();
            return new CpuInfo { Vendor = arch, Model = ModelFromProcCpuinfo() ?? arch };
        }

        var (maxLeaf, vendorB, vendorC, vendorD) = X86Base.CpuId(0, 0);
        var vendor = Ascii(vendorB, vendorD, vendorC);
        var (signature, _, features1, _) = X86Base.CpuId(1, 0);
        int baseFamily = (signature >> 8) & 0xF, baseModel = (signature >> 4) & 0xF;
        var family = baseFamily == 0xF ? baseFamily + ((signature >> 20) & 0xFF) : baseFamily;
        var model = baseFamily is 0x6 or 0xF ? (((signature >> 16) & 0xF) << 4) + baseModel : baseModel;
        bool movbe = (features1 & (1 << 22)) != 0, f16c = (features1 & (1 << 29)) != 0;

        bool vnni = false, bf16 = false;
        if (maxLeaf >= 7)
        {
            var (maxSubleaf, _, features7, _) = X86Base.CpuId(7, 0);
            vnni = (features7 & (1 << 11)) != 0;
            bf16 = maxSubleaf >= 1 && (X86Base.CpuId(7, 1).Eax & (1 << 5)) != 0;
        }

        var avx2 = X86.Avx2.IsSupported && Fma.IsSupported && Bmi1.IsSupported && Bmi2.IsSupported && Lzcnt.IsSupported && movbe && f16c;
        var avx512 = avx2 && Avx512F.IsSupported && Avx512F.VL.IsSupported && Avx512CD.IsSupported && Avx512BW.IsSupported && Avx512DQ.IsSupported;
        return new CpuInfo
        {
            Vendor = vendor,
            Model = Brand() ?? ModelFromProcCpuinfo() ?? vendor,
            Family = family,
            ModelNumber = model,
            Stepping = signature & 0xF,
            Avx = X86.Avx.IsSupported,
            Avx2 = avx2,
            Avx512 = avx512,
            Avx512Bf16 = avx512 && vnni && bf16,
        };
    }

    /// <summary>The 48-byte brand string of CPUID leaves 0x80000002..4, trimmed; null when the processor has none.</summary>
    private static string? Brand()
    {
        if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < 0x80000004)
        {
            return null;
        }

        var text = new StringBuilder();
        for (var leaf = 0x80000002; leaf <= 0x80000004; leaf++)
        {
            var (a, b, c, d) = X86Base.CpuId(unchecked((int)leaf), 0);
            text.Append(Ascii(a, b, c, d));
        }

        var brand = text.ToString().TrimEnd('\0').Trim();
        return brand.Length > 0 ? brand : null;
    }

    private static string Ascii(params int[] registers)
    {
        var bytes = new byte[registers.Length * 4];
        for (var i = 0; i < registers.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), registers[i]);
        }

        return Encoding.ASCII.GetString(bytes);
    }

    private static string? ModelFromProcCpuinfo()
    {
        try
        {
            var line = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal) || l.StartsWith("Model", StringComparison.Ordinal))
                : null;
            return line?[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }
}
