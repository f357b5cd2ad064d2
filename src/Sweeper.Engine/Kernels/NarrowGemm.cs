using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// The two matrix products of a linear classifier over CIFAR-10 with exactly 10 classes, as float32 FMA kernels:
/// the scores x w^T + b (<see cref="ScoresInto"/>) and the weight step alpha dscores^T x (<see cref="WeightStepInto"/>).
/// A general sgemm handles so narrow a product poorly (it packs both operands for a 10-wide result or a 10-row
/// one, and runs at a quarter of its large-matrix rate on these shapes). Here the 10 weight rows (or gradient rows) of
/// a column chunk stay in registers or the L1 cache while the examples' rows stream past once. Each kernel runs on
/// 512-bit vectors where the runtime finds them fast (<see cref="Vector512.IsHardwareAccelerated"/>: AVX-512, with
/// 32 vector registers), on 256-bit AVX2 vectors otherwise. Used when <see cref="Supported"/>; the callers fall back
/// to <see cref="Blas"/> otherwise. Tested against double-precision loops on both vector widths.
/// </summary>
public static class NarrowGemm
{
    /// <summary>The number of output columns (classes) the kernel is written for.</summary>
    public const int Width = 10;

    /// <summary>
    /// Vectors of columns per chunk of the scores kernel: 256 columns on 8 lanes, 512 on 16, so the chunk of packed
    /// weights (10 or 20 KiB) stays in L1 while all rows pass, and the partial sums are reloaded once per chunk.
    /// </summary>
    private const int ChunkVectors = 32;

    public static bool Supported<T>(int outputs) => typeof(T) == typeof(float) && outputs == Width && Fma.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Floats per vector of the kernels on this machine: 16 with fast 512-bit vectors, else 8. <see cref="Pack"/>
    /// interleaves w by this many columns, and the scores' partial sums have this many lanes.
    /// </summary>
    public static int Lanes => WideSupported ? 16 : 8;

    /// <summary>True when the 512-bit kernels can run and the runtime finds 512-bit vectors fast here.</summary>
    internal static bool WideSupported => Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>Floats of <see cref="Pack"/>'s output for d columns.</summary>
    public static int PackedLength(int d) => PackedLength(d, Lanes);

    internal static int PackedLength(int d, int lanes) => (d / lanes) * lanes * Width;

    /// <summary>Floats of <see cref="ScoresInto"/>'s scratch for a block of <paramref name="rows"/> rows.</summary>
    public static int ScratchLength(int rows) => ScratchLength(rows, Lanes);

    internal static int ScratchLength(int rows, int lanes) => rows * Width * lanes;

    /// <summary>
    /// Interleaves w (10 x d) by <see cref="Lanes"/> columns: the 10 rows' columns k..k+Lanes-1 side by side, so the
    /// kernel reads the weights as one sequential stream (rows d floats apart would share L1 cache sets when d * 4 is
    /// a multiple of 4 KiB).
    /// </summary>
    public static void Pack(ReadOnlySpan<float> w, int d, Span<float> packed) => Pack(w, d, packed, Lanes);

    internal static unsafe void Pack(ReadOnlySpan<float> w, int d, Span<float> packed, int lanes)
    {
        CheckLanes(lanes);
        if (w.Length != Width * d || packed.Length < PackedLength(d, lanes))
        {
            throw new ArgumentException($"NarrowGemm.Pack: w has {w.Length} floats for 10 x {d}, packed {packed.Length}.");
        }

        var end = d / lanes * lanes;
        fixed (float* pw = w, pp = packed)
        {
            var dst = pp;
            for (var k = 0; k < end; k += lanes)
            {
                for (var c = 0; c < Width; c++)
                {
                    for (var v = 0; v < lanes; v += 8, dst += 8)
                    {
                        Avx.Store(dst, Avx.LoadVector256(pw + ((long)c * d) + k + v));
                    }
                }
            }
        }
    }

    /// <summary>
    /// output (rows x 10) = x (rows x d) w^T + b, with w 10 x d row-major and <paramref name="packed"/> its
    /// <see cref="Pack"/>. <paramref name="scratch"/> holds <see cref="ScratchLength"/> floats (the partial sums
    /// between column chunks).
    /// </summary>
    public static void ScoresInto(ReadOnlySpan<float> x, int rows, int d, ReadOnlySpan<float> w, ReadOnlySpan<float> packed, ReadOnlySpan<float> b, Span<float> output, Span<float> scratch) =>
        ScoresInto(x, rows, d, w, packed, b, output, scratch, Lanes);

