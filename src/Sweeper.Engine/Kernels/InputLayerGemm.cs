using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sweeper.Engine.Data;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// A minibatch of float32 input rows (n x d) for <see cref="InputLayerGemm"/>, laid out so that neither of the input
/// layer's two matrix products has to copy it again (a general sgemm packs its operands on every call: for the
/// two-layer net on CIFAR-10 that is the 200 x 3072 batch twice per step, 14% of the step's cycles with OpenBLAS).
/// <list type="bullet">
/// <item><b>strips</b>, for the weight product: strip s holds columns 32s..32s+31 of every row, row after row (n x 32,
/// n rounded up to whole panels; columns past d and rows past n are zeros), so that vectors run along features and one
/// strip (25 KiB for 200 rows) is read from the L1 cache for every hidden unit. The rows are gathered straight into
/// them, 16 at a time, by the forward product;</item>
/// <item><b>panels</b>, for the forward product: panel p holds rows 16p..16p+15 feature by feature (d x 16; rows past
/// n are zeros), so that vectors run along 16 examples, transposed from the strips 16 x 16 floats at a time in
/// registers. Only two panels exist at a time: the forward product lays out a pair and uses it while it is in the L2
/// cache.</item>
/// </list>
/// <see cref="Gather"/> or <see cref="SetRows"/> names the rows; <see cref="InputLayerGemm.Forward"/> reads them.
/// Made once per batch size and reused. Not thread-safe.
/// </summary>
[SkipLocalsInit]
public sealed class InputBatch
{
    /// <summary>Examples per panel: the lanes of a 512-bit vector of floats.</summary>
    public const int PanelRows = 16;

    /// <summary>Features per strip: two 512-bit vectors.</summary>
    public const int StripColumns = 32;

    /// <summary>Two panels and the strips, 64-byte aligned so that no vector access splits a cache line.</summary>
    private readonly AlignedFloats _panels, _strips;

    private readonly int[] _indices;
    private IDataSplit<float>? _split;
    private Matrix<float>? _x;

    public InputBatch(int rows, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        Rows = rows;
        Dim = dim;
        PanelCount = (rows + PanelRows - 1) / PanelRows;
        StripCount = (dim + StripColumns - 1) / StripColumns;
        _panels = new AlignedFloats(checked(2 * dim * PanelRows));
        StripRows = PanelCount * PanelRows;
        _strips = new AlignedFloats(checked(StripCount * StripRows * StripColumns));
        _indices = new int[rows];
    }

    /// <summary>Examples (n).</summary>
    public int Rows { get; }

    /// <summary>Features per example (d).</summary>
    public int Dim { get; }

    public int PanelCount { get; }

    public int StripCount { get; }

    /// <summary>Rows per strip: <see cref="Rows"/> rounded up to whole panels (the rows past n stay zero).</summary>
    public int StripRows { get; }

    /// <summary>True once <see cref="InputLayerGemm.Forward"/> has laid out the strips of the current rows.</summary>
    public bool StripsReady { get; private set; }

    /// <summary>The two panels of the pair laid out last: slot q, feature k, lane l at ((q d) + k) 16 + l.</summary>
    internal Span<float> Panels => _panels.Span;

    /// <summary>strip s, row i, column c at ((s <see cref="StripRows"/>) + i) 32 + c: row i, column 32s + c.</summary>
    internal Span<float> Strips => _strips.Span;

    internal unsafe float* StripPointer => _strips.Pointer;

    /// <summary>The batch is examples <paramref name="indices"/> (exactly <see cref="Rows"/> of them) of <paramref name="split"/>, read 16 at a time by the forward product.</summary>
    public void Gather(IDataSplit<float> split, ReadOnlySpan<int> indices)
    {
        if (indices.Length != Rows || split.Dim != Dim)
        {
            throw new ArgumentException($"InputBatch.Gather: {indices.Length} indices of {split.Dim} features for a batch of {Rows} x {Dim}.");
        }

        indices.CopyTo(_indices);
        (_split, _x, StripsReady) = (split, null, false);
    }

    /// <summary>The batch is the rows of <paramref name="x"/> (<see cref="Rows"/> x <see cref="Dim"/>), read by the forward product.</summary>
    public void SetRows(Matrix<float> x)
    {
        if (x.Rows != Rows || x.Cols != Dim)
        {
            throw new ArgumentException($"InputBatch.SetRows: {x.Rows} x {x.Cols} rows for a batch of {Rows} x {Dim}.");
        }

        (_split, _x, StripsReady) = (null, x, false);
    }

