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

    /// <summary>
    /// loss = -mean log softmax(scores)[y]; dscores = (softmax - onehot(y)) / N. dscores may be scores.
    /// <para>
    /// A class whose exp(score - max) is below <see cref="SoftmaxKeep{T}"/> (N C times the smallest normal number:
    /// about 5e-36 in float32 for 40 rows of 10 classes) gets a probability of exactly 0, and no subnormal number is
    /// ever computed: its shifted score is raised to ln(keep) - 1 before exp (so exp stays normal) and its result
    /// then dropped. The dscore dropped is below C times the smallest normal number (about 1e-37 in float32), mostly
    /// subnormal, and its share of any sum far below float32 rounding. Kept, it would cost much: Intel cores take a
    /// microcode assist of about a hundred cycles for every multiplication with a subnormal operand or result (unless
    /// the thread flushes them, which .NET does not), and each dscore is multiplied by every input feature in the
    /// weight gradient. A linear classifier on raw pixels, whose scores spread by more than 87, trained 4 times slower
    /// from it on an Intel Xeon (subnormals in 5 to 10% of dscores).
    /// </para>
    /// </summary>
    public static double SoftmaxInto<T>(Matrix<T> scores, ReadOnlySpan<int> y, Matrix<T> dscores)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckLabels(scores, y);
        var n = scores.Rows;
        var invN = T.One / T.CreateTruncating(n);
        var keep = SoftmaxKeep<T>(n, scores.Cols);
        var floor = keep > T.Zero ? T.Log(keep) - T.One : T.NegativeInfinity;
        var total = 0.0;
        for (var i = 0; i < n; i++)
        {
            var row = scores.Row(i);
            var d = dscores.Row(i);
            var max = TensorPrimitives.Max<T>(row);
            TensorPrimitives.Subtract(row, max, d);
            var shiftedY = d[y[i]];
            TensorPrimitives.Max(d, floor, d);
            TensorPrimitives.Exp<T>(d, d);
            var sum = TensorPrimitives.Sum<T>(d);
            total += double.CreateTruncating(T.Log(sum) - shiftedY);
            var scale = invN / sum;
            for (var j = 0; j < d.Length; j++)
            {
                d[j] = d[j] < keep ? T.Zero : d[j] * scale;
            }

            d[y[i]] -= invN;
        }

        return total / n;
    }

    /// <summary>
    /// The smallest exp(score - max) that <see cref="SoftmaxInto{T}"/> keeps for <paramref name="rows"/> rows of
    /// <paramref name="classes"/> classes: rows * classes * the smallest normal number of T, so that a kept
    /// probability divided by rows is normal (the row's sum of exponentials is at most the number of classes). Zero
    /// (nothing dropped) for a type too narrow for that to be negligible (half precision), where it would exceed the
    /// square of the type's rounding unit.
    /// </summary>
    public static T SoftmaxKeep<T>(int rows, int classes)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var keep = Limits<T>.MinNormal * T.CreateTruncating(rows) * T.CreateTruncating(classes);
        return keep < Limits<T>.Unit * Limits<T>.Unit ? keep : T.Zero;
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

    /// <summary>Constants of a floating-point type that the generic math interfaces do not name.</summary>
    private static class Limits<T>
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>The smallest positive normal number (2^-126 for float, 2^-1022 for double).</summary>
        public static readonly T MinNormal = SmallestNormal();

        /// <summary>The distance from 1 to the next larger number (2^-23 for float).</summary>
        public static readonly T Unit = T.BitIncrement(T.One) - T.One;

        private static T SmallestNormal()
        {
            var v = T.Epsilon;
            while (!T.IsNormal(v))
            {
                v += v;
            }

            return v;
        }
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
