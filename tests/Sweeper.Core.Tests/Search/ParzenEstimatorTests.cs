using Sweeper.Core.Search;

namespace Sweeper.Core.Tests.Search;

public class ParzenEstimatorTests
{
    private static readonly TpeOptions _defaults = new();

    private static NumericParzenEstimator Fit(NumericDimension d, params double[] values) =>
        new(d, [.. values.Select(d.ToInternal)], TpeOptions.ObservationWeights(values.Length), _defaults);

    /// <summary>Composite Simpson's rule with n (even) intervals.</summary>
    private static double Integrate(Func<double, double> f, double a, double b, int n = 20_000)
    {
        var h = (b - a) / n;
        var sum = f(a) + f(b);
        for (var i = 1; i < n; i++)
        {
            sum += f(a + (i * h)) * (i % 2 == 1 ? 4 : 2);
        }

        return sum * h / 3;
    }

    [Fact]
    public void Kernel_widths_follow_the_neighbour_gap_rule_with_the_magic_clip()
    {
        // Observations 2, 3, 7 on [0, 10]: the inner kernel takes its larger neighbour gap (max(1, 4) = 4); the outer ones
        // measure to their inner neighbour only (1 and 4, endpoints not considered); the clip raises 1 to
        // 10 / min(100, 1 + 4 kernels) = 2. The prior kernel sits in the middle, as wide as the range.
        var d = new NumericDimension(0, 10, Log: false);
        var pe = Fit(d, 7, 2, 3);
        Assert.Equal([7, 2, 3, 5], pe.Mus);
        Assert.Equal([4, 2, 4, 10], pe.Sigmas);
        Assert.Equal([0.25, 0.25, 0.25, 0.25], pe.Weights);

        // With the endpoints considered, the outer kernels reach to the ends: 2 -> max(2, 1) = 2, 7 -> max(4, 3) = 4.
        var withEnds = new NumericParzenEstimator(d, [7, 2, 3], [1, 1, 1], _defaults with { ConsiderEndpoints = true, MagicClip = false });
        Assert.Equal([4, 2, 4, 10], withEnds.Sigmas);
        var noClip = new NumericParzenEstimator(d, [7, 2, 3], [1, 1, 1], _defaults with { MagicClip = false });
        Assert.Equal([4, 1, 4, 10], noClip.Sigmas);
    }

    [Fact]
    public void With_the_prior_among_the_neighbours_the_widths_are_those_of_optuna_before_4_9()
    {
        // Optuna 3.1's _ParzenEstimator on these observations over [-5, 10] gives widths 5.2, 5.2, 1.875, 6.5, 1.875,
        // 1.875 and 15 for the prior (printed from python3-optuna 3.1.0): the prior's centre 2.5 sits between 2.25 and 9.
        var d = new NumericDimension(-5, 10, Log: false);
        var pe = new NumericParzenEstimator(d, [-4.9, 0.3, 0.5, 9.0, 2.2, 2.25], TpeOptions.ObservationWeights(6), _defaults with { PriorAmongNeighbours = true });
        Assert.Equal([5.2, 5.2, 1.875, 6.5, 1.875, 1.875, 15], pe.Sigmas.Select(s => Math.Round(s, 12)));
        // Without it (Optuna 4.9 on), 2.25 and 9 are neighbours: 9 takes 6.75.
        Assert.Equal(6.75, Fit(d, -4.9, 0.3, 0.5, 9.0, 2.2, 2.25).Sigmas[3], 12);
    }

    [Fact]
    public void The_density_of_one_kernel_and_the_prior_is_their_truncated_normals_mixed_half_and_half()
    {
        var d = new NumericDimension(0, 10, Log: false);
        var pe = Fit(d, 2);
        // One observation: sigma = max(2 - 0, 10 - 2) = 8; prior N(5, 10); weights 1/2 each; both truncated to [0, 10].
        static double Tn(double x, double mu, double s) =>
            Math.Exp(-0.5 * ((x - mu) / s) * ((x - mu) / s)) / (s * Math.Sqrt(2 * Math.PI)) / (Gaussian.Cdf((10 - mu) / s) - Gaussian.Cdf((0 - mu) / s));
        foreach (var x in new[] { 0.0, 1.5, 2.0, 6.0, 10.0 })
        {
            Assert.Equal(Math.Log((0.5 * Tn(x, 2, 8)) + (0.5 * Tn(x, 5, 10))), pe.LogDensity(x), 12);
        }
    }

