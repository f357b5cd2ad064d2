using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sweeper.Engine.Data;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// A minibatch of float32 input rows (n x d) laid out twice for <see cref="InputLayerGemm"/>, so that neither of the
/// input layer's two matrix products has to copy it again (a general sgemm packs its operands on every call: for the
/// two-layer net on CIFAR-10 that is the 200 x 3072 batch twice per step, 14% of the step's cycles with OpenBLAS).
/// <list type="bullet">
/// <item><b>panels</b>: panel p holds rows 16p..16p+15 feature by feature (d x 16; rows past n are zeros), so that
/// the forward product's vectors run along 16 examples;</item>
/// <item><b>strips</b>: strip s holds columns 32s..32s+31 of every row, row after row (n x 32; columns past d are
/// zeros), so that the weight product's vectors run along features, and one strip (25 KiB for 200 rows) is read
/// from the L1 cache for every hidden unit.</item>
/// </list>
/// Made once per batch size and reused. Not thread-safe.
/// </summary>
public sealed class InputBatch
{
    /// <summary>Examples per panel: the lanes of a 512-bit vector of floats.</summary>
    public const int PanelRows = 16;

    /// <summary>Features per strip: two 512-bit vectors.</summary>
    public const int StripColumns = 32;

    /// <summary>One panel of gathered rows, row-major; rows past the batch's end stay zero.</summary>
    private readonly Matrix<float> _block;

    public InputBatch(int rows, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        Rows = rows;
        Dim = dim;
        PanelCount = (rows + PanelRows - 1) / PanelRows;
        StripCount = (dim + StripColumns - 1) / StripColumns;
        Panels = new float[checked(PanelCount * dim * PanelRows)];
        Strips = new float[checked(StripCount * rows * StripColumns)];
        _block = new Matrix<float>(PanelRows, dim);
    }

    /// <summary>Examples (n).</summary>
    public int Rows { get; }

    /// <summary>Features per example (d).</summary>
    public int Dim { get; }

    public int PanelCount { get; }

    public int StripCount { get; }

    /// <summary>panel p, feature k, lane l at ((p d) + k) 16 + l: row 16p + l, column k.</summary>
    internal float[] Panels { get; }

    /// <summary>strip s, row i, column c at ((s n) + i) 32 + c: row i, column 32s + c.</summary>
    internal float[] Strips { get; }

    /// <summary>Copies examples <paramref name="indices"/> (exactly <see cref="Rows"/> of them) of <paramref name="split"/> in, 16 at a time.</summary>
    public void Gather(IDataSplit<float> split, ReadOnlySpan<int> indices)
    {
        if (indices.Length != Rows || split.Dim != Dim)
        {
            throw new ArgumentException($"InputBatch.Gather: {indices.Length} indices of {split.Dim} features for a batch of {Rows} x {Dim}.");
        }

        for (var p = 0; p < PanelCount; p++)
        {
            var first = p * PanelRows;
            var count = Math.Min(PanelRows, Rows - first);
            split.Gather(indices.Slice(first, count), _block);
            LayOut(p, count);
        }
    }

    /// <summary>Copies the rows of <paramref name="x"/> (<see cref="Rows"/> x <see cref="Dim"/>) in.</summary>
    public void SetRows(Matrix<float> x)
    {
        if (x.Rows != Rows || x.Cols != Dim)
        {
            throw new ArgumentException($"InputBatch.SetRows: {x.Rows} x {x.Cols} rows for a batch of {Rows} x {Dim}.");
        }

        for (var p = 0; p < PanelCount; p++)
        {
            var first = p * PanelRows;
            var count = Math.Min(PanelRows, Rows - first);
            x.Data.AsSpan(first * Dim, count * Dim).CopyTo(_block.Span);
            LayOut(p, count);
        }
    }

