using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// Thin binding to OpenBLAS's CBLAS matrix products. All matrices are row-major.
/// BLAS is pinned to one thread per process: throughput comes from one worker process per core.
/// <para>
/// Loading also chooses OpenBLAS's kernel ("core"), because OpenBLAS's own choice comes from a table of processor
/// models that lags new processors (see <see cref="OpenBlasCores"/>). Unless the user forced a kernel with
/// SWEEPER_BLAS_CORE (it wins, even when set only inside this process), Sweeper picks the best kernel for the
/// processor's instruction sets, whatever OPENBLAS_CORETYPE the environment holds, and sets OPENBLAS_CORETYPE in the C
/// library's environment just before the library is first loaded (OpenBLAS reads it in its constructor; .NET's own
/// environment copy is not what it reads), then puts back what was there. The kernel is then proven on this very
/// library: <see cref="BlasSelfCheck"/> compares products of awkward shapes against a double-precision reference. A library cannot be reliably unloaded, but a DYNAMIC_ARCH OpenBLAS can
/// redo its kernel selection in place (<c>gotoblas_dynamic_quit</c> then <c>gotoblas_dynamic_init</c>, which re-reads
/// OPENBLAS_CORETYPE and re-initializes the kernel's blocking parameters; nothing else depends on the kernel between
/// calls), so a kernel that fails the check is replaced in the same process by the next candidate, then OpenBLAS's own
/// choice, then the generic Prescott kernel. No kernel is proposed that needs an instruction the processor or the
/// operating system lacks, so trying one cannot crash the process. <see cref="Describe"/> and <see cref="Selection"/>
/// say what was chosen and why.
/// </para>
/// </summary>
public static unsafe class Blas
{
    /// <summary>The variable OpenBLAS reads to force a kernel.</summary>
    internal const string CoreTypeVariable = "OPENBLAS_CORETYPE";

    /// <summary>The variable with which a user forces Sweeper's kernel (e.g. to reproduce a run made on another one).</summary>
    public const string ForceVariable = "SWEEPER_BLAS_CORE";

    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;

    /// <summary>Library names tried in order; the first that loads and exports cblas_sgemm wins.</summary>
    private static readonly string[] _candidates =
    [
        "libopenblas.so.0", "libopenblas.so", "libopenblas.0.dylib", "libopenblas.dylib", "libopenblas.dll", "openblas",
    ];

    private static readonly Lazy<Api> _api = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Serializes kernel switches (<see cref="TryWithCore"/>) with each other.</summary>
    private static readonly Lock _switchLock = new();

    private sealed class Api
    {
        public required NativeBlas Native;
        public required string Library;
        public required BlasCoreSelection Selection;

        /// <summary>The OPENBLAS_CORETYPE value that reproduces the selected kernel (null: OpenBLAS's own choice).</summary>
        public required string? CoreType;
    }

    /// <summary>
    /// For tests, read once when the library loads: a kernel for which this returns true has its self-check products
    /// deliberately corrupted (one element), so the check must reject it and the selection move on.
    /// </summary>
    internal static Func<string, bool>? CorruptSelfCheckForTests { get; set; }

    /// <summary>
    /// The loaded library and its build configuration, the processor, the kernel OpenBLAS runs and how it was chosen
    /// (for logs and benchmarks).
    /// </summary>
    public static string Describe()
    {
        var api = _api.Value;
        return $"{api.Library} ({api.Native.Config}); {api.Selection with { Core = api.Native.Current }}";
    }

    /// <summary>The kernel OpenBLAS runs now (<c>openblas_get_corename</c>): the selected one except inside <see cref="TryWithCore"/>.</summary>
    internal static string CurrentCore => _api.Value.Native.Current;

    /// <summary>The kernel choice made when the library loaded (loads it now if needed).</summary>
    public static BlasCoreSelection Selection => _api.Value.Selection;

    /// <summary>Loads OpenBLAS now (instead of on first use) and throws <see cref="BlasUnavailableException"/> if it is missing.</summary>
    public static void EnsureLoaded() => _ = _api.Value;