    /// <summary>Asks the source for the rows of <paramref name="panels"/> panels from panel <paramref name="p"/> on (a hint: they are read soon).</summary>
    internal void PrefetchPanels(int p, int panels)
    {
        var first = Math.Min(p * PanelRows, Rows);
        var end = Math.Min((p + panels) * PanelRows, Rows);
        if (_split is not null && end > first)
        {
            _split.Prefetch(_indices.AsSpan(first, end - first));
        }
    }

    /// <summary>
    /// Reads panel p's rows from the source into the strips, then transposes them into panel slot
    /// <paramref name="slot"/>; returns the slot's address. The forward product calls it for every panel in order.
    /// </summary>
    internal unsafe float* LayOutPanel(int p, int slot)
    {
        int first = p * PanelRows, count = Math.Min(PanelRows, Rows - first), d = Dim, stripFloats = StripRows * StripColumns;
        var rows = _strips.Span[(first * StripColumns)..];
        if (_split is not null)
        {
            _split.Gather(_indices.AsSpan(first, count), rows, StripColumns, StripColumns, stripFloats);
        }
        else if (_x is not null)
        {
            for (var l = 0; l < count; l++)
            {
                var row = _x.Row(first + l);
                for (var k = 0; k < d; k += StripColumns)
                {
                    row.Slice(k, Math.Min(StripColumns, d - k)).CopyTo(rows[((l * StripColumns) + (k / StripColumns * stripFloats))..]);
                }
            }
        }
        else
        {
            throw new InvalidOperationException("InputBatch: no rows yet; call Gather or SetRows first.");
        }

        var panel = _panels.Pointer + ((long)slot * d * PanelRows);
        var strips = _strips.Pointer + ((long)first * StripColumns);
        var k0 = 0;
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
        {
            for (; k0 + PanelRows <= d; k0 += PanelRows)
            {
                LayOut16(strips + ((long)(k0 / StripColumns) * stripFloats) + (k0 % StripColumns), StripColumns, panel + ((long)k0 * PanelRows));
            }
        }

        for (var k = k0; k < d; k++)
        {
            var column = strips + ((long)(k / StripColumns) * stripFloats) + (k % StripColumns);
            for (var l = 0; l < PanelRows; l++)
            {
                panel[((long)k * PanelRows) + l] = column[l * StripColumns];
            }
        }

        if (p == PanelCount - 1)
        {
            StripsReady = true;
        }

        return panel;
    }