    /// <summary>Writes the first <paramref name="count"/> rows of the block as panel p and into the strips; the block's other rows are cleared first.</summary>
    private unsafe void LayOut(int p, int count)
    {
        int d = Dim, n = Rows, first = p * PanelRows;
        _block.Span[(count * d)..].Clear();
        fixed (float* block = _block.Data, panels = Panels, strips = Strips)
        {
            var panel = panels + ((long)p * d * PanelRows);
            var k0 = 0;
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
            {
                var rows = stackalloc Vector512<float>[PanelRows];
                for (; k0 + PanelRows <= d; k0 += PanelRows)
                {
                    var strip = strips + (((((long)(k0 / StripColumns) * n) + first) * StripColumns) + (k0 % StripColumns));
                    for (var l = 0; l < PanelRows; l++)
                    {
                        rows[l] = Avx512F.LoadVector512(block + ((long)l * d) + k0);
                        if (l < count)
                        {
                            Avx512F.Store(strip + (l * StripColumns), rows[l]);
                        }
                    }

                    Transpose16(rows);
                    for (var m = 0; m < PanelRows; m++)
                    {
                        Avx512F.Store(panel + ((long)(k0 + m) * PanelRows), rows[m]);
                    }
                }
            }

            for (var k = k0; k < d; k++)
            {
                var strip = strips + (((((long)(k / StripColumns) * n) + first) * StripColumns) + (k % StripColumns));
                for (var l = 0; l < PanelRows; l++)
                {
                    var value = block[((long)l * d) + k];
                    panel[((long)k * PanelRows) + l] = value;
                    if (l < count)
                    {
                        strip[l * StripColumns] = value;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Transposes 16 vectors of 16 floats in place (rows[l][m] becomes rows[m][l]): pairs of rows interleaved by
    /// floats, then by pairs of floats, then the 128-bit lanes of four vectors transposed in two steps.
    /// </summary>
    internal static unsafe void Transpose16(Vector512<float>* rows)
    {
        var s = stackalloc Vector512<float>[PanelRows];
        for (var j = 0; j < PanelRows; j += 2)
        {
            s[j] = Avx512F.UnpackLow(rows[j], rows[j + 1]);
            s[j + 1] = Avx512F.UnpackHigh(rows[j], rows[j + 1]);
        }

        // t[4q + c], 128-bit lane L: column 4L + c of rows 4q..4q+3.
        var t = stackalloc Vector512<float>[PanelRows];
        for (var q = 0; q < PanelRows; q += 4)
        {
            t[q] = Avx512F.UnpackLow(s[q].AsDouble(), s[q + 2].AsDouble()).AsSingle();
            t[q + 1] = Avx512F.UnpackHigh(s[q].AsDouble(), s[q + 2].AsDouble()).AsSingle();
            t[q + 2] = Avx512F.UnpackLow(s[q + 1].AsDouble(), s[q + 3].AsDouble()).AsSingle();
            t[q + 3] = Avx512F.UnpackHigh(s[q + 1].AsDouble(), s[q + 3].AsDouble()).AsSingle();
        }

        // Column 4L + c gathers lane L of t[c], t[4 + c], t[8 + c], t[12 + c].
        for (var c = 0; c < 4; c++)
        {
            var u0 = Avx512F.Shuffle4x128(t[c], t[4 + c], 0x44);
            var u1 = Avx512F.Shuffle4x128(t[c], t[4 + c], 0xEE);
            var u2 = Avx512F.Shuffle4x128(t[8 + c], t[12 + c], 0x44);
            var u3 = Avx512F.Shuffle4x128(t[8 + c], t[12 + c], 0xEE);
            rows[c] = Avx512F.Shuffle4x128(u0, u2, 0x88);
            rows[4 + c] = Avx512F.Shuffle4x128(u0, u2, 0xDD);
            rows[8 + c] = Avx512F.Shuffle4x128(u1, u3, 0x88);
            rows[12 + c] = Avx512F.Shuffle4x128(u1, u3, 0xDD);
        }
    }
}

/// <summary>
/// The input layer's two matrix products on AVX-512, from a batch laid out by <see cref="InputBatch"/>:
/// z = x w^T + b (<see cref="Forward"/>) and dst = alpha src + beta dz^T x (<see cref="WeightStep"/>: the fused SGD
/// step w = (1 - lr reg) w - lr dz^T x, or the gradient reg w + dz^T x), with w (h x d) row-major as the model keeps
/// it. A general sgemm copies ("packs") both operands of every call into its own layout; here the batch is laid out
/// once when it is gathered and the weights are read where they are (each weight broadcast to 16 lanes straight from
/// its row), so only the products remain. Each kernel keeps a tile of 20 sums in registers (10 hidden units by 32
/// examples, or by 32 features) and adds along k (or along the examples) in order, one fused multiply-add per term:
/// the same sums in every run (deterministic), and within float rounding of any other order.
/// Used where <see cref="Supported"/>; the model uses <see cref="Blas"/> elsewhere. Tested against double-precision loops.
/// </summary>
public static class InputLayerGemm
{
    /// <summary>Hidden units per tile.</summary>
    public const int TileUnits = 10;

    /// <summary>True when this machine runs the kernels (fast 512-bit vectors) and <paramref name="units"/> is a multiple of <see cref="TileUnits"/>.</summary>
    public static bool Supported(int units) => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && units > 0 && units % TileUnits == 0;

    /// <summary>z (n x h) = x w^T + b, with w h x d and b h, x laid out in <paramref name="x"/>.</summary>
    public static unsafe void Forward(InputBatch x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> z)
    {
        var (n, d, h) = (x.Rows, x.Dim, b.Length);
        CheckSupported(h);
        if (w.Length != h * d || z.Length != n * h)
        {
            throw new ArgumentException($"InputLayerGemm.Forward shapes disagree: x {n} x {d}, w {w.Length} (expected {h} x {d}), b {h}, z {z.Length}.");
        }

        fixed (float* panels = x.Panels, pw = w, pb = b, pz = z)
        {
            var panelFloats = (long)d * InputBatch.PanelRows;
            var p = 0;
            for (; p + 2 <= x.PanelCount; p += 2)
            {
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    ForwardTile2(panels + (p * panelFloats), panels + ((p + 1) * panelFloats), p * InputBatch.PanelRows, n, pw, d, pb, j0, pz, h);
                }
            }

            if (p < x.PanelCount)
            {
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    ForwardTile1(panels + (p * panelFloats), p * InputBatch.PanelRows, n, pw, d, pb, j0, pz, h);
                }
            }
        }
    }

    /// <summary>
    /// dst (h x d) = alpha src + beta dz^T x, with dz n x h (the gradient of the layer's output z) and src h x d;
    /// <paramref name="src"/> may be <paramref name="dst"/> (an update in place).
    /// </summary>
    public static unsafe void WeightStep(InputBatch x, ReadOnlySpan<float> dz, ReadOnlySpan<float> src, float alpha, float beta, Span<float> dst)
    {
        var (n, d) = (x.Rows, x.Dim);
        var h = dz.Length / n;
        CheckSupported(h);
        if (dz.Length != n * h || src.Length != h * d || dst.Length != h * d)
        {
            throw new ArgumentException($"InputLayerGemm.WeightStep shapes disagree: x {n} x {d}, dz {dz.Length}, src {src.Length}, dst {dst.Length}.");
        }

        fixed (float* strips = x.Strips, pdz = dz, ps = src, pd = dst)
        {
            for (var s = 0; s < x.StripCount; s++)
            {
                var strip = strips + ((long)s * n * InputBatch.StripColumns);
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    WeightTile(strip, n, pdz, h, j0, ps, pd, d, s * InputBatch.StripColumns, alpha, beta);
                }
            }
        }
    }

    private static void CheckSupported(int units)
    {
        if (!Supported(units))
        {
            throw new NotSupportedException($"InputLayerGemm needs fast AVX-512 and a multiple of {TileUnits} hidden units (got {units}); use Blas.Gemm.");
        }
    }

    /// <summary>Writes a forward tile's sums (panel by unit by lane) plus the bias into z, for the rows below n.</summary>
    private static unsafe void StoreTile(float* sums, int panels, int firstRow, int n, float* b, int j0, float* z, int h)
    {
        for (var p = 0; p < panels; p++)
        {
            for (var l = 0; l < InputBatch.PanelRows; l++)
            {
                var row = firstRow + (p * InputBatch.PanelRows) + l;
                if (row >= n)
                {
                    return;
                }

                var zr = z + ((long)row * h) + j0;
                for (var t = 0; t < TileUnits; t++)
                {
                    zr[t] = sums[(((p * TileUnits) + t) * InputBatch.PanelRows) + l] + b[j0 + t];
                }
            }
        }
    }

    /// <summary>Writes a weight tile's sums (unit by 32 columns) as dst = alpha src + beta sums, for the columns below d.</summary>
    private static unsafe void StoreWeightTile(float* sums, int j0, float* src, float* dst, int d, int c0, float alpha, float beta)
    {
        var columns = Math.Min(InputBatch.StripColumns, d - c0);
        var (va, vb) = (Vector512.Create(alpha), Vector512.Create(beta));
        for (var t = 0; t < TileUnits; t++)
        {
            var offset = ((long)(j0 + t) * d) + c0;
            var s = src + offset;
            var o = dst + offset;
            var a = sums + (t * InputBatch.StripColumns);
            if (columns == InputBatch.StripColumns)
            {
                Avx512F.Store(o, Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(a), vb, Avx512F.LoadVector512(s) * va));
                Avx512F.Store(o + 16, Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(a + 16), vb, Avx512F.LoadVector512(s + 16) * va));
                continue;
            }

            for (var c = 0; c < columns; c++)
            {
                o[c] = MathF.FusedMultiplyAdd(a[c], beta, s[c] * alpha);
            }
        }
    }