    /// <summary>
    /// Runs <paramref name="action"/> with OpenBLAS switched to kernel <paramref name="core"/> (null: OpenBLAS's own
    /// choice), then switches back to the selected kernel. Returns the kernel it ran, or null without running the action
    /// when the library cannot switch, lacks the kernel, the processor cannot run it, OpenBLAS runs another one instead,
    /// or it fails the self-check. For benchmarks and tests: no other thread may call BLAS meanwhile.
    /// </summary>
    public static string? TryWithCore(string? core, Action action)
    {
        var api = _api.Value;
        var native = api.Native;
        lock (_switchLock)
        {
            if (!native.CanSwitch || (core is not null && (!native.Has(core) || !OpenBlasCores.Runs(api.Selection.Cpu, core))))
            {
                return null;
            }

            try
            {
                native.Switch(core);
                var ran = native.Current;
                if ((core is not null && !OpenBlasCores.Same(ran, core)) || native.SelfCheck() is not null)
                {
                    return null;
                }

                action();
                return ran;
            }
            finally
            {
                native.Switch(api.CoreType);
            }
        }
    }

    private static Api Load()
    {
        var cpu = CpuInfo.Current;
        var native = NativeEnvironment.Get(CoreTypeVariable);
        var environment = NonEmpty(native) ?? NonEmpty(Environment.GetEnvironmentVariable(CoreTypeVariable));
        var forced = NonEmpty(Environment.GetEnvironmentVariable(ForceVariable));
        // What OpenBLAS loads with: the forced kernel, else Sweeper's first candidate, else the environment's (passed on
        // even when set only in .NET's copy of the environment, e.g. by a host program). Without a way to set the C
        // library's environment, OpenBLAS reads the environment's as it is.
        var ours = NativeEnvironment.Supported ? forced ?? (OpenBlasCores.Candidates(cpu) is [var first, ..] ? first : environment) : null;
        var loadedWith = NativeEnvironment.Supported ? ours : environment;
        lock (_switchLock)
        {
            if (ours is not null)
            {
                NativeEnvironment.Set(CoreTypeVariable, ours);
            }

            NativeBlas library;
            try
            {
                library = Open();
            }
            finally
            {
                if (ours is not null)
                {
                    NativeEnvironment.Set(CoreTypeVariable, native); // as it was: unset, set, or set but empty
                }
            }

            library.SetSingleThreaded();
            library.Corrupt = CorruptSelfCheckForTests;
            var (selection, coreType) = OpenBlasCores.Select(cpu, forced, environment, loadedWith, library);
            return new Api { Native = library, Library = library.Name, Selection = selection, CoreType = coreType };
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static NativeBlas Open()
    {
        var tried = new List<string>();
        foreach (var name in _candidates)
        {
            if (!NativeLibrary.TryLoad(name, typeof(Blas).Assembly, DllImportSearchPath.SafeDirectories | DllImportSearchPath.AssemblyDirectory, out var handle))
            {
                tried.Add(name);
                continue;
            }

            if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out var sgemm) || !NativeLibrary.TryGetExport(handle, "cblas_dgemm", out var dgemm))
            {
                tried.Add(name + " (no cblas_sgemm)");
                continue;
            }

            return new NativeBlas(name, handle, sgemm, dgemm);
        }

        throw new BlasUnavailableException(
            "OpenBLAS was not found (tried " + string.Join(", ", tried) + "). " +
            "Install it with: sudo apt-get install libopenblas0-pthread (Debian/Ubuntu), or run ./scripts/setup.sh.");
    }

    /// <summary>The loaded library's entry points: the two products, and the kernel name and re-selection where exported.</summary>
    private sealed class NativeBlas : IOpenBlasCores
    {
        private readonly nint _handle;
        private readonly delegate* unmanaged<nint> _getCoreName;
        private readonly delegate* unmanaged<nint> _getConfig;
        private readonly delegate* unmanaged<void> _dynamicInit;
        private readonly delegate* unmanaged<void> _dynamicQuit;

        public NativeBlas(string name, nint handle, nint sgemm, nint dgemm)
        {
            Name = name;
            _handle = handle;
            Sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
            Dgemm = (delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void>)dgemm;
            _getCoreName = (delegate* unmanaged<nint>)Export("openblas_get_corename");
            _getConfig = (delegate* unmanaged<nint>)Export("openblas_get_config");
            _dynamicInit = (delegate* unmanaged<void>)Export("gotoblas_dynamic_init");
            _dynamicQuit = (delegate* unmanaged<void>)Export("gotoblas_dynamic_quit");
        }

        public string Name { get; }

        public delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm { get; }

        public delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void> Dgemm { get; }