    /// <summary>
    /// A 16 x 16 block transposed: rows l of <paramref name="block"/> (<paramref name="stride"/> floats apart) become
    /// the columns of panel + 16 m. The transpose interleaves pairs of rows by floats, then by pairs of floats, then
    /// transposes the 128-bit lanes of four vectors in two steps; all in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void LayOut16(float* block, int stride, float* panel)
    {
        var r0 = Avx512F.LoadAlignedVector512(block + (0 * (nint)stride));
        var r1 = Avx512F.LoadAlignedVector512(block + (1 * (nint)stride));
        var r2 = Avx512F.LoadAlignedVector512(block + (2 * (nint)stride));
        var r3 = Avx512F.LoadAlignedVector512(block + (3 * (nint)stride));
        var r4 = Avx512F.LoadAlignedVector512(block + (4 * (nint)stride));
        var r5 = Avx512F.LoadAlignedVector512(block + (5 * (nint)stride));
        var r6 = Avx512F.LoadAlignedVector512(block + (6 * (nint)stride));
        var r7 = Avx512F.LoadAlignedVector512(block + (7 * (nint)stride));
        var r8 = Avx512F.LoadAlignedVector512(block + (8 * (nint)stride));
        var r9 = Avx512F.LoadAlignedVector512(block + (9 * (nint)stride));
        var r10 = Avx512F.LoadAlignedVector512(block + (10 * (nint)stride));
        var r11 = Avx512F.LoadAlignedVector512(block + (11 * (nint)stride));
        var r12 = Avx512F.LoadAlignedVector512(block + (12 * (nint)stride));
        var r13 = Avx512F.LoadAlignedVector512(block + (13 * (nint)stride));
        var r14 = Avx512F.LoadAlignedVector512(block + (14 * (nint)stride));
        var r15 = Avx512F.LoadAlignedVector512(block + (15 * (nint)stride));

        var s0 = Avx512F.UnpackLow(r0, r1).AsDouble();
        var s1 = Avx512F.UnpackHigh(r0, r1).AsDouble();
        var s2 = Avx512F.UnpackLow(r2, r3).AsDouble();
        var s3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
        var s4 = Avx512F.UnpackLow(r4, r5).AsDouble();
        var s5 = Avx512F.UnpackHigh(r4, r5).AsDouble();
        var s6 = Avx512F.UnpackLow(r6, r7).AsDouble();
        var s7 = Avx512F.UnpackHigh(r6, r7).AsDouble();
        var s8 = Avx512F.UnpackLow(r8, r9).AsDouble();
        var s9 = Avx512F.UnpackHigh(r8, r9).AsDouble();
        var s10 = Avx512F.UnpackLow(r10, r11).AsDouble();
        var s11 = Avx512F.UnpackHigh(r10, r11).AsDouble();
        var s12 = Avx512F.UnpackLow(r12, r13).AsDouble();
        var s13 = Avx512F.UnpackHigh(r12, r13).AsDouble();
        var s14 = Avx512F.UnpackLow(r14, r15).AsDouble();
        var s15 = Avx512F.UnpackHigh(r14, r15).AsDouble();

        // t[4q + c], 128-bit lane L: column 4L + c of rows 4q..4q+3.
        var t0 = Avx512F.UnpackLow(s0, s2).AsSingle();
        var t1 = Avx512F.UnpackHigh(s0, s2).AsSingle();
        var t2 = Avx512F.UnpackLow(s1, s3).AsSingle();
        var t3 = Avx512F.UnpackHigh(s1, s3).AsSingle();
        var t4 = Avx512F.UnpackLow(s4, s6).AsSingle();
        var t5 = Avx512F.UnpackHigh(s4, s6).AsSingle();
        var t6 = Avx512F.UnpackLow(s5, s7).AsSingle();
        var t7 = Avx512F.UnpackHigh(s5, s7).AsSingle();
        var t8 = Avx512F.UnpackLow(s8, s10).AsSingle();
        var t9 = Avx512F.UnpackHigh(s8, s10).AsSingle();
        var t10 = Avx512F.UnpackLow(s9, s11).AsSingle();
        var t11 = Avx512F.UnpackHigh(s9, s11).AsSingle();
        var t12 = Avx512F.UnpackLow(s12, s14).AsSingle();
        var t13 = Avx512F.UnpackHigh(s12, s14).AsSingle();
        var t14 = Avx512F.UnpackLow(s13, s15).AsSingle();
        var t15 = Avx512F.UnpackHigh(s13, s15).AsSingle();

        // Column 4L + c gathers lane L of t[c], t[4 + c], t[8 + c], t[12 + c].
        var u00 = Avx512F.Shuffle4x128(t0, t4, 0x44);
        var u01 = Avx512F.Shuffle4x128(t0, t4, 0xEE);
        var u02 = Avx512F.Shuffle4x128(t8, t12, 0x44);
        var u03 = Avx512F.Shuffle4x128(t8, t12, 0xEE);
        Avx512F.StoreAligned(panel + 0, Avx512F.Shuffle4x128(u00, u02, 0x88));
        Avx512F.StoreAligned(panel + 64, Avx512F.Shuffle4x128(u00, u02, 0xDD));
        Avx512F.StoreAligned(panel + 128, Avx512F.Shuffle4x128(u01, u03, 0x88));
        Avx512F.StoreAligned(panel + 192, Avx512F.Shuffle4x128(u01, u03, 0xDD));
        var u10 = Avx512F.Shuffle4x128(t1, t5, 0x44);
        var u11 = Avx512F.Shuffle4x128(t1, t5, 0xEE);
        var u12 = Avx512F.Shuffle4x128(t9, t13, 0x44);
        var u13 = Avx512F.Shuffle4x128(t9, t13, 0xEE);
        Avx512F.StoreAligned(panel + 16, Avx512F.Shuffle4x128(u10, u12, 0x88));
        Avx512F.StoreAligned(panel + 80, Avx512F.Shuffle4x128(u10, u12, 0xDD));
        Avx512F.StoreAligned(panel + 144, Avx512F.Shuffle4x128(u11, u13, 0x88));
        Avx512F.StoreAligned(panel + 208, Avx512F.Shuffle4x128(u11, u13, 0xDD));
        var u20 = Avx512F.Shuffle4x128(t2, t6, 0x44);
        var u21 = Avx512F.Shuffle4x128(t2, t6, 0xEE);
        var u22 = Avx512F.Shuffle4x128(t10, t14, 0x44);
        var u23 = Avx512F.Shuffle4x128(t10, t14, 0xEE);
        Avx512F.StoreAligned(panel + 32, Avx512F.Shuffle4x128(u20, u22, 0x88));
        Avx512F.StoreAligned(panel + 96, Avx512F.Shuffle4x128(u20, u22, 0xDD));
        Avx512F.StoreAligned(panel + 160, Avx512F.Shuffle4x128(u21, u23, 0x88));
        Avx512F.StoreAligned(panel + 224, Avx512F.Shuffle4x128(u21, u23, 0xDD));
        var u30 = Avx512F.Shuffle4x128(t3, t7, 0x44);
        var u31 = Avx512F.Shuffle4x128(t3, t7, 0xEE);
        var u32 = Avx512F.Shuffle4x128(t11, t15, 0x44);
        var u33 = Avx512F.Shuffle4x128(t11, t15, 0xEE);
        Avx512F.StoreAligned(panel + 48, Avx512F.Shuffle4x128(u30, u32, 0x88));
        Avx512F.StoreAligned(panel + 112, Avx512F.Shuffle4x128(u30, u32, 0xDD));
        Avx512F.StoreAligned(panel + 176, Avx512F.Shuffle4x128(u31, u33, 0x88));
        Avx512F.StoreAligned(panel + 240, Avx512F.Shuffle4x128(u31, u33, 0xDD));
    }
}

