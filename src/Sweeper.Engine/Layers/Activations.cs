using System.Numerics;
using System.Numerics.Tensors;
using Sweeper.Core;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Layers;

/// <summary>Rectified linear unit, element-wise: out = max(0, x). Shapes: x and out N x D.</summary>
public static class Relu
{
    /// <summary>Returns out and the cache (out itself: its sign pattern is x's).</summary>
    public static (Matrix<T> Out, Matrix<T> Cache) Forward<T>(Matrix<T> x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var output = x.ZerosLike();
        Ops.Relu<T>(x.Span, output.Span);
        return (output, output);
    }

    /// <summary>dx = dout where the forward output was positive, else 0.</summary>
    public static Matrix<T> Backward<T>(Matrix<T> dout, Matrix<T> cache)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dx = dout.ZerosLike();
        Ops.ReluBackward<T>(cache.Span, dout.Span, dx.Span);
        return dx;
    }
}

/// <summary>
/// Inverted dropout. <c>p</c> is the probability of <em>dropping</em> a unit (0 = off); kept units are scaled by
/// 1 / (1 - p) at train time so that test time is the identity. Masks come from a seeded <see cref="Rng"/>.
/// </summary>
public static class Dropout
{
    /// <summary>Returns out and the mask (null when the layer is the identity: test mode or p = 0).</summary>
    public static (Matrix<T> Out, Matrix<T>? Mask) Forward<T>(Matrix<T> x, double p, bool train, Rng rng)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckProbability(p);
        if (!train || p == 0)
        {
            return (x.Clone(), null);
        }

        var mask = x.ZerosLike();
        rng.FillDropoutMask<T>(mask.Span, p);
        var output = x.ZerosLike();
        TensorPrimitives.Multiply<T>(x.Span, mask.Span, output.Span);
        return (output, mask);
    }

    /// <summary>dx = dout * mask (or dout where the forward pass was the identity).</summary>
    public static Matrix<T> Backward<T>(Matrix<T> dout, Matrix<T>? mask)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dx = dout.ZerosLike();
        if (mask is null)
        {
            dout.Span.CopyTo(dx.Span);
        }
        else
        {
            TensorPrimitives.Multiply<T>(dout.Span, mask.Span, dx.Span);
        }

        return dx;
    }

    public static void CheckProbability(double p)
    {
        if (!(p >= 0 && p < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(p), p, "dropout is the probability of dropping a unit and must lie in [0, 1).");
        }
    }
}