    /// <summary>z rows of panels x0, x1 (16 examples each), hidden units j0..j0+9: the sums over k of x[i, k] w[j, k], plus b, for rows below n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ForwardTile2(float* x0, float* x1, int firstRow, int n, float* w, int d, float* b, int j0, float* z, int h)
    {
        var a00 = Vector512<float>.Zero;
        var a01 = Vector512<float>.Zero;
        var a02 = Vector512<float>.Zero;
        var a03 = Vector512<float>.Zero;
        var a04 = Vector512<float>.Zero;
        var a05 = Vector512<float>.Zero;
        var a06 = Vector512<float>.Zero;
        var a07 = Vector512<float>.Zero;
        var a08 = Vector512<float>.Zero;
        var a09 = Vector512<float>.Zero;
        var a10 = Vector512<float>.Zero;
        var a11 = Vector512<float>.Zero;
        var a12 = Vector512<float>.Zero;
        var a13 = Vector512<float>.Zero;
        var a14 = Vector512<float>.Zero;
        var a15 = Vector512<float>.Zero;
        var a16 = Vector512<float>.Zero;
        var a17 = Vector512<float>.Zero;
        var a18 = Vector512<float>.Zero;
        var a19 = Vector512<float>.Zero;
        var w0 = w + (((nint)j0 + 0) * d);
        var w1 = w + (((nint)j0 + 1) * d);
        var w2 = w + (((nint)j0 + 2) * d);
        var w3 = w + (((nint)j0 + 3) * d);
        var w4 = w + (((nint)j0 + 4) * d);
        var w5 = w + (((nint)j0 + 5) * d);
        var w6 = w + (((nint)j0 + 6) * d);
        var w7 = w + (((nint)j0 + 7) * d);
        var w8 = w + (((nint)j0 + 8) * d);
        var w9 = w + (((nint)j0 + 9) * d);
        for (nint k = 0; k < d; k++)
        {
            var v0 = Avx512F.LoadVector512(x0);
            x0 += 16;
            var v1 = Avx512F.LoadVector512(x1);
            x1 += 16;
            var b0 = Vector512.Create(w0[k]);
            a00 = Avx512F.FusedMultiplyAdd(v0, b0, a00);
            a10 = Avx512F.FusedMultiplyAdd(v1, b0, a10);
            var b1 = Vector512.Create(w1[k]);
            a01 = Avx512F.FusedMultiplyAdd(v0, b1, a01);
            a11 = Avx512F.FusedMultiplyAdd(v1, b1, a11);
            var b2 = Vector512.Create(w2[k]);
            a02 = Avx512F.FusedMultiplyAdd(v0, b2, a02);
            a12 = Avx512F.FusedMultiplyAdd(v1, b2, a12);
            var b3 = Vector512.Create(w3[k]);
            a03 = Avx512F.FusedMultiplyAdd(v0, b3, a03);
            a13 = Avx512F.FusedMultiplyAdd(v1, b3, a13);
            var b4 = Vector512.Create(w4[k]);
            a04 = Avx512F.FusedMultiplyAdd(v0, b4, a04);
            a14 = Avx512F.FusedMultiplyAdd(v1, b4, a14);
            var b5 = Vector512.Create(w5[k]);
            a05 = Avx512F.FusedMultiplyAdd(v0, b5, a05);
            a15 = Avx512F.FusedMultiplyAdd(v1, b5, a15);
            var b6 = Vector512.Create(w6[k]);
            a06 = Avx512F.FusedMultiplyAdd(v0, b6, a06);
            a16 = Avx512F.FusedMultiplyAdd(v1, b6, a16);
            var b7 = Vector512.Create(w7[k]);
            a07 = Avx512F.FusedMultiplyAdd(v0, b7, a07);
            a17 = Avx512F.FusedMultiplyAdd(v1, b7, a17);
            var b8 = Vector512.Create(w8[k]);
            a08 = Avx512F.FusedMultiplyAdd(v0, b8, a08);
            a18 = Avx512F.FusedMultiplyAdd(v1, b8, a18);
            var b9 = Vector512.Create(w9[k]);
            a09 = Avx512F.FusedMultiplyAdd(v0, b9, a09);
            a19 = Avx512F.FusedMultiplyAdd(v1, b9, a19);
        }

        var sums = stackalloc float[320];
        Avx512F.Store(sums + 0, a00);
        Avx512F.Store(sums + 16, a01);
        Avx512F.Store(sums + 32, a02);
        Avx512F.Store(sums + 48, a03);
        Avx512F.Store(sums + 64, a04);
        Avx512F.Store(sums + 80, a05);
        Avx512F.Store(sums + 96, a06);
        Avx512F.Store(sums + 112, a07);
        Avx512F.Store(sums + 128, a08);
        Avx512F.Store(sums + 144, a09);
        Avx512F.Store(sums + 160, a10);
        Avx512F.Store(sums + 176, a11);
        Avx512F.Store(sums + 192, a12);
        Avx512F.Store(sums + 208, a13);
        Avx512F.Store(sums + 224, a14);
        Avx512F.Store(sums + 240, a15);
        Avx512F.Store(sums + 256, a16);
        Avx512F.Store(sums + 272, a17);
        Avx512F.Store(sums + 288, a18);
        Avx512F.Store(sums + 304, a19);

        StoreTile(sums, 2, firstRow, n, b, j0, z, h);
    }

