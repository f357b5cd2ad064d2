using System.Numerics;
using System.Numerics.Tensors;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Layers;

/// <summary>What <see cref="Affine.Forward{T}"/> keeps for the backward pass.</summary>
public sealed record AffineCache<T>(Matrix<T> X, Matrix<T> W, T[] B)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>Gradients of an affine layer: <c>Dx</c> has the shape of x, <c>Dw</c> of w, <c>Db</c> of b.</summary>
public sealed record AffineGradients<T>(Matrix<T> Dx, Matrix<T> Dw, T[] Db)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// Fully connected layer: out = x w + b.
/// Shapes: x (N, d1, ..., dk) flattened per example to N x D; w D x M; b M; out N x M.
/// </summary>
public static class Affine
{
    public static (Matrix<T> Out, AffineCache<T> Cache) Forward<T>(Matrix<T> x, Matrix<T> w, T[] b)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var output = new Matrix<T>(x.Rows, w.Cols);
        ForwardInto(x, w.Data, b, output);
        return (output, new AffineCache<T>(x, w, b));
    }

    public static AffineGradients<T> Backward<T>(Matrix<T> dout, AffineCache<T> cache)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dx = cache.X.ZerosLike();
        var dw = cache.W.ZerosLike();
        var db = new T[cache.B.Length];
        BackwardInto(dout, cache.X, cache.W.Data, dx, dw.Data, db, T.Zero);
        return new AffineGradients<T>(dx, dw, db);
    }

    /// <summary>output = x w + b, with w given as D x M row-major elements.</summary>
    public static void ForwardInto<T>(Matrix<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> b, Matrix<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Rows, d = x.Cols, m = output.Cols;
        CheckShapes(x, w, b, output.Rows, m);
        for (var i = 0; i < n; i++)
        {
            b.CopyTo(output.Row(i));
        }

        Blas.Gemm(false, false, n, m, d, T.One, x.Span, d, w, m, T.One, output.Span, m);
    }

    /// <summary>
    /// dw = x^T dout + reg * w; db = column sums of dout; dx = dout w^T (skipped when <paramref name="dx"/> is null,
    /// as for a network's first layer, whose input needs no gradient).
    /// </summary>
    public static void BackwardInto<T>(Matrix<T> dout, Matrix<T> x, ReadOnlySpan<T> w, Matrix<T>? dx, Span<T> dw, Span<T> db, T reg)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Rows, d = x.Cols, m = dout.Cols;
        CheckShapes(x, w, db, dout.Rows, m);
        if (reg == T.Zero)
        {
            Blas.Gemm(true, false, d, m, n, T.One, x.Span, d, dout.Span, m, T.Zero, dw, m);
        }
        else
        {
            TensorPrimitives.Multiply(w, reg, dw);
            Blas.Gemm(true, false, d, m, n, T.One, x.Span, d, dout.Span, m, T.One, dw, m);
        }

        Ops.ColumnSums(dout, db);
        if (dx is not null)
        {
            Blas.Gemm(false, true, n, d, m, T.One, dout.Span, m, w, m, T.Zero, dx.Span, d);
        }
    }

    private static void CheckShapes<T>(Matrix<T> x, ReadOnlySpan<T> w, ReadOnlySpan<T> b, int outRows, int m)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (w.Length != x.Cols * m || b.Length != m || outRows != x.Rows)
        {
            throw new ArgumentException(
                $"Affine shapes disagree: x {x.Rows} x {x.Cols}, w has {w.Length} elements (expected {x.Cols} x {m}), b {b.Length}, out {outRows} x {m}.");
        }
    }
}
