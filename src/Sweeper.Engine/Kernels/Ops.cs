using System.Numerics;
using System.Numerics.Tensors;

namespace Sweeper.Engine.Kernels;

/// <summary>Small element-wise and reduction kernels shared by the layers. Lengths are checked by the callers.</summary>
public static class Ops
{
    /// <summary>destination[j] = sum over rows i of m[i, j].</summary>
    public static void ColumnSums<T>(Matrix<T> m, Span<T> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        destination.Clear();
        for (var i = 0; i < m.Rows; i++)
        {
            TensorPrimitives.Add(destination, m.Row(i), destination);
        }
    }

    /// <summary>destination[j] = sum over rows i of a[i, j] * b[i, j].</summary>
    public static void ColumnDotSums<T>(Matrix<T> a, Matrix<T> b, Span<T> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        destination.Clear();
        for (var i = 0; i < a.Rows; i++)
        {
            TensorPrimitives.FusedMultiplyAdd(a.Row(i), b.Row(i), destination, destination);
        }
    }

    /// <summary>destination[i] = x[i] &gt; 0 ? x[i] : 0 (NaN stays NaN, so divergence is seen downstream).</summary>
    public static void Relu<T>(ReadOnlySpan<T> x, Span<T> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
        => TensorPrimitives.Max(x, T.Zero, destination);

    /// <summary>destination[i] = y[i] &gt; 0 ? dy[i] : 0, where y is the relu's output (or input: same sign pattern).</summary>
    public static void ReluBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && y.Length >= Vector<T>.Count)
        {
            var yv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(y);
            var dyv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(dy);
            var dv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(destination);
            for (var k = 0; k < yv.Length; k++)
            {
                dv[k] = Vector.ConditionalSelect(Vector.GreaterThan(yv[k], Vector<T>.Zero), dyv[k], Vector<T>.Zero);
            }

            i = yv.Length * Vector<T>.Count;
        }

        for (; i < y.Length; i++)
        {
            destination[i] = y[i] > T.Zero ? dy[i] : T.Zero;
        }
    }

    /// <summary>centered[j] = x[j] - mean[j]; sumSquares[j] += centered[j]^2 (one row of batchnorm's variance, one pass).</summary>
    public static void CenterAndSquare<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> mean, Span<T> centered, Span<T> sumSquares)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var xv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(x);
            var mv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(mean);
            var cv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(centered);
            var sv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(sumSquares);
            for (var k = 0; k < xv.Length; k++)
            {
                var c = xv[k] - mv[k];
                cv[k] = c;
                sv[k] += c * c;
            }

            j = xv.Length * Vector<T>.Count;
        }

        for (; j < x.Length; j++)
        {
            var c = x[j] - mean[j];
            centered[j] = c;
            sumSquares[j] += c * c;
        }
    }

    /// <summary>xhat[j] *= invStd[j]; output[j] = xhat[j] * gamma[j] + beta[j] (one row of batchnorm's output, one pass).</summary>
    public static void NormalizeAndScale<T>(Span<T> xhat, ReadOnlySpan<T> invStd, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated && xhat.Length >= Vector<T>.Count)
        {
            var xv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(xhat);
            var iv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(invStd);
            var gv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(gamma);
            var bv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(beta);
            var ov = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(output);
            for (var k = 0; k < xv.Length; k++)
            {
                var h = xv[k] * iv[k];
                xv[k] = h;
                ov[k] = (h * gv[k]) + bv[k];
            }

            j = xv.Length * Vector<T>.Count;
        }

        for (; j < xhat.Length; j++)
        {
            var h = xhat[j] * invStd[j];
            xhat[j] = h;
            output[j] = (h * gamma[j]) + beta[j];
        }
    }

    /// <summary>d[j] = scale[j] * (n * g[j] - dbeta[j] - x[j] * dgamma[j]): one row of batchnorm's input gradient, vectorized.</summary>
    public static void BatchNormInputGradient<T>(ReadOnlySpan<T> g, ReadOnlySpan<T> x, ReadOnlySpan<T> scale, ReadOnlySpan<T> dbeta, ReadOnlySpan<T> dgamma, T n, Span<T> d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var j = 0;
        if (Vector.IsHardwareAccelerated && d.Length >= Vector<T>.Count)
        {
            var nv = new Vector<T>(n);
            var gv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(g);
            var xv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(x);
            var sv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(scale);
            var bv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(dbeta);
            var cv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(dgamma);
            var dv = System.Runtime.InteropServices.MemoryMarshal.Cast<T, Vector<T>>(d);
            for (var k = 0; k < dv.Length; k++)
            {
                dv[k] = sv[k] * ((nv * gv[k]) - bv[k] - (xv[k] * cv[k]));
            }

            j = dv.Length * Vector<T>.Count;
        }

        for (; j < d.Length; j++)
        {
            d[j] = scale[j] * ((n * g[j]) - dbeta[j] - (x[j] * dgamma[j]));
        }
    }

    /// <summary>Index of the largest element of each row (the first one on ties; NaN never wins).</summary>
    public static void ArgMaxRows<T>(Matrix<T> m, Span<int> destination)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (var i = 0; i < m.Rows; i++)
        {
            var row = m.Row(i);
            var best = 0;
            for (var j = 1; j < row.Length; j++)
            {
                if (row[j] > row[best] || T.IsNaN(row[best]))
                {
                    best = j;
                }
            }

            destination[i] = best;
        }
    }
}