    /// <summary>z rows of panel x0 (16 examples each), hidden units j0..j0+9: the sums over k of x[i, k] w[j, k], plus b, for rows below n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ForwardTile1(float* x0, int firstRow, int n, float* w, int d, float* b, int j0, float* z, int h)
    {
        var a00 = Vector512<float>.Zero;
        var a01 = Vector512<float>.Zero;
        var a02 = Vector512<float>.Zero;
        var a03 = Vector512<float>.Zero;
        var a04 = Vector512<float>.Zero;
        var a05 = Vector512<float>.Zero;
        var a06 = Vector512<float>.Zero;
        var a07 = Vector512<float>.Zero;
        var a08 = Vector512<float>.Zero;
        var a09 = Vector512<float>.Zero;
        var w0 = w + (((nint)j0 + 0) * d);
        var w1 = w + (((nint)j0 + 1) * d);
        var w2 = w + (((nint)j0 + 2) * d);
        var w3 = w + (((nint)j0 + 3) * d);
        var w4 = w + (((nint)j0 + 4) * d);
        var w5 = w + (((nint)j0 + 5) * d);
        var w6 = w + (((nint)j0 + 6) * d);
        var w7 = w + (((nint)j0 + 7) * d);
        var w8 = w + (((nint)j0 + 8) * d);
        var w9 = w + (((nint)j0 + 9) * d);
        for (nint k = 0; k < d; k++)
        {
            var v0 = Avx512F.LoadVector512(x0);
            x0 += 16;
            var b0 = Vector512.Create(w0[k]);
            a00 = Avx512F.FusedMultiplyAdd(v0, b0, a00);
            var b1 = Vector512.Create(w1[k]);
            a01 = Avx512F.FusedMultiplyAdd(v0, b1, a01);
            var b2 = Vector512.Create(w2[k]);
            a02 = Avx512F.FusedMultiplyAdd(v0, b2, a02);
            var b3 = Vector512.Create(w3[k]);
            a03 = Avx512F.FusedMultiplyAdd(v0, b3, a03);
            var b4 = Vector512.Create(w4[k]);
            a04 = Avx512F.FusedMultiplyAdd(v0, b4, a04);
            var b5 = Vector512.Create(w5[k]);
            a05 = Avx512F.FusedMultiplyAdd(v0, b5, a05);
            var b6 = Vector512.Create(w6[k]);
            a06 = Avx512F.FusedMultiplyAdd(v0, b6, a06);
            var b7 = Vector512.Create(w7[k]);
            a07 = Avx512F.FusedMultiplyAdd(v0, b7, a07);
            var b8 = Vector512.Create(w8[k]);
            a08 = Avx512F.FusedMultiplyAdd(v0, b8, a08);
            var b9 = Vector512.Create(w9[k]);
            a09 = Avx512F.FusedMultiplyAdd(v0, b9, a09);
        }

        var sums = stackalloc float[160];
        Avx512F.Store(sums + 0, a00);
        Avx512F.Store(sums + 16, a01);
        Avx512F.Store(sums + 32, a02);
        Avx512F.Store(sums + 48, a03);
        Avx512F.Store(sums + 64, a04);
        Avx512F.Store(sums + 80, a05);
        Avx512F.Store(sums + 96, a06);
        Avx512F.Store(sums + 112, a07);
        Avx512F.Store(sums + 128, a08);
        Avx512F.Store(sums + 144, a09);

        StoreTile(sums, 1, firstRow, n, b, j0, z, h);
    }