    [SkipLocalsInit]
    internal static unsafe void ScoresInto(ReadOnlySpan<float> x, int rows, int d, ReadOnlySpan<float> w, ReadOnlySpan<float> packed, ReadOnlySpan<float> b, Span<float> output, Span<float> scratch, int lanes)
    {
        CheckLanes(lanes);
        if (x.Length < rows * d || w.Length != Width * d || packed.Length < PackedLength(d, lanes) || b.Length != Width || output.Length < rows * Width || scratch.Length < ScratchLength(rows, lanes))
        {
            throw new ArgumentException($"NarrowGemm shapes disagree: x {x.Length} for {rows} x {d}, w {w.Length}, packed {packed.Length}, b {b.Length}, output {output.Length}, scratch {scratch.Length}.");
        }

        var vectorEnd = d / lanes * lanes;
        var group = Width * lanes; // floats of packed w per `lanes` columns
        fixed (float* px = x, pw = w, pp = packed, pb = b, po = output, pa = scratch)
        {
            new Span<float>(pa, ScratchLength(rows, lanes)).Clear();
            var chunk = ChunkVectors * lanes;
            for (var k0 = 0; k0 < vectorEnd; k0 += chunk)
            {
                var end = Math.Min(k0 + chunk, vectorEnd);
                var wk = pp + ((long)k0 / lanes * group);
                if (lanes == 16)
                {
                    var r = 0;
                    for (; r + 2 <= rows; r += 2)
                    {
                        TwoRowsWide(px + ((long)r * d), px + ((long)(r + 1) * d), wk, k0, end, pa + (r * group), pa + ((r + 1) * group));
                    }

                    if (r < rows)
                    {
                        TwoRowsWide(px + ((long)r * d), px + ((long)r * d), wk, k0, end, pa + (r * group), null);
                    }

                    continue;
                }

                for (var half = 0; half < Width; half += Width / 2)
                {
                    var r = 0;
                    for (; r + 2 <= rows; r += 2)
                    {
                        TwoRows(px + ((long)r * d), px + ((long)(r + 1) * d), wk + (half * 8), k0, end, pa + (((r * Width) + half) * 8), pa + ((((r + 1) * Width) + half) * 8));
                    }

                    if (r < rows)
                    {
                        TwoRows(px + ((long)r * d), px + ((long)r * d), wk + (half * 8), k0, end, pa + (((r * Width) + half) * 8), null);
                    }
                }
            }

            for (var r = 0; r < rows; r++)
            {
                var xr = px + ((long)r * d);
                for (var c = 0; c < Width; c++)
                {
                    var partial = pa + (((r * Width) + c) * lanes);
                    var sum = (lanes == 16 ? Vector512.Sum(Vector512.Load(partial)) : Vector256.Sum(Vector256.Load(partial))) + pb[c];
                    var wc = pw + ((long)c * d);
                    for (var k = vectorEnd; k < d; k++)
                    {
                        sum += xr[k] * wc[k];
                    }

                    po[(r * Width) + c] = sum;
                }
            }
        }
    }

    /// <summary>
    /// step (10 x d) = alpha dscores^T x, plus the step's previous value when <paramref name="accumulate"/>: the
    /// weight step of a block of rows, with dscores rows x 10 and x rows x d, both row-major. Each chunk of 32
    /// columns (8 on AVX2) is summed over all rows in registers, then scaled and written once.
    /// </summary>
    public static void WeightStepInto(ReadOnlySpan<float> dscores, ReadOnlySpan<float> x, int rows, int d, float alpha, Span<float> step, bool accumulate) =>
        WeightStepInto(dscores, x, rows, d, alpha, step, accumulate, Lanes);

    internal static unsafe void WeightStepInto(ReadOnlySpan<float> dscores, ReadOnlySpan<float> x, int rows, int d, float alpha, Span<float> step, bool accumulate, int lanes)
    {
        CheckLanes(lanes);
        if (dscores.Length < rows * Width || x.Length < rows * d || step.Length != Width * d)
        {
            throw new ArgumentException($"NarrowGemm.WeightStepInto shapes disagree: dscores {dscores.Length} and x {x.Length} for {rows} x {d}, step {step.Length}.");
        }

        fixed (float* pds = dscores, px = x, ps = step)
        {
            var k = 0;
            if (lanes == 16)
            {
                for (; k + 32 <= d; k += 32)
                {
                    StepColumnsWide(pds, px + k, rows, d, alpha, ps + k, accumulate);
                }
            }

            for (; k + 8 <= d; k += 8)
            {
                StepColumns(pds, px + k, rows, d, alpha, ps + k, accumulate);
            }

            for (; k < d; k++)
            {
                for (var c = 0; c < Width; c++)
                {
                    var sum = 0f;
                    for (var i = 0; i < rows; i++)
                    {
                        sum = MathF.FusedMultiplyAdd(pds[(i * Width) + c], px[((long)i * d) + k], sum);
                    }

                    ref var s = ref ps[((long)c * d) + k];
                    s = accumulate ? MathF.FusedMultiplyAdd(sum, alpha, s) : sum * alpha;
                }
            }
        }
    }