/// <summary>
/// The input layer's two matrix products on AVX-512, from a batch laid out by <see cref="InputBatch"/>:
/// z = x w^T + b (<see cref="Forward"/>) and dst = alpha src + beta dz^T x (<see cref="WeightStep"/>: the fused SGD
/// step w = (1 - lr reg) w - lr dz^T x, or the gradient reg w + dz^T x), with w (h x d) row-major as the model keeps
/// it. A general sgemm copies ("packs") both operands of every call into its own layout; here the batch is laid out
/// as it is gathered (by <see cref="Forward"/>) and the weights are read where they are (each weight broadcast to 16 lanes straight from
/// its row), so only the products remain. Each kernel keeps a tile of 20 sums in registers (10 hidden units by 32
/// examples, or by 32 features) and adds along k (or along the examples) in order, one fused multiply-add per term:
/// the same sums in every run (deterministic), and within float rounding of any other order.
/// Used where <see cref="Supported"/>; the model uses <see cref="Blas"/> elsewhere. Tested against double-precision loops.
/// </summary>
[SkipLocalsInit]
public static class InputLayerGemm
{
    /// <summary>Hidden units per tile.</summary>
    public const int TileUnits = 10;

    /// <summary>
    /// The largest weight matrix (h x d floats) the kernels take on this machine: the forward product reads all of w for
    /// every pair of panels, from the L2 cache where it fits, else from the L3. Measured on an Intel Xeon (2 MiB L2): at
    /// h = 100 (1.2 MiB of weights) a training step of the two-layer net is about 5% faster on the kernels than on
    /// OpenBLAS; at h = 500 (6 MiB) OpenBLAS's cache-blocked products are 5% faster: 1.5 MiB there. On an AMD EPYC Zen 4
    /// (1 MiB L2, but 32 MiB of L3 shared by 8 cores at most, close to each), the kernels are faster at h = 500 too:
    /// 70.8-74.0 against 66.3-71.5 steps/s, three runs each alternating (0.93-0.96 of the sgemm rate measured alongside,
    /// against 0.88-0.89): 8 MiB on AMD processors.
    /// </summary>
    public static readonly long MaxWeightBytes = CpuInfo.Current.IsAmd ? 8L << 20 : 3L << 19;