    [Fact]
    public void A_continuous_mixture_integrates_to_one_over_its_range_and_samples_stay_inside()
    {
        var d = new NumericDimension(-5, 10, Log: false);
        var pe = Fit(d, -4.9, 0.3, 0.5, 9.0, 2.2, 2.25);
        Assert.Equal(1, Integrate(x => Math.Exp(pe.LogDensity(x)), -5, 10), 6);
        var rng = new Rng(3);
        var draws = Enumerable.Range(0, 5000).Select(_ => (double)pe.Sample(rng)).ToArray();
        Assert.All(draws, x => Assert.InRange(x, -5, 10));

        // Sampling follows the density: the share of draws in [0, 1] matches its integral.
        var expected = Integrate(x => Math.Exp(pe.LogDensity(x)), 0, 1, 2000);
        var share = draws.Count(x => x is >= 0 and <= 1) / 5000.0;
        Assert.InRange(share, expected - (5 * Math.Sqrt(expected * (1 - expected) / 5000)), expected + (5 * Math.Sqrt(expected * (1 - expected) / 5000)));
    }

    [Fact]
    public void On_a_log_scale_the_density_is_over_log_values_and_integrates_to_one()
    {
        var d = new NumericDimension(1e-5, 1e-1, Log: true);
        var pe = Fit(d, 1e-4, 3e-4, 5e-2);
        Assert.Equal(Math.Log(1e-5) + (0.5 * (Math.Log(1e-1) - Math.Log(1e-5))), pe.Mus[^1], 12);

        // In t = log(x) the density integrates to 1; in x it is that density divided by x.
        Assert.Equal(1, Integrate(t => Math.Exp(pe.LogDensity(Math.Exp(t))), Math.Log(1e-5), Math.Log(1e-1)), 6);
        var rng = new Rng(5);
        var draws = Enumerable.Range(0, 3000).Select(_ => (double)pe.Sample(rng)).ToArray();
        Assert.All(draws, x => Assert.InRange(x, 1e-5, 1e-1));
        // Most of the mass sits near the observations' decades (1e-4 and 5e-2), little at 1e-3.
        Assert.True(draws.Count(x => x < 1e-3) > draws.Count(x => x is > 2e-3 and < 8e-3));
    }

    [Fact]
    public void On_an_integer_grid_every_point_has_its_probability_summing_to_one_and_draws_land_on_the_grid()
    {
        // int_uniform 10..100 step 10: grid 10, 20, ..., 100; the internal range is [5, 105].
        var d = (NumericDimension)SearchDimension.Of(new DimensionSpec(DistributionKinds.IntUniform, 10, 100, 10));
        Assert.Equal(5, d.InternalLow);
        Assert.Equal(105, d.InternalHigh);
        var pe = Fit(d, 20, 30, 30, 90);
        var grid = Enumerable.Range(1, 10).Select(k => 10.0 * k).ToArray();
        var p = grid.Select(x => Math.Exp(pe.LogDensity(x))).ToArray();
        Assert.Equal(1, p.Sum(), 12);

        var rng = new Rng(11);
        var counts = new int[10];
        const int N = 20_000;
        for (var i = 0; i < N; i++)
        {
            var v = pe.Sample(rng);
            var x = Assert.IsType<long>(v);
            Assert.Equal(0, x % 10);
            Assert.InRange(x, 10, 100);
            counts[(x / 10) - 1]++;
        }

        for (var k = 0; k < 10; k++)
        {
            var sd = Math.Sqrt(p[k] * (1 - p[k]) / N);
            Assert.InRange(counts[k] / (double)N, p[k] - (5 * sd) - 1e-3, p[k] + (5 * sd) + 1e-3);
        }
    }

    [Fact]
    public void A_quantized_log_dimension_puts_each_grid_point_s_log_cell_mass_on_it()
    {
        // q_log_uniform_values 1..100 with q 1: every integer 1..100, the internal range [log 0.5, log 100.5].
        var d = (NumericDimension)SearchDimension.Of(new DimensionSpec(DistributionKinds.QLogUniformValues, 1, 100, 1));
        Assert.True(d.IsInteger);
        Assert.Equal(Math.Log(0.5), d.InternalLow, 14);
        var pe = Fit(d, 3, 4, 50);
        var p = Enumerable.Range(1, 100).Select(x => Math.Exp(pe.LogDensity(x))).ToArray();
        Assert.Equal(1, p.Sum(), 12);
        // The cell of 1 is [log 0.5, log 1.5]: it holds the same mass as the continuous density integrated over it.
        var continuous = new NumericParzenEstimator(d with { Step = null, Low = 0.5, High = 100.5, IsInteger = false }, pe.Mus.Take(3).ToArray(), [1, 1, 1], _defaults);
        Assert.Equal(continuous.Sigmas, pe.Sigmas);
        Assert.Equal(Integrate(t => Math.Exp(continuous.LogDensity(Math.Exp(t))), Math.Log(0.5), Math.Log(1.5)), p[0], 8);
        var rng = new Rng(1);
        Assert.All(Enumerable.Range(0, 2000).Select(_ => pe.Sample(rng)), v => Assert.InRange(Assert.IsType<long>(v), 1, 100));
    }

