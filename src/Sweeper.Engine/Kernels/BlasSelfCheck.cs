using System.Numerics;
using Sweeper.Core;

namespace Sweeper.Engine.Kernels;

/// <summary>A row-major GEMM with <see cref="Blas.Gemm{T}"/>'s signature: C = alpha * op(A) * op(B) + beta * C.</summary>
internal delegate void GemmKernel<T>(bool transA, bool transB, int m, int n, int k, T alpha,
    ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc);

/// <summary>
/// The start-up check of a BLAS kernel: products of a few awkward shapes against a naive double-precision reference.
/// <para>
/// The shapes are odd in every dimension (no kernel's register tile divides them), cover the four transpose
/// combinations, padded leading dimensions, alpha and beta other than 1 and 0, beta = 0 over a C full of NaN (BLAS
/// must not read C then), k past every x86 kernel's K block (1031) and m past every M block (771), both large
/// enough (m n k above 100^3) to take the blocked path rather than the small-matrix kernels of the AVX-512 builds, so
/// the packing edges and the block loops all run. For each checked element the error bound is the worst case of any summation
/// order, 2 (k + 4) u (|alpha| sum |a b| + |beta c|) with u the unit roundoff of the type: a correct kernel cannot
/// exceed it and a wrong one (a lost term, a wrong edge, a misread stride) exceeds it by orders of magnitude. C's
/// padding columns must come back untouched. Small products are checked in full, large ones on their edges and random
/// elements (see <see cref="Elements"/>), which keeps the whole check at a few milliseconds.
/// </para>
/// </summary>
internal static class BlasSelfCheck
{
    private readonly record struct Shape(bool TransA, bool TransB, int M, int N, int K, double Alpha, double Beta, int Pad, bool DoublesToo);

    private static readonly Shape[] _shapes =
    [
        new(false, false, 1, 1, 1, 1, 0, 0, true),
        new(false, false, 7, 5, 9, 0.7, 0.3, 0, true),
        new(true, false, 17, 33, 65, -1.25, 1, 3, true),
        new(false, true, 31, 18, 257, 0.5, -0.5, 1, false),
        new(true, true, 41, 27, 1031, 1, 0, 5, true),
        new(false, false, 771, 67, 64, 1, 0.25, 2, false),
    ];

    /// <summary>
    /// Runs every shape through <paramref name="sgemm"/> (and the smaller ones through <paramref name="dgemm"/> when given).
    /// Returns null when every checked element is within its bound, else what disagreed first.
    /// </summary>
    public static string? Run(GemmKernel<float> sgemm, GemmKernel<double>? dgemm)
    {
        var rng = new Rng(0x5E1FC4EC);
        foreach (var shape in _shapes)
        {
            if (Check(sgemm, shape, rng, Math.ScaleB(1.0, -24), "sgemm") is { } failure)
            {
                return failure;
            }

            if (dgemm is not null && shape.DoublesToo && Check(dgemm, shape, rng, Math.ScaleB(1.0, -53), "dgemm") is { } doubleFailure)
            {
                return doubleFailure;
            }
        }

        return null;
    }

    private static string? Check<T>(GemmKernel<T> gemm, Shape s, Rng rng, double unit, string name)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rowsA = s.TransA ? s.K : s.M, colsA = s.TransA ? s.M : s.K;
        int rowsB = s.TransB ? s.N : s.K, colsB = s.TransB ? s.K : s.N;
        int lda = colsA + s.Pad, ldb = colsB + s.Pad, ldc = s.N + s.Pad;
        var a = new T[rowsA * lda];
        var b = new T[rowsB * ldb];
        var c0 = new T[s.M * ldc];
        Fill(a, rng);
        Fill(b, rng);
        if (s.Beta == 0)
        {
            c0.AsSpan().Fill(T.NaN);
        }
        else
        {
            Fill(c0, rng);
        }

        var alpha = T.CreateChecked(s.Alpha);
        var beta = T.CreateChecked(s.Beta);
        var c = (T[])c0.Clone();
        gemm(s.TransA, s.TransB, s.M, s.N, s.K, alpha, a, lda, b, ldb, beta, c, ldc);

        string Where() => $"{name} {s.M}x{s.N}x{s.K}{(s.TransA ? " A^T" : string.Empty)}{(s.TransB ? " B^T" : string.Empty)}";
        for (var i = 0; i < s.M; i++)
        {
            for (var j = s.N; j < ldc; j++)
            {
                if (!Same(c[(i * ldc) + j], c0[(i * ldc) + j]))
                {
                    return $"{Where()}: wrote C[{i},{j}], past the {s.N} columns, into the leading-dimension padding";
                }
            }
        }

        double alphaD = double.CreateChecked(alpha), betaD = double.CreateChecked(beta);
        double[] ad = ToDouble(a), bd = ToDouble(b);
        foreach (var (i, j) in Elements(s.M, s.N, rng))
        {
            double sum = 0, magnitude = 0;
            for (var p = 0; p < s.K; p++)
            {
                var product = (s.TransA ? ad[(p * lda) + i] : ad[(i * lda) + p]) * (s.TransB ? bd[(j * ldb) + p] : bd[(p * ldb) + j]);
                sum += product;
                magnitude += Math.Abs(product);
            }

            var old = betaD == 0 ? 0 : betaD * double.CreateChecked(c0[(i * ldc) + j]);
            var expected = (alphaD * sum) + old;
            var bound = (2.0 * (s.K + 4) * unit * ((Math.Abs(alphaD) * magnitude) + Math.Abs(old))) + 1e-30;
            var got = double.CreateChecked(c[(i * ldc) + j]);
            if (!(Math.Abs(got - expected) <= bound))
            {
                return $"{Where()}: C[{i},{j}] = {got:G9} but the reference is {expected:G9} (allowed error {bound:G3})";
            }
        }

        return null;
    }

    /// <summary>Uniform values in [-1, 1): as good as normal ones here, and much cheaper to draw.</summary>
    private static void Fill<T>(T[] values, Rng rng)
        where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = T.CreateTruncating((2 * rng.NextDouble()) - 1);
        }
    }

    private static double[] ToDouble<T>(T[] values)
        where T : IFloatingPointIeee754<T>
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = double.CreateChecked(values[i]);
        }

        return result;
    }

    private static bool Same<T>(T x, T y)
        where T : IFloatingPointIeee754<T> => x == y || (T.IsNaN(x) && T.IsNaN(y));

    /// <summary>
    /// Every element of a small product. Of a large one: the first and last rows, the first and last columns on every
    /// 8th row and on the last 16 rows (where the row tiles end), and 128 random elements.
    /// </summary>
    private static IEnumerable<(int I, int J)> Elements(int m, int n, Rng rng)
    {
        if (m * n <= 600)
        {
            for (var i = 0; i < m; i++)
            {
                for (var j = 0; j < n; j++)
                {
                    yield return (i, j);
                }
            }

            yield break;
        }

        for (var j = 0; j < n; j++)
        {
            yield return (0, j);
            yield return (m - 1, j);
        }

        for (var i = 1; i < m - 1; i++)
        {
            if (i % 8 == 0 || i >= m - 16)
            {
                yield return (i, 0);
                yield return (i, n - 1);
            }
        }

        for (var r = 0; r < 128; r++)
        {
            yield return (rng.NextInt(m), rng.NextInt(n));
        }
    }
}