    /// <summary>
    /// True when this machine runs the kernels (fast 512-bit vectors), <paramref name="units"/> is a multiple of
    /// <see cref="TileUnits"/> and the weights (units x <paramref name="dim"/>) fit in <see cref="MaxWeightBytes"/>.
    /// </summary>
    public static bool Supported(int units, int dim) =>
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported && units > 0 && units % TileUnits == 0 && (long)units * dim * sizeof(float) <= MaxWeightBytes;

    /// <summary>
    /// z (n x h) = x w^T + b, with w h x d and b h, x the rows named in <paramref name="x"/>: read from their source two
    /// panels at a time, laid out (the strips too, for <see cref="WeightStep"/>) and multiplied while in cache.
    /// </summary>
    public static unsafe void Forward(InputBatch x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> z)
    {
        var (n, d, h) = (x.Rows, x.Dim, b.Length);
        CheckSupported(h, d);
        if (w.Length != h * d || z.Length != n * h)
        {
            throw new ArgumentException($"InputLayerGemm.Forward shapes disagree: x {n} x {d}, w {w.Length} (expected {h} x {d}), b {h}, z {z.Length}.");
        }

        fixed (float* pw = w, pb = b, pz = z)
        {
            var p = 0;
            for (; p + 2 <= x.PanelCount; p += 2)
            {
                var first = x.LayOutPanel(p, 0);
                var second = x.LayOutPanel(p + 1, 1);
                x.PrefetchPanels(p + 2, 2); // the next pair's rows come in while this pair is multiplied
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    ForwardTile2(first, second, p * InputBatch.PanelRows, n, pw, d, pb, j0, pz, h);
                }
            }

            if (p < x.PanelCount)
            {
                var last = x.LayOutPanel(p, 0);
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    ForwardTile1(last, p * InputBatch.PanelRows, n, pw, d, pb, j0, pz, h);
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
        CheckSupported(h, d);
        if (!x.StripsReady)
        {
            throw new InvalidOperationException("InputLayerGemm.WeightStep: the batch's strips are laid out by Forward; run it first.");
        }

        if (dz.Length != n * h || src.Length != h * d || dst.Length != h * d)
        {
            throw new ArgumentException($"InputLayerGemm.WeightStep shapes disagree: x {n} x {d}, dz {dz.Length}, src {src.Length}, dst {dst.Length}.");
        }

        var strips = x.StripPointer;
        fixed (float* pdz = dz, ps = src, pd = dst)
        {
            var stripFloats = (long)x.StripRows * InputBatch.StripColumns;
            for (var s = 0; s < x.StripCount; s++)
            {
                var strip = strips + (s * stripFloats);
                var c0 = s * InputBatch.StripColumns;
                for (var j0 = 0; j0 < h; j0 += TileUnits)
                {
                    if (s + 1 < x.StripCount)
                    {
                        // The lines of src the same tile of the next strip reads (its rows are d floats apart: no
                        // hardware prefetcher follows them).
                        for (var t = 0; t < TileUnits; t++)
                        {
                            var row = ((long)(j0 + t) * d) + c0 + InputBatch.StripColumns;
                            Sse.Prefetch0(ps + row);
                            Sse.Prefetch0(ps + row + 16);
                        }
                    }

                    WeightTile(strip, n, pdz, h, j0, ps, pd, d, c0, alpha, beta);
                }
            }
        }
    }

    private static void CheckSupported(int units, int dim)
    {
        if (!Supported(units, dim))
        {
            throw new NotSupportedException($"InputLayerGemm needs fast AVX-512, a multiple of {TileUnits} hidden units and at most {MaxWeightBytes} bytes of weights (got {units} x {dim}); use Blas.Gemm.");
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

/// <summary>A float buffer whose first element is 64-byte aligned (a cache line), on the pinned object heap so that its address never changes.</summary>
internal sealed unsafe class AlignedFloats
{
    private readonly float[] _array;
    private readonly int _offset;

    public AlignedFloats(int length)
    {
        _array = GC.AllocateArray<float>(length + 16, pinned: true);
        var address = (nint)Unsafe.AsPointer(ref _array[0]);
        _offset = (int)((64 - (address & 63)) & 63) / sizeof(float);
        Length = length;
    }

    public int Length { get; }

    public float* Pointer => (float*)Unsafe.AsPointer(ref _array[_offset]);

    public Span<float> Span => _array.AsSpan(_offset, Length);
}
