namespace Sweeper.Engine.Training;

/// <summary>Numerical gradients by central differences, in double precision, for checking analytic gradients.</summary>
public static class GradientCheck
{
    /// <summary>d f / d x[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h for every i. <paramref name="x"/> is perturbed in place and restored.</summary>
    public static double[] Numerical(Func<double> f, double[] x, double h = 1e-5)
    {
        var grad = new double[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            var old = x[i];
            x[i] = old + h;
            var plus = f();
            x[i] = old - h;
            var minus = f();
            x[i] = old;
            grad[i] = (plus - minus) / (2 * h);
        }

        return grad;
    }

    /// <summary>Numerical gradient of sum(f(x) * dout): the vector-Jacobian product a layer's backward computes.</summary>
    public static double[] NumericalArray(Func<double[]> f, double[] x, double[] dout, double h = 1e-5)
        => Numerical(
            () =>
            {
                var y = f();
                var s = 0.0;
                for (var i = 0; i < y.Length; i++)
                {
                    s += y[i] * dout[i];
                }

                return s;
            },
            x,
            h);

    /// <summary>max over i of |a - b| / max(1e-8, |a| + |b|), as in cs231n.</summary>
    public static double RelativeError(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"lengths differ: {a.Length} and {b.Length}.");
        }

        var max = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            var e = Math.Abs(a[i] - b[i]) / Math.Max(1e-8, Math.Abs(a[i]) + Math.Abs(b[i]));
            max = Math.Max(max, double.IsNaN(e) ? double.PositiveInfinity : e);
        }

        return max;
    }
}
