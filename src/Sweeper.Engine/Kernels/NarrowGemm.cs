using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// The class scores of a linear classifier over CIFAR-10, scores = x w^T + b with w of exactly 10 rows, as one float32
/// AVX2/FMA kernel. A general sgemm handles so narrow a product poorly (it packs both operands for a 10-wide
/// result); here each example row is read once per 256-column chunk and multiplied against the 10 weight rows of
/// that chunk, which stay in the L1 cache, with the 10 sums in registers. Used when <see cref="Supported"/>; the
/// callers fall back to <see cref="Blas"/> otherwise. Tested against the BLAS product.
/// </summary>
public static class NarrowGemm
{
    /// <summary>The number of output columns (classes) the kernel is written for.</summary>
    public const int Width = 10;

    private const int Chunk = 256;

    public static bool Supported<T>(int outputs) => typeof(T) == typeof(float) && outputs == Width && Fma.IsSupported && Avx2.IsSupported;

    /// <summary>Floats of <see cref="Pack"/>'s output for d columns.</summary>
    public static int PackedLength(int d) => (d & ~7) * Width;

    /// <summary>
    /// Interleaves w (10 x d) by 8 columns: the 10 rows' columns k..k+7 side by side, so the kernel reads the weights
    /// as one sequential stream (rows d floats apart would share L1 cache sets when d * 4 is a multiple of 4 KiB).
    /// </summary>
    public static unsafe void Pack(ReadOnlySpan<float> w, int d, Span<float> packed)
    {
        if (w.Length != Width * d || packed.Length < PackedLength(d))
        {
            throw new ArgumentException($"NarrowGemm.Pack: w has {w.Length} floats for 10 x {d}, packed {packed.Length}.");
        }

        var d8 = d & ~7;
        fixed (float* pw = w, pp = packed)
        {
            var dst = pp;
            for (var k = 0; k < d8; k += 8, dst += Width * 8)
            {
                for (var c = 0; c < Width; c++)
                {
                    Avx.Store(dst + (c * 8), Avx.LoadVector256(pw + ((long)c * d) + k));
                }
            }
        }
    }

    /// <summary>
    /// output (rows x 10) = x (rows x d) w^T + b, with w 10 x d row-major and <paramref name="packed"/> its
    /// <see cref="Pack"/>. <paramref name="scratch"/> holds rows x 80 floats (the partial sums between column chunks).
    /// </summary>
    [SkipLocalsInit]
    public static unsafe void ScoresInto(ReadOnlySpan<float> x, int rows, int d, ReadOnlySpan<float> w, ReadOnlySpan<float> packed, ReadOnlySpan<float> b, Span<float> output, Span<float> scratch)
    {
        if (x.Length < rows * d || w.Length != Width * d || packed.Length < PackedLength(d) || b.Length != Width || output.Length < rows * Width || scratch.Length < rows * Width * 8)
        {
            throw new ArgumentException($"NarrowGemm shapes disagree: x {x.Length} for {rows} x {d}, w {w.Length}, packed {packed.Length}, b {b.Length}, output {output.Length}, scratch {scratch.Length}.");
        }

        var d8 = d & ~7;
        fixed (float* px = x, pw = w, pp = packed, pb = b, po = output, pa = scratch)
        {
            new Span<float>(pa, rows * Width * 8).Clear();
            for (var k0 = 0; k0 < d8; k0 += Chunk)
            {
                var end = Math.Min(k0 + Chunk, d8);
                for (var half = 0; half < Width; half += Width / 2)
                {
                    var r = 0;
                    for (; r + 2 <= rows; r += 2)
                    {
                        TwoRows(px + ((long)r * d), px + ((long)(r + 1) * d), pp + (k0 * Width) + (half * 8), k0, end, pa + (((r * Width) + half) * 8), pa + ((((r + 1) * Width) + half) * 8));
                    }

                    if (r < rows)
                    {
                        TwoRows(px + ((long)r * d), px + ((long)r * d), pp + (k0 * Width) + (half * 8), k0, end, pa + (((r * Width) + half) * 8), null);
                    }
                }
            }

            for (var r = 0; r < rows; r++)
            {
                var xr = px + ((long)r * d);
                for (var c = 0; c < Width; c++)
                {
                    var sum = Vector256.Sum(Avx.LoadVector256(pa + (((r * Width) + c) * 8))) + pb[c];
                    var wc = pw + ((long)c * d);
                    for (var k = d8; k < d; k++)
                    {
                        sum += xr[k] * wc[k];
                    }

                    po[(r * Width) + c] = sum;
                }
            }
        }
    }

    /// <summary>
    /// Adds x0[k0..end) and x1[k0..end) times five weight rows (interleaved at <paramref name="w"/>, 80 floats per 8
    /// columns) to the partial sums at a0 and a1 (5 vectors each; a1 null for a single row): 7 loads per 10 FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void TwoRows(float* x0, float* x1, float* w, int k0, int end, float* a0, float* a1)
    {
        var s00 = Avx.LoadVector256(a0);
        var s01 = Avx.LoadVector256(a0 + 8);
        var s02 = Avx.LoadVector256(a0 + 16);
        var s03 = Avx.LoadVector256(a0 + 24);
        var s04 = Avx.LoadVector256(a0 + 32);
        var s10 = Vector256<float>.Zero;
        var s11 = Vector256<float>.Zero;
        var s12 = Vector256<float>.Zero;
        var s13 = Vector256<float>.Zero;
        var s14 = Vector256<float>.Zero;
        for (var k = k0; k < end; k += 8, w += Width * 8)
        {
            var v0 = Avx.LoadVector256(x0 + k);
            var v1 = Avx.LoadVector256(x1 + k);
            var w0 = Avx.LoadVector256(w);
            s00 = Fma.MultiplyAdd(v0, w0, s00);
            s10 = Fma.MultiplyAdd(v1, w0, s10);
            var w1 = Avx.LoadVector256(w + 8);
            s01 = Fma.MultiplyAdd(v0, w1, s01);
            s11 = Fma.MultiplyAdd(v1, w1, s11);
            var w2 = Avx.LoadVector256(w + 16);
            s02 = Fma.MultiplyAdd(v0, w2, s02);
            s12 = Fma.MultiplyAdd(v1, w2, s12);
            var w3 = Avx.LoadVector256(w + 24);
            s03 = Fma.MultiplyAdd(v0, w3, s03);
            s13 = Fma.MultiplyAdd(v1, w3, s13);
            var w4 = Avx.LoadVector256(w + 32);
            s04 = Fma.MultiplyAdd(v0, w4, s04);
            s14 = Fma.MultiplyAdd(v1, w4, s14);
        }

        Avx.Store(a0, s00);
        Avx.Store(a0 + 8, s01);
        Avx.Store(a0 + 16, s02);
        Avx.Store(a0 + 24, s03);
        Avx.Store(a0 + 32, s04);
        if (a1 is not null)
        {
            Avx.Store(a1, Avx.Add(Avx.LoadVector256(a1), s10));
            Avx.Store(a1 + 8, Avx.Add(Avx.LoadVector256(a1 + 8), s11));
            Avx.Store(a1 + 16, Avx.Add(Avx.LoadVector256(a1 + 16), s12));
            Avx.Store(a1 + 24, Avx.Add(Avx.LoadVector256(a1 + 24), s13));
            Avx.Store(a1 + 32, Avx.Add(Avx.LoadVector256(a1 + 32), s14));
        }
    }
}