        /// <summary>Tests' corruption of self-check products (see <see cref="CorruptSelfCheckForTests"/>).</summary>
        public Func<string, bool>? Corrupt { get; set; }

        public string Config => _getConfig == null ? "unknown build" : Marshal.PtrToStringAnsi(_getConfig())?.Trim() ?? "unknown build";

        public string Current => _getCoreName == null ? "unknown" : Marshal.PtrToStringAnsi(_getCoreName()) ?? "unknown";

        public bool CanSwitch => _dynamicInit != null && _dynamicQuit != null && _getCoreName != null && NativeEnvironment.Supported;

        public bool Has(string core) => NativeLibrary.TryGetExport(_handle, "gotoblas_" + core.ToUpperInvariant(), out _);

        public void SetSingleThreaded()
        {
            if (Export("openblas_set_num_threads") is var setThreads and not 0)
            {
                ((delegate* unmanaged<int, void>)setThreads)(1);
            }
        }

        public void Switch(string? coreType)
        {
            var saved = NativeEnvironment.Get(CoreTypeVariable);
            NativeEnvironment.Set(CoreTypeVariable, coreType);
            try
            {
                _dynamicQuit();
                _dynamicInit();
            }
            finally
            {
                NativeEnvironment.Set(CoreTypeVariable, saved);
            }
        }

        public string? SelfCheck()
        {
            GemmKernel<float> sgemm = SgemmKernel;
            if (Corrupt?.Invoke(Current) == true)
            {
                sgemm = (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
                {
                    SgemmKernel(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                    c[0] += 1 + Math.Abs(c[0]);
                };
            }

            return BlasSelfCheck.Run(sgemm, DgemmKernel);
        }

        private void SgemmKernel(bool ta, bool tb, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc) =>
            Multiply(this, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

        private void DgemmKernel(bool ta, bool tb, int m, int n, int k, double alpha, ReadOnlySpan<double> a, int lda, ReadOnlySpan<double> b, int ldb, double beta, Span<double> c, int ldc) =>
            Multiply(this, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

        private nint Export(string name) => NativeLibrary.TryGetExport(_handle, name, out var address) ? address : 0;
    }

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C, row-major, where op(A) is m x k and op(B) is k x n.
    /// Lengths are checked here once; the kernel trusts them.
    /// </summary>
    public static void Gemm<T>(bool transA, bool transB, int m, int n, int k, T alpha,
        ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc)
        where T : unmanaged
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        Multiply(_api.Value.Native, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    private static void Multiply<T>(NativeBlas native, bool transA, bool transB, int m, int n, int k, T alpha,
        ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc)
        where T : unmanaged
    {
        CheckLength(a.Length, transA ? k : m, transA ? m : k, lda, "A");
        CheckLength(b.Length, transB ? n : k, transB ? k : n, ldb, "B");
        CheckLength(c.Length, m, n, ldc, "C");
        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* pc = c)
        {
            int ta = transA ? Trans : NoTrans, tb = transB ? Trans : NoTrans;
            if (typeof(T) == typeof(float))
            {
                native.Sgemm(RowMajor, ta, tb, m, n, k, Unsafe.As<T, float>(ref alpha), (float*)pa, lda, (float*)pb, ldb, Unsafe.As<T, float>(ref beta), (float*)pc, ldc);
            }
            else if (typeof(T) == typeof(double))
            {
                native.Dgemm(RowMajor, ta, tb, m, n, k, Unsafe.As<T, double>(ref alpha), (double*)pa, lda, (double*)pb, ldb, Unsafe.As<T, double>(ref beta), (double*)pc, ldc);
            }
            else
            {
                throw new NotSupportedException($"BLAS supports float and double, not {typeof(T).Name}.");
            }
        }
    }

    private static void CheckLength(int length, int rows, int cols, int ld, string name)
    {
        if (ld < cols)
        {
            throw new ArgumentException($"Matrix {name}: leading dimension {ld} is smaller than its {cols} columns.");
        }

        if (rows > 0 && cols > 0 && length < (long)(rows - 1) * ld + cols)
        {
            throw new ArgumentException($"Matrix {name} holds {length} elements, fewer than {rows} x {cols} with leading dimension {ld} need.");
        }
    }
}

/// <summary>Thrown when no OpenBLAS library can be loaded.</summary>
public sealed class BlasUnavailableException(string message) : Exception(message);
