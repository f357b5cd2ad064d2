using System.Numerics;
using System.Numerics.Tensors;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Layers;

/// <summary>What a normalization layer keeps for its backward pass: the normalized input, 1/std and gamma.</summary>
public sealed record NormCache<T>(Matrix<T> XHat, T[] InvStd, T[] Gamma)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>Gradients of a normalization layer.</summary>
public sealed record NormGradients<T>(Matrix<T> Dx, T[] Dgamma, T[] Dbeta)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// Batch normalization over the N examples of each of D features. Shapes: x and out N x D; gamma, beta,
/// running mean and running variance D. Train mode normalizes with the batch's mean and (biased) variance and
/// updates running = momentum * running + (1 - momentum) * batch; test mode uses the running statistics.
/// </summary>
public static class BatchNorm
{
    public const double DefaultEpsilon = 1e-5;
    public const double DefaultMomentum = 0.9;

    public static (Matrix<T> Out, NormCache<T>? Cache) Forward<T>(Matrix<T> x, T[] gamma, T[] beta, T[] runningMean, T[] runningVar,
        bool train, double eps = DefaultEpsilon, double momentum = DefaultMomentum)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var output = x.ZerosLike();
        if (!train)
        {
            ForwardTestInto(x, gamma, beta, runningMean, runningVar, eps, new T[x.Cols], new T[x.Cols], output);
            return (output, null);
        }

        var xhat = x.ZerosLike();
        var invStd = new T[x.Cols];
        ForwardTrainInto(x, gamma, beta, runningMean, runningVar, eps, momentum, new T[x.Cols], invStd, xhat, output);
        return (output, new NormCache<T>(xhat, invStd, gamma));
    }

    public static NormGradients<T> Backward<T>(Matrix<T> dout, NormCache<T> cache)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dx = dout.ZerosLike();
        var dgamma = new T[dout.Cols];
        var dbeta = new T[dout.Cols];
        BackwardInto(dout, cache.XHat, cache.InvStd, cache.Gamma, new T[dout.Cols], dx, dgamma, dbeta);
        return new NormGradients<T>(dx, dgamma, dbeta);
    }

    /// <summary>Train mode. <paramref name="mean"/> and <paramref name="invStd"/> (length D) receive the batch statistics.</summary>
    public static void ForwardTrainInto<T>(Matrix<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> runningMean, Span<T> runningVar,
        double eps, double momentum, Span<T> mean, Span<T> invStd, Matrix<T> xhat, Matrix<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Rows;
        var invN = T.One / T.CreateTruncating(n);
        Ops.ColumnSums(x, mean);
        TensorPrimitives.Multiply(mean, invN, mean);

        // invStd first holds the variance: sum of squared deviations / N.
        invStd.Clear();
        for (var i = 0; i < n; i++)
        {
            Ops.CenterAndSquare(x.Row(i), mean, xhat.Row(i), invStd);
        }

        TensorPrimitives.Multiply(invStd, invN, invStd);
        var m = T.CreateTruncating(momentum);
        var oneMinusM = T.One - m;
        for (var j = 0; j < mean.Length; j++)
        {
            runningMean[j] = (m * runningMean[j]) + (oneMinusM * mean[j]);
            runningVar[j] = (m * runningVar[j]) + (oneMinusM * invStd[j]);
        }

        TensorPrimitives.Add(invStd, T.CreateTruncating(eps), invStd);
        TensorPrimitives.ReciprocalSqrt<T>(invStd, invStd);
        for (var i = 0; i < n; i++)
        {
            Ops.NormalizeAndScale(xhat.Row(i), invStd, gamma, beta, output.Row(i));
        }
    }

    /// <summary>Test mode: out = gamma * (x - running mean) / sqrt(running var + eps) + beta. Needs two scratch spans of length D.</summary>
    public static void ForwardTestInto<T>(Matrix<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, ReadOnlySpan<T> runningMean, ReadOnlySpan<T> runningVar,
        double eps, Span<T> scale, Span<T> shift, Matrix<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Add(runningVar, T.CreateTruncating(eps), scale);
        TensorPrimitives.ReciprocalSqrt<T>(scale, scale);
        TensorPrimitives.Multiply(scale, gamma, scale);
        TensorPrimitives.Multiply(runningMean, scale, shift);
        TensorPrimitives.Subtract(beta, shift, shift);
        for (var i = 0; i < x.Rows; i++)
        {
            TensorPrimitives.FusedMultiplyAdd(x.Row(i), scale, shift, output.Row(i));
        }
    }

    /// <summary>
    /// dbeta = sum_i dout; dgamma = sum_i dout * xhat;
    /// dx = gamma * invStd / N * (N * dout - dbeta - xhat * dgamma). <paramref name="scratch"/> has length D.
    /// <paramref name="dx"/> may be <paramref name="dout"/> itself.
    /// </summary>
    public static void BackwardInto<T>(Matrix<T> dout, Matrix<T> xhat, ReadOnlySpan<T> invStd, ReadOnlySpan<T> gamma, Span<T> scratch,
        Matrix<T> dx, Span<T> dgamma, Span<T> dbeta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var n = T.CreateTruncating(dout.Rows);
        Ops.ColumnSums(dout, dbeta);
        Ops.ColumnDotSums(dout, xhat, dgamma);
        TensorPrimitives.Multiply(gamma, invStd, scratch);
        TensorPrimitives.Divide(scratch, n, scratch);
        for (var i = 0; i < dout.Rows; i++)
        {
            Ops.BatchNormInputGradient(dout.Row(i), xhat.Row(i), scratch, dbeta, dgamma, n, dx.Row(i));
        }
    }
}

