using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// Thin binding to OpenBLAS's CBLAS matrix products. All matrices are row-major.
/// BLAS is pinned to one thread per process: throughput comes from one worker process per core.
/// </summary>
public static unsafe class Blas
{
    private const int RowMajor = 101;
    private const int NoTrans = 111;
    private const int Trans = 112;

    /// <summary>Library names tried in order; the first that loads and exports cblas_sgemm wins.</summary>
    private static readonly string[] _candidates =
    [
        "libopenblas.so.0", "libopenblas.so", "libopenblas.0.dylib", "libopenblas.dylib", "libopenblas.dll", "openblas",
    ];

    private static readonly Lazy<Api> _api = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed class Api
    {
        public required delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm;
        public required delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void> Dgemm;
        public required string Library;
        public required string Config;
    }

    /// <summary>Name of the loaded library and its build configuration (for logs and benchmarks).</summary>
    public static string Describe() => $"{_api.Value.Library} ({_api.Value.Config})";

    /// <summary>Loads OpenBLAS now (instead of on first use) and throws <see cref="BlasUnavailableException"/> if it is missing.</summary>
    public static void EnsureLoaded() => _ = _api.Value;

    private static Api Load()
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

            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var setThreads))
            {
                ((delegate* unmanaged<int, void>)setThreads)(1);
            }

            var config = "unknown build";
            if (NativeLibrary.TryGetExport(handle, "openblas_get_config", out var getConfig))
            {
                config = Marshal.PtrToStringAnsi(((delegate* unmanaged<nint>)getConfig)()) ?? config;
            }

            return new Api
            {
                Sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm,
                Dgemm = (delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void>)dgemm,
                Library = name,
                Config = config.Trim(),
            };
        }

        throw new BlasUnavailableException(
            "OpenBLAS was not found (tried " + string.Join(", ", tried) + "). " +
            "Install it with: sudo apt-get install libopenblas0-pthread (Debian/Ubuntu), or run ./scripts/setup.sh.");
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

        CheckLength(a.Length, transA ? k : m, transA ? m : k, lda, "A");
        CheckLength(b.Length, transB ? n : k, transB ? k : n, ldb, "B");
        CheckLength(c.Length, m, n, ldc, "C");
        var api = _api.Value;
        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* pc = c)
        {
            int ta = transA ? Trans : NoTrans, tb = transB ? Trans : NoTrans;
            if (typeof(T) == typeof(float))
            {
                api.Sgemm(RowMajor, ta, tb, m, n, k, Unsafe.As<T, float>(ref alpha), (float*)pa, lda, (float*)pb, ldb, Unsafe.As<T, float>(ref beta), (float*)pc, ldc);
            }
            else if (typeof(T) == typeof(double))
            {
                api.Dgemm(RowMajor, ta, tb, m, n, k, Unsafe.As<T, double>(ref alpha), (double*)pa, lda, (double*)pb, ldb, Unsafe.As<T, double>(ref beta), (double*)pc, ldc);
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