    [Fact]
    public void A_categorical_estimator_has_the_closed_form_probabilities()
    {
        // 3 choices, observations [0, 0, 2], prior weight 1: 4 kernels. An observation's row is 1/4 on each choice plus 1
        // on its own, normalized by 1.75; the prior row is uniform; the kernels weigh 1/4 each.
        var pe = new CategoricalParzenEstimator(3, [0, 0, 2], [1, 1, 1], _defaults);
        double[] expected =
        [
            0.25 * ((2 * 1.25 / 1.75) + (0.25 / 1.75) + (1.0 / 3)),
            0.25 * ((3 * 0.25 / 1.75) + (1.0 / 3)),
            0.25 * ((2 * 0.25 / 1.75) + (1.25 / 1.75) + (1.0 / 3)),
        ];
        for (var c = 0; c < 3; c++)
        {
            Assert.Equal(expected[c], pe.Probabilities[c], 14);
            Assert.Equal(Math.Log(expected[c]), pe.LogDensity(c), 14);
        }

        var rng = new Rng(9);
        var counts = new int[3];
        for (var i = 0; i < 30_000; i++)
        {
            counts[pe.Sample(rng)]++;
        }

        for (var c = 0; c < 3; c++)
        {
            Assert.InRange(counts[c] / 30_000.0, expected[c] - 0.015, expected[c] + 0.015);
        }

        // Without observations it is the uniform prior.
        Assert.Equal([1.0 / 3, 1.0 / 3, 1.0 / 3], new CategoricalParzenEstimator(3, [], [], _defaults).Probabilities);
    }

    [Fact]
    public void A_joint_estimator_of_one_dimension_is_the_one_dimensional_estimator()
    {
        var d = new NumericDimension(-5, 10, Log: false);
        double[] obs = [-4.9, 0.3, 0.5, 9.0, 2.2];
        var single = new NumericParzenEstimator(d, obs, TpeOptions.ObservationWeights(5), _defaults);
        var joint = new JointParzenEstimator([d], [.. obs.Select(x => new[] { x })], TpeOptions.ObservationWeights(5), _defaults);
        foreach (var x in new[] { -5.0, -1, 0.4, 2, 9.9 })
        {
            Assert.Equal(single.LogDensity(x), joint.LogDensity([x]), 13);
        }
    }

    [Fact]
    public void A_joint_estimator_sums_to_one_over_its_grid_and_keeps_the_trials_combinations()
    {
        // hidden_size 10..90 step 20 with the update rule: trials (10, sgd), (30, sgd), (90, adam).
        var hidden = (NumericDimension)SearchDimension.Of(new DimensionSpec(DistributionKinds.IntUniform, 10, 90, 20));
        var rule = new CategoricalDimension(["sgd", "adam"]);
        var joint = new JointParzenEstimator([hidden, rule], [[10, 0], [30, 0], [90, 1]], [1, 1, 1], _defaults);
        var cells = from h in new long[] { 10, 30, 50, 70, 90 } from r in new[] { "sgd", "adam" } select (h, r, p: Math.Exp(joint.LogDensity([h, r])));
        Assert.Equal(1, cells.Sum(c => c.p), 12);

        // The joint model knows small nets went with sgd and the large one with adam; a product of the two marginals
        // would not (its odds of sgd would be the same at 10 as at 90).
        double P(long h, string r) => cells.Single(c => c.h == h && c.r == r).p;
        Assert.True(P(10, "sgd") / P(10, "adam") > 3 * (P(90, "sgd") / P(90, "adam")));

        var rng = new Rng(4);
        var draws = Enumerable.Range(0, 20_000).Select(_ => joint.Sample(rng)).ToList();
        Assert.All(draws, d => Assert.Contains((long)d[0], new long[] { 10, 30, 50, 70, 90 }));
        var share = draws.Count(d => (long)d[0] == 10 && (string)d[1] == "sgd") / 20_000.0;
        Assert.InRange(share, P(10, "sgd") - 0.015, P(10, "sgd") + 0.015);
    }

    [Fact]
    public void Old_observations_fade_beyond_the_newest_25()
    {
        Assert.Equal(Enumerable.Repeat(1.0, 25), TpeOptions.ObservationWeights(25));
        var w = TpeOptions.ObservationWeights(30);
        // np.linspace(1/30, 1, 5) then 25 ones.
        Assert.Equal([1.0 / 30, (1.0 / 30) + (0.25 * 29 / 30), (1.0 / 30) + (0.5 * 29 / 30), (1.0 / 30) + (0.75 * 29 / 30), 1.0], w.Take(5).ToArray(), new ToleranceComparer(1e-14));
        Assert.All(w.Skip(5), x => Assert.Equal(1.0, x));
        Assert.Equal([1.0 / 26], TpeOptions.ObservationWeights(26).Take(1));
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }
}