/// <summary>
/// Layer normalization over the D features of each example. Shapes: x and out N x D; gamma and beta D.
/// Same in train and test mode; no running statistics.
/// </summary>
public static class LayerNorm
{
    public const double DefaultEpsilon = 1e-5;

    public static (Matrix<T> Out, NormCache<T> Cache) Forward<T>(Matrix<T> x, T[] gamma, T[] beta, double eps = DefaultEpsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var output = x.ZerosLike();
        var xhat = x.ZerosLike();
        var invStd = new T[x.Rows];
        ForwardInto(x, gamma, beta, eps, invStd, xhat, output);
        return (output, new NormCache<T>(xhat, invStd, gamma));
    }

    public static NormGradients<T> Backward<T>(Matrix<T> dout, NormCache<T> cache)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dx = dout.ZerosLike();
        var dgamma = new T[dout.Cols];
        var dbeta = new T[dout.Cols];
        BackwardInto(dout, cache.XHat, cache.InvStd, cache.Gamma, new T[dout.Cols], dx, dgamma, dbeta);
        return new NormGradients<T>(dx, dgamma, dbeta);
    }

    /// <summary><paramref name="invStd"/> has length N: one 1/std per example.</summary>
    public static void ForwardInto<T>(Matrix<T> x, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, double eps, Span<T> invStd, Matrix<T> xhat, Matrix<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = T.CreateTruncating(x.Cols);
        var e = T.CreateTruncating(eps);
        for (var i = 0; i < x.Rows; i++)
        {
            var row = x.Row(i);
            var h = xhat.Row(i);
            var mean = TensorPrimitives.Sum<T>(row) / d;
            TensorPrimitives.Subtract(row, mean, h);
            var variance = TensorPrimitives.SumOfSquares<T>(h) / d;
            var inv = T.One / T.Sqrt(variance + e);
            invStd[i] = inv;
            TensorPrimitives.Multiply(h, inv, h);
            TensorPrimitives.FusedMultiplyAdd(h, gamma, beta, output.Row(i));
        }
    }

    /// <summary>
    /// dxhat = dout * gamma; dx = invStd / D * (D * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)), per example.
    /// <paramref name="scratch"/> has length D; <paramref name="dx"/> may be <paramref name="dout"/> itself.
    /// </summary>
    public static void BackwardInto<T>(Matrix<T> dout, Matrix<T> xhat, ReadOnlySpan<T> invStd, ReadOnlySpan<T> gamma, Span<T> scratch,
        Matrix<T> dx, Span<T> dgamma, Span<T> dbeta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Ops.ColumnSums(dout, dbeta);
        Ops.ColumnDotSums(dout, xhat, dgamma);
        var d = T.CreateTruncating(dout.Cols);
        for (var i = 0; i < dout.Rows; i++)
        {
            var h = xhat.Row(i);
            TensorPrimitives.Multiply(dout.Row(i), gamma, scratch);
            var sum = TensorPrimitives.Sum<T>(scratch);
            var dot = TensorPrimitives.Dot<T>(scratch, h);
            var coef = invStd[i] / d;
            var target = dx.Row(i);
            for (var j = 0; j < target.Length; j++)
            {
                target[j] = coef * ((d * scratch[j]) - sum - (h[j] * dot));
            }
        }
    }
}
