using System.Numerics;
using System.Numerics.Tensors;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Layers;

/// <summary>The classification losses a model can end in.</summary>
public enum LossKind
{
    /// <summary>Cross-entropy of the softmax of the scores.</summary>
    Softmax,

    /// <summary>Multiclass hinge loss with margin 1 (Weston-Watkins, as in cs231n).</summary>
    Svm,
}

/// <summary>
/// Loss layers. Shapes: scores N x C, labels N (each in [0, C)), dscores N x C.
/// The returned loss is the mean over the N examples, accumulated in double.
/// </summary>
public static class Loss
{
    /// <summary>Numerically stable softmax cross-entropy: the row maximum is subtracted before exponentiating.</summary>
    public static (double Loss, Matrix<T> Dscores) Softmax<T>(Matrix<T> scores, ReadOnlySpan<int> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = scores.ZerosLike();
        return (SoftmaxInto(scores, y, d), d);
    }

    public static (double Loss, Matrix<T> Dscores) Svm<T>(Matrix<T> scores, ReadOnlySpan<int> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = scores.ZerosLike();
        return (SvmInto(scores, y, d), d);
    }

    public static double Compute<T>(LossKind kind, Matrix<T> scores, ReadOnlySpan<int> y, Matrix<T> dscores)
        where T : unmanaged, IFloatingPointIeee754<T>
        => kind == LossKind.Svm ? SvmInto(scores, y, dscores) : SoftmaxInto(scores, y, dscores);

    /// <summary>loss = -mean log softmax(scores)[y]; dscores = (softmax - onehot(y)) / N. dscores may be scores.</summary>
    public static double SoftmaxInto<T>(Matrix<T> scores, ReadOnlySpan<int> y, Matrix<T> dscores)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckLabels(scores, y);
        var n = scores.Rows;
        var invN = T.One / T.CreateTruncating(n);
        var total = 0.0;
        for (var i = 0; i < n; i++)
        {
            var row = scores.Row(i);
            var d = dscores.Row(i);
            var max = TensorPrimitives.Max<T>(row);
            TensorPrimitives.Subtract(row, max, d);
            var shiftedY = d[y[i]];
            TensorPrimitives.Exp<T>(d, d);
            var sum = TensorPrimitives.Sum<T>(d);
            total += double.CreateTruncating(T.Log(sum) - shiftedY);
            TensorPrimitives.Multiply(d, invN / sum, d);
            d[y[i]] -= invN;
        }

        return total / n;
    }

    /// <summary>loss = mean over i of sum over j != y_i of max(0, s_j - s_y + 1). dscores may not be scores.</summary>
    public static double SvmInto<T>(Matrix<T> scores, ReadOnlySpan<int> y, Matrix<T> dscores)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckLabels(scores, y);
        var n = scores.Rows;
        var invN = T.One / T.CreateTruncating(n);
        var total = 0.0;
        for (var i = 0; i < n; i++)
        {
            var row = scores.Row(i);
            var d = dscores.Row(i);
            var correct = row[y[i]];
            var count = 0;
            for (var j = 0; j < row.Length; j++)
            {
                var margin = row[j] - correct + T.One;
                if (j != y[i] && margin > T.Zero)
                {
                    total += double.CreateTruncating(margin);
                    d[j] = invN;
                    count++;
                }
                else
                {
                    d[j] = T.Zero;
                }

                if (T.IsNaN(margin))
                {
                    total = double.NaN;
                }
            }

            d[y[i]] = -T.CreateTruncating(count) * invN;
        }

        return total / n;
    }

    private static void CheckLabels<T>(Matrix<T> scores, ReadOnlySpan<int> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (y.Length != scores.Rows)
        {
            throw new ArgumentException($"{scores.Rows} rows of scores but {y.Length} labels.");
        }

        foreach (var label in y)
        {
            if ((uint)label >= (uint)scores.Cols)
            {
                throw new ArgumentOutOfRangeException(nameof(y), label, $"Labels must lie in [0, {scores.Cols}).");
            }
        }
    }
}
