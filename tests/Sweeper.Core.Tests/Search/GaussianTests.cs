using Sweeper.Core.Search;

namespace Sweeper.Core.Tests.Search;

public class GaussianTests
{
    [Theory]
    // Reference values of erfc (C libm's erfc through Python's math.erfc, about 1 ulp).
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 0.4795001221869534623)]
    [InlineData(1.0, 0.1572992070502851307)]
    [InlineData(1.9999, 0.004679802092970608)]
    [InlineData(2.0, 0.004677734981047265838)]
    [InlineData(3.0, 2.209049699858544137e-05)]
    [InlineData(5.0, 1.537459794428034850e-12)]
    [InlineData(10.0, 2.088487583762544757e-45)]
    [InlineData(-1.0, 1.842700792949714869)]
    public void Erfc_matches_reference_values_to_a_few_ulps(double x, double expected)
    {
        Assert.InRange(Math.Abs(Gaussian.Erfc(x) - expected) / expected, 0, 4e-15);
        Assert.InRange(Math.Abs(Gaussian.LogErfc(x) - Math.Log(expected)), 0, 2e-13);
    }

    [Fact]
    public void LogErfc_stays_finite_where_erfc_underflows()
    {
        // erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4)) for large x.
        const double X = 40;
        var asymptotic = -(X * X) - Math.Log(X * Math.Sqrt(Math.PI)) + Math.Log(1 - (1 / (2 * X * X)) + (3 / (4 * Math.Pow(X, 4))));
        Assert.Equal(0, Gaussian.Erfc(X));
        Assert.Equal(asymptotic, Gaussian.LogErfc(X), 1e-9);
    }

    [Fact]
    public void The_mass_between_two_points_is_the_difference_of_the_cdf_and_survives_far_tails()
    {
        Assert.Equal(Math.Log(Gaussian.Cdf(1) - Gaussian.Cdf(-1)), Gaussian.LogMass(-1, 1), 14);
        Assert.Equal(Math.Log(0.6826894921370859), Gaussian.LogMass(-1, 1), 14);
        Assert.Equal(Math.Log(Gaussian.Cdf(2.5) - Gaussian.Cdf(0.5)), Gaussian.LogMass(0.5, 2.5), 13);
        // Symmetric intervals in the two tails have the same mass.
        Assert.Equal(Gaussian.LogMass(3, 4), Gaussian.LogMass(-4, -3), 13);
        // Far out: the mass on [40, 41] is about the density at 40 over 40 (Mills' ratio), far below a double's range.
        var far = Gaussian.LogMass(40, 41);
        Assert.True(double.IsFinite(far));
        Assert.Equal(Gaussian.LogPdf(40) - Math.Log(40) + Math.Log(1 - (1.0 / 1600)), far, 5);
    }

    [Theory]
    [InlineData(-1.0, 1.0)]
    [InlineData(1.0, 2.0)]
    [InlineData(-3.0, -2.0)]
    [InlineData(-0.5, 3.0)]
    [InlineData(30.0, 31.0)]
    public void Truncated_draws_stay_inside_and_have_the_closed_form_mean(double a, double b)
    {
        // Mean of the standard normal truncated to [a, b]: (phi(a) - phi(b)) / (Phi(b) - Phi(a)), computed in log space.
        var logZ = Gaussian.LogMass(a, b);
        var mean = Math.Exp(Gaussian.LogPdf(a) - logZ) - Math.Exp(Gaussian.LogPdf(b) - logZ);
        var variance = 1 + (((a * Math.Exp(Gaussian.LogPdf(a) - logZ)) - (b * Math.Exp(Gaussian.LogPdf(b) - logZ)))) - (mean * mean);
        var rng = new Rng(42);
        const int N = 20_000;
        var sum = 0.0;
        for (var i = 0; i < N; i++)
        {
            var x = Gaussian.SampleTruncated(rng, a, b);
            Assert.InRange(x, a, b);
            sum += x;
        }

        var standardError = Math.Sqrt(variance / N);
        Assert.InRange(sum / N, mean - (5 * standardError), mean + (5 * standardError));
    }

    [Fact]
    public void A_truncated_draw_inverts_the_cdf_of_its_interval()
    {
        // SampleTruncated maps its one uniform u to the u-quantile: check F(x) = u on the draws of a known stream.
        const double A = -2, B = 0.5;
        var rng = new Rng(7);
        var copy = new Rng(7);
        for (var i = 0; i < 100; i++)
        {
            var x = Gaussian.SampleTruncated(rng, A, B);
            var u = copy.NextDouble();
            Assert.Equal(u, (Gaussian.Cdf(x) - Gaussian.Cdf(A)) / (Gaussian.Cdf(B) - Gaussian.Cdf(A)), 12);
        }
    }
}