    /// <summary>
    /// dst[j, c0 + c] = alpha src[j, c0 + c] + beta sum over i of dz[i, j] strip[i, c], for hidden units j0..j0+9 and the
    /// strip's 32 columns c (those below d - c0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WeightTile(float* strip, int n, float* dz, int h, int j0, float* src, float* dst, int d, int c0, float alpha, float beta)
    {
        var a00 = Vector512<float>.Zero;
        var a10 = Vector512<float>.Zero;
        var a01 = Vector512<float>.Zero;
        var a11 = Vector512<float>.Zero;
        var a02 = Vector512<float>.Zero;
        var a12 = Vector512<float>.Zero;
        var a03 = Vector512<float>.Zero;
        var a13 = Vector512<float>.Zero;
        var a04 = Vector512<float>.Zero;
        var a14 = Vector512<float>.Zero;
        var a05 = Vector512<float>.Zero;
        var a15 = Vector512<float>.Zero;
        var a06 = Vector512<float>.Zero;
        var a16 = Vector512<float>.Zero;
        var a07 = Vector512<float>.Zero;
        var a17 = Vector512<float>.Zero;
        var a08 = Vector512<float>.Zero;
        var a18 = Vector512<float>.Zero;
        var a09 = Vector512<float>.Zero;
        var a19 = Vector512<float>.Zero;
        var g = dz + j0;
        for (nint i = 0; i < n; i++)
        {
            var v0 = Avx512F.LoadVector512(strip);
            var v1 = Avx512F.LoadVector512(strip + 16);
            strip += 32;
            var b0 = Vector512.Create(g[0]);
            a00 = Avx512F.FusedMultiplyAdd(v0, b0, a00);
            a10 = Avx512F.FusedMultiplyAdd(v1, b0, a10);
            var b1 = Vector512.Create(g[1]);
            a01 = Avx512F.FusedMultiplyAdd(v0, b1, a01);
            a11 = Avx512F.FusedMultiplyAdd(v1, b1, a11);
            var b2 = Vector512.Create(g[2]);
            a02 = Avx512F.FusedMultiplyAdd(v0, b2, a02);
            a12 = Avx512F.FusedMultiplyAdd(v1, b2, a12);
            var b3 = Vector512.Create(g[3]);
            a03 = Avx512F.FusedMultiplyAdd(v0, b3, a03);
            a13 = Avx512F.FusedMultiplyAdd(v1, b3, a13);
            var b4 = Vector512.Create(g[4]);
            a04 = Avx512F.FusedMultiplyAdd(v0, b4, a04);
            a14 = Avx512F.FusedMultiplyAdd(v1, b4, a14);
            var b5 = Vector512.Create(g[5]);
            a05 = Avx512F.FusedMultiplyAdd(v0, b5, a05);
            a15 = Avx512F.FusedMultiplyAdd(v1, b5, a15);
            var b6 = Vector512.Create(g[6]);
            a06 = Avx512F.FusedMultiplyAdd(v0, b6, a06);
            a16 = Avx512F.FusedMultiplyAdd(v1, b6, a16);
            var b7 = Vector512.Create(g[7]);
            a07 = Avx512F.FusedMultiplyAdd(v0, b7, a07);
            a17 = Avx512F.FusedMultiplyAdd(v1, b7, a17);
            var b8 = Vector512.Create(g[8]);
            a08 = Avx512F.FusedMultiplyAdd(v0, b8, a08);
            a18 = Avx512F.FusedMultiplyAdd(v1, b8, a18);
            var b9 = Vector512.Create(g[9]);
            a09 = Avx512F.FusedMultiplyAdd(v0, b9, a09);
            a19 = Avx512F.FusedMultiplyAdd(v1, b9, a19);
            g += h;
        }

        var sums = stackalloc float[320];
        Avx512F.Store(sums + 0, a00);
        Avx512F.Store(sums + 16, a10);
        Avx512F.Store(sums + 32, a01);
        Avx512F.Store(sums + 48, a11);
        Avx512F.Store(sums + 64, a02);
        Avx512F.Store(sums + 80, a12);
        Avx512F.Store(sums + 96, a03);
        Avx512F.Store(sums + 112, a13);
        Avx512F.Store(sums + 128, a04);
        Avx512F.Store(sums + 144, a14);
        Avx512F.Store(sums + 160, a05);
        Avx512F.Store(sums + 176, a15);
        Avx512F.Store(sums + 192, a06);
        Avx512F.Store(sums + 208, a16);
        Avx512F.Store(sums + 224, a07);
        Avx512F.Store(sums + 240, a17);
        Avx512F.Store(sums + 256, a08);
        Avx512F.Store(sums + 272, a18);
        Avx512F.Store(sums + 288, a09);
        Avx512F.Store(sums + 304, a19);

        StoreWeightTile(sums, j0, src, dst, d, c0, alpha, beta);
    }
}
