namespace Sweeper.Core.Search;

/// <summary>
/// The standard normal distribution's functions that the Parzen estimators need, accurate far into the tails: the
/// complementary error function (and its logarithm, which does not underflow), log Φ, the log of the mass between two
/// points, and draws from a truncated normal. .NET has no erf, so it is computed here: a series with positive terms
/// below 1.2 and a continued fraction (evaluated with Lentz's method) above, both to about 2e-15 relative.
/// </summary>
public static class Gaussian
{
    /// <summary>log(sqrt(2 pi)).</summary>
    public const double LogSqrt2Pi = 0.91893853320467274178;

    private const double Sqrt2 = 1.41421356237309504880;
    private const double SqrtPi = 1.77245385090551602730;

    /// <summary>
    /// Where erfc switches from 1 - erf (series) to the continued fraction: below it 1 - erf loses at most a factor
    /// 1 / erfc(1.2) = 11 of its precision; above it the fraction converges in at most about 130 terms.
    /// </summary>
    private const double FractionFrom = 1.2;

    /// <summary>erfc(x) = 1 - erf(x); 0 for +infinity, 2 for -infinity, NaN for NaN.</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (x < 0)
        {
            return 2 - Erfc(-x);
        }

        return x < FractionFrom ? 1 - ErfSeries(x) : Math.Exp(-(x * x)) / SqrtPi / ContinuedFraction(x);
    }

    /// <summary>log(erfc(x)), finite for every finite x (erfc(40) underflows a double; its log is about -1604).</summary>
    public static double LogErfc(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (double.IsPositiveInfinity(x))
        {
            return double.NegativeInfinity;
        }

        return x < FractionFrom ? Math.Log(Erfc(x)) : -(x * x) - Math.Log(SqrtPi) - Math.Log(ContinuedFraction(x));
    }

    /// <summary>Φ(z), the standard normal's cumulative distribution.</summary>
    public static double Cdf(double z) => 0.5 * Erfc(-z / Sqrt2);

    /// <summary>log Φ(z), accurate where Φ(z) itself underflows (z below about -38).</summary>
    public static double LogCdf(double z) => -Math.Log(2) + LogErfc(-z / Sqrt2);

    /// <summary>log φ(z), the standard normal's log density.</summary>
    public static double LogPdf(double z) => (-0.5 * z * z) - LogSqrt2Pi;

    /// <summary>
    /// log(Φ(b) - Φ(a)) for a &lt;= b: the log of the standard normal's mass on [a, b], computed in whichever tail keeps
    /// its digits (an interval far out on either side has a mass far below 1e-300 and still a finite log).
    /// </summary>
    public static double LogMass(double a, double b)
    {
        if (!(a <= b))
        {
            throw new ArgumentException($"LogMass needs a <= b (got a = {a}, b = {b}).");
        }

        if (a >= 0)
        {
            // Φ(b) - Φ(a) = Φ(-a) - Φ(-b): move to the lower tail, where Φ has no cancellation.
            (a, b) = (-b, -a);
        }

        if (b <= 0)
        {
            var logB = LogCdf(b);
            return logB + Log1MinusExp(LogCdf(a) - logB);
        }

        // a < 0 < b: 1 - Φ(a) - Φ(-b), both terms at most 1/2.
        return Log1P(-Cdf(a) - Cdf(-b));
    }

    /// <summary>
    /// A draw from the standard normal truncated to [a, b] (a &lt; b, both finite), by inverting its distribution
    /// function with a bracketed Newton iteration in log space: exact to about 1e-13 even when the interval lies far in
    /// a tail, and it uses exactly one uniform draw of <paramref name="rng"/>.
    /// </summary>
    public static double SampleTruncated(Rng rng, double a, double b)
    {
        var u = rng.NextDouble();
        if (a >= 0)
        {
            // Mirror into the lower tail; the mirrored draw uses 1 - u so that the map from u stays increasing.
            return -InvertTruncated(-b, -a, 1 - u);
        }

        return InvertTruncated(a, b, u);
    }

    /// <summary>The x in [a, b] (a &lt; 0) at which the normal truncated to [a, b] has cumulative probability <paramref name="u"/>.</summary>
    private static double InvertTruncated(double a, double b, double u)
    {
        // Everything relative to Φ(b), so that an interval far in the lower tail does not underflow:
        // F(x) = (Φ(x) - Φ(a)) / (Φ(b) - Φ(a)) = (r(x) - r(a)) / (1 - r(a)) with r(x) = Φ(x) / Φ(b).
        var logB = LogCdf(b);
        var ra = Math.Exp(LogCdf(a) - logB);
        var scale = -Expm1(LogCdf(a) - logB); // 1 - r(a), without cancellation
        if (!(scale > 0))
        {
            // The interval is so narrow that its mass does not register: any point of it will do.
            return a + (u * (b - a));
        }

        double Residual(double x) => ((Math.Exp(LogCdf(x) - logB) - ra) / scale) - u;
        double Slope(double x) => Math.Exp(LogPdf(x) - logB) / scale;

        double lo = a, hi = b;
        var x = a + (u * (b - a));
        for (var i = 0; i < 200; i++)
        {
            var f = Residual(x);
            if (f == 0)
            {
                return x;
            }

            if (f < 0)
            {
                lo = x;
            }
            else
            {
                hi = x;
            }

            var d = Slope(x);
            var next = d > 0 ? x - (f / d) : double.NaN;
            if (!(next > lo && next < hi))
            {
                next = 0.5 * (lo + hi); // Newton left the bracket: bisect instead
            }

            if (Math.Abs(next - x) <= 1e-14 * (1 + Math.Abs(x)) || hi - lo <= 1e-14 * (1 + Math.Abs(x)))
            {
                return next;
            }

            x = next;
        }

        return x;
    }

    /// <summary>log(1 + x), accurate for tiny x (Goldberg's trick; .NET's double.LogP1 is log(1 + x) as written).</summary>
    public static double Log1P(double x)
    {
        var u = 1 + x;
        return u == 1 ? x : Math.Log(u) * x / (u - 1);
    }

    /// <summary>exp(x) - 1, accurate for tiny x (Kahan's trick; .NET's double.ExpM1 is exp(x) - 1 as written).</summary>
    public static double Expm1(double x)
    {
        var u = Math.Exp(x);
        if (u == 1)
        {
            return x;
        }

        var um1 = u - 1;
        return um1 == -1 ? -1 : double.IsPositiveInfinity(u) ? u : um1 * x / Math.Log(u);
    }

    /// <summary>log(1 - exp(x)) for x &lt;= 0, without cancellation at either end.</summary>
    private static double Log1MinusExp(double x) => x > -0.6931471805599453 ? Math.Log(-Expm1(x)) : Log1P(-Math.Exp(x));

    /// <summary>erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1 * 3 * ... * (2n+1)): every term positive, so no cancellation.</summary>
    private static double ErfSeries(double x)
    {
        var term = x;
        var sum = x;
        var x2 = x * x;
        for (var n = 1; n < 200; n++)
        {
            term *= 2 * x2 / ((2 * n) + 1);
            sum += term;
            if (term < 1e-17 * sum)
            {
                break;
            }
        }

        return 2 / SqrtPi * Math.Exp(-x2) * sum;
    }

    /// <summary>
    /// x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + ...)))), so that erfc(x) = exp(-x^2) / (sqrt(pi) times it);
    /// converges for x >= 1.2 within about 130 terms (modified Lentz).
    /// </summary>
    private static double ContinuedFraction(double x)
    {
        const double Tiny = 1e-300;
        var f = x;
        var c = x;
        var d = 0.0;
        for (var n = 1; n < 500; n++)
        {
            var an = 0.5 * n;
            d = x + (an * d);
            d = d == 0 ? Tiny : d;
            c = x + (an / c);
            c = c == 0 ? Tiny : c;
            d = 1 / d;
            var delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16)
            {
                break;
            }
        }

        return f;
    }
}