    private static void CheckLanes(int lanes)
    {
        if (lanes != 8 && !(lanes == 16 && WideSupported))
        {
            throw new ArgumentOutOfRangeException(nameof(lanes), lanes, "NarrowGemm runs 8 lanes, or 16 where 512-bit vectors are fast.");
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

    /// <summary>
    /// Adds x0[k0..end) and x1[k0..end) times all ten weight rows (interleaved at <paramref name="w"/>, 160 floats
    /// per 16 columns) to the partial sums at a0 and a1 (10 vectors of 16 each; a1 null for a single row): 20
    /// accumulators in 512-bit registers, 12 loads per 20 FMAs, and each row read once per chunk.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void TwoRowsWide(float* x0, float* x1, float* w, int k0, int end, float* a0, float* a1)
    {
        var s00 = Vector512.Load(a0);
        var s01 = Vector512.Load(a0 + 16);
        var s02 = Vector512.Load(a0 + 32);
        var s03 = Vector512.Load(a0 + 48);
        var s04 = Vector512.Load(a0 + 64);
        var s05 = Vector512.Load(a0 + 80);
        var s06 = Vector512.Load(a0 + 96);
        var s07 = Vector512.Load(a0 + 112);
        var s08 = Vector512.Load(a0 + 128);
        var s09 = Vector512.Load(a0 + 144);
        var s10 = Vector512<float>.Zero;
        var s11 = Vector512<float>.Zero;
        var s12 = Vector512<float>.Zero;
        var s13 = Vector512<float>.Zero;
        var s14 = Vector512<float>.Zero;
        var s15 = Vector512<float>.Zero;
        var s16 = Vector512<float>.Zero;
        var s17 = Vector512<float>.Zero;
        var s18 = Vector512<float>.Zero;
        var s19 = Vector512<float>.Zero;
        for (var k = k0; k < end; k += 16, w += Width * 16)
        {
            var v0 = Vector512.Load(x0 + k);
            var v1 = Vector512.Load(x1 + k);
            var w0 = Vector512.Load(w);
            s00 = Avx512F.FusedMultiplyAdd(v0, w0, s00);
            s10 = Avx512F.FusedMultiplyAdd(v1, w0, s10);
            var w1 = Vector512.Load(w + 16);
            s01 = Avx512F.FusedMultiplyAdd(v0, w1, s01);
            s11 = Avx512F.FusedMultiplyAdd(v1, w1, s11);
            var w2 = Vector512.Load(w + 32);
            s02 = Avx512F.FusedMultiplyAdd(v0, w2, s02);
            s12 = Avx512F.FusedMultiplyAdd(v1, w2, s12);
            var w3 = Vector512.Load(w + 48);
            s03 = Avx512F.FusedMultiplyAdd(v0, w3, s03);
            s13 = Avx512F.FusedMultiplyAdd(v1, w3, s13);
            var w4 = Vector512.Load(w + 64);
            s04 = Avx512F.FusedMultiplyAdd(v0, w4, s04);
            s14 = Avx512F.FusedMultiplyAdd(v1, w4, s14);
            var w5 = Vector512.Load(w + 80);
            s05 = Avx512F.FusedMultiplyAdd(v0, w5, s05);
            s15 = Avx512F.FusedMultiplyAdd(v1, w5, s15);
            var w6 = Vector512.Load(w + 96);
            s06 = Avx512F.FusedMultiplyAdd(v0, w6, s06);
            s16 = Avx512F.FusedMultiplyAdd(v1, w6, s16);
            var w7 = Vector512.Load(w + 112);
            s07 = Avx512F.FusedMultiplyAdd(v0, w7, s07);
            s17 = Avx512F.FusedMultiplyAdd(v1, w7, s17);
            var w8 = Vector512.Load(w + 128);
            s08 = Avx512F.FusedMultiplyAdd(v0, w8, s08);
            s18 = Avx512F.FusedMultiplyAdd(v1, w8, s18);
            var w9 = Vector512.Load(w + 144);
            s09 = Avx512F.FusedMultiplyAdd(v0, w9, s09);
            s19 = Avx512F.FusedMultiplyAdd(v1, w9, s19);
        }

        s00.Store(a0);
        s01.Store(a0 + 16);
        s02.Store(a0 + 32);
        s03.Store(a0 + 48);
        s04.Store(a0 + 64);
        s05.Store(a0 + 80);
        s06.Store(a0 + 96);
        s07.Store(a0 + 112);
        s08.Store(a0 + 128);
        s09.Store(a0 + 144);
        if (a1 is not null)
        {
            (Vector512.Load(a1) + s10).Store(a1);
            (Vector512.Load(a1 + 16) + s11).Store(a1 + 16);
            (Vector512.Load(a1 + 32) + s12).Store(a1 + 32);
            (Vector512.Load(a1 + 48) + s13).Store(a1 + 48);
            (Vector512.Load(a1 + 64) + s14).Store(a1 + 64);
            (Vector512.Load(a1 + 80) + s15).Store(a1 + 80);
            (Vector512.Load(a1 + 96) + s16).Store(a1 + 96);
            (Vector512.Load(a1 + 112) + s17).Store(a1 + 112);
            (Vector512.Load(a1 + 128) + s18).Store(a1 + 128);
            (Vector512.Load(a1 + 144) + s19).Store(a1 + 144);
        }
    }

    /// <summary>
    /// step[c, 0..8) = alpha sum over rows i of dscores[i, c] x[i, 0..8) (+ step[c, 0..8) when accumulating), for the
    /// 8 columns at <paramref name="x"/> and <paramref name="step"/> (row strides d): 10 accumulators, 11 loads per 10 FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StepColumns(float* ds, float* x, int rows, int d, float alpha, float* step, bool accumulate)
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        var a4 = Vector256<float>.Zero;
        var a5 = Vector256<float>.Zero;
        var a6 = Vector256<float>.Zero;
        var a7 = Vector256<float>.Zero;
        var a8 = Vector256<float>.Zero;
        var a9 = Vector256<float>.Zero;
        for (var i = 0; i < rows; i++, x += d, ds += Width)
        {
            var v = Avx.LoadVector256(x);
            a0 = Fma.MultiplyAdd(v, Vector256.Create(ds[0]), a0);
            a1 = Fma.MultiplyAdd(v, Vector256.Create(ds[1]), a1);
            a2 = Fma.MultiplyAdd(v, Vector256.Create(ds[2]), a2);
            a3 = Fma.MultiplyAdd(v, Vector256.Create(ds[3]), a3);
            a4 = Fma.MultiplyAdd(v, Vector256.Create(ds[4]), a4);
            a5 = Fma.MultiplyAdd(v, Vector256.Create(ds[5]), a5);
            a6 = Fma.MultiplyAdd(v, Vector256.Create(ds[6]), a6);
            a7 = Fma.MultiplyAdd(v, Vector256.Create(ds[7]), a7);
            a8 = Fma.MultiplyAdd(v, Vector256.Create(ds[8]), a8);
            a9 = Fma.MultiplyAdd(v, Vector256.Create(ds[9]), a9);
        }

        var s = Vector256.Create(alpha);
        Finish(step, a0, s, accumulate);
        Finish(step + d, a1, s, accumulate);
        Finish(step + (2L * d), a2, s, accumulate);
        Finish(step + (3L * d), a3, s, accumulate);
        Finish(step + (4L * d), a4, s, accumulate);
        Finish(step + (5L * d), a5, s, accumulate);
        Finish(step + (6L * d), a6, s, accumulate);
        Finish(step + (7L * d), a7, s, accumulate);
        Finish(step + (8L * d), a8, s, accumulate);
        Finish(step + (9L * d), a9, s, accumulate);
    }

    /// <summary>
    /// <see cref="StepColumns"/> for 32 columns in 512-bit registers: 20 accumulators, 12 loads per 20 FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StepColumnsWide(float* ds, float* x, int rows, int d, float alpha, float* step, bool accumulate)
    {
        var a00 = Vector512<float>.Zero;
        var a01 = Vector512<float>.Zero;
        var a10 = Vector512<float>.Zero;
        var a11 = Vector512<float>.Zero;
        var a20 = Vector512<float>.Zero;
        var a21 = Vector512<float>.Zero;
        var a30 = Vector512<float>.Zero;
        var a31 = Vector512<float>.Zero;
        var a40 = Vector512<float>.Zero;
        var a41 = Vector512<float>.Zero;
        var a50 = Vector512<float>.Zero;
        var a51 = Vector512<float>.Zero;
        var a60 = Vector512<float>.Zero;
        var a61 = Vector512<float>.Zero;
        var a70 = Vector512<float>.Zero;
        var a71 = Vector512<float>.Zero;
        var a80 = Vector512<float>.Zero;
        var a81 = Vector512<float>.Zero;
        var a90 = Vector512<float>.Zero;
        var a91 = Vector512<float>.Zero;
        for (var i = 0; i < rows; i++, x += d, ds += Width)
        {
            var v0 = Vector512.Load(x);
            var v1 = Vector512.Load(x + 16);
            var g = Vector512.Create(ds[0]);
            a00 = Avx512F.FusedMultiplyAdd(v0, g, a00);
            a01 = Avx512F.FusedMultiplyAdd(v1, g, a01);
            g = Vector512.Create(ds[1]);
            a10 = Avx512F.FusedMultiplyAdd(v0, g, a10);
            a11 = Avx512F.FusedMultiplyAdd(v1, g, a11);
            g = Vector512.Create(ds[2]);
            a20 = Avx512F.FusedMultiplyAdd(v0, g, a20);
            a21 = Avx512F.FusedMultiplyAdd(v1, g, a21);
            g = Vector512.Create(ds[3]);
            a30 = Avx512F.FusedMultiplyAdd(v0, g, a30);
            a31 = Avx512F.FusedMultiplyAdd(v1, g, a31);
            g = Vector512.Create(ds[4]);
            a40 = Avx512F.FusedMultiplyAdd(v0, g, a40);
            a41 = Avx512F.FusedMultiplyAdd(v1, g, a41);
            g = Vector512.Create(ds[5]);
            a50 = Avx512F.FusedMultiplyAdd(v0, g, a50);
            a51 = Avx512F.FusedMultiplyAdd(v1, g, a51);
            g = Vector512.Create(ds[6]);
            a60 = Avx512F.FusedMultiplyAdd(v0, g, a60);
            a61 = Avx512F.FusedMultiplyAdd(v1, g, a61);
            g = Vector512.Create(ds[7]);
            a70 = Avx512F.FusedMultiplyAdd(v0, g, a70);
            a71 = Avx512F.FusedMultiplyAdd(v1, g, a71);
            g = Vector512.Create(ds[8]);
            a80 = Avx512F.FusedMultiplyAdd(v0, g, a80);
            a81 = Avx512F.FusedMultiplyAdd(v1, g, a81);
            g = Vector512.Create(ds[9]);
            a90 = Avx512F.FusedMultiplyAdd(v0, g, a90);
            a91 = Avx512F.FusedMultiplyAdd(v1, g, a91);
        }

        var s = Vector512.Create(alpha);
        FinishWide(step, a00, a01, s, accumulate);
        FinishWide(step + d, a10, a11, s, accumulate);
        FinishWide(step + (2L * d), a20, a21, s, accumulate);
        FinishWide(step + (3L * d), a30, a31, s, accumulate);
        FinishWide(step + (4L * d), a40, a41, s, accumulate);
        FinishWide(step + (5L * d), a50, a51, s, accumulate);
        FinishWide(step + (6L * d), a60, a61, s, accumulate);
        FinishWide(step + (7L * d), a70, a71, s, accumulate);
        FinishWide(step + (8L * d), a80, a81, s, accumulate);
        FinishWide(step + (9L * d), a90, a91, s, accumulate);
    }

    /// <summary>step[0..8) = sum * alpha (+ step[0..8) when accumulating).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Finish(float* step, Vector256<float> sum, Vector256<float> alpha, bool accumulate) =>
        Avx.Store(step, accumulate ? Fma.MultiplyAdd(sum, alpha, Avx.LoadVector256(step)) : Avx.Multiply(sum, alpha));

    /// <summary>step[0..32) = (sum0, sum1) * alpha (+ step[0..32) when accumulating).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void FinishWide(float* step, Vector512<float> sum0, Vector512<float> sum1, Vector512<float> alpha, bool accumulate)
    {
        if (accumulate)
        {
            Avx512F.FusedMultiplyAdd(sum0, alpha, Vector512.Load(step)).Store(step);
            Avx512F.FusedMultiplyAdd(sum1, alpha, Vector512.Load(step + 16)).Store(step + 16);
        }
        else
        {
            (sum0 * alpha).Store(step);
            (sum1 * alpha).Store(step + 16);
        }
    }
}
