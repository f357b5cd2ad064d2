using Sweeper.Core.Search;
using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests.Search;

public class SearchDimensionTests
{
    private static NumericDimension Numeric(DimensionSpec spec) => Assert.IsType<NumericDimension>(SearchDimension.Of(spec));

    private static double[] Draws(SearchDimension d, int n = 4000, ulong seed = 1)
    {
        var rng = new Rng(seed);
        return [.. Enumerable.Range(0, n).Select(_ => ParamValue.AsDouble(d.SamplePrior(rng)))];
    }

    [Fact]
    public void Todays_domains_map_through_the_adapter()
    {
        Assert.Equal(new ConstantDimension(3L), SearchDimension.Of(new FixedValue(3L)));
        var cat = Assert.IsType<CategoricalDimension>(SearchDimension.Of(new ValueList(["sgd", "adam"])));
        Assert.Equal(1, cat.IndexOf("adam"));
        Assert.Equal(-1, cat.IndexOf("rmsprop"));

        // log_uniform_values has raw bounds; log_uniform (W&B's meaning) takes exponents.
        var lr = Numeric(DimensionSpec.Of(new Distribution(Distribution.LogUniformValues, 1e-5, 1e-1, null)));
        Assert.Equal(DistributionKinds.LogUniformValues, DimensionSpec.Of(new Distribution(Distribution.LogUniformValues, 1e-5, 1e-1, null)).Kind);
        Assert.Equal((1e-5, 1e-1, true), (lr.Low, lr.High, lr.Log));
        var exponents = Numeric(DimensionSpec.Of(new Distribution(Distribution.LogUniform, -5, 0, null)));
        Assert.Equal((Math.Round(Math.Exp(-5), 12), 1.0, true), (Math.Round(exponents.Low, 12), Math.Round(exponents.High, 12), exponents.Log));
        var normal = DimensionSpec.Of(new Distribution(Distribution.Normal, 0, 0, null) { Mu = 0.5, Sigma = 0.1 });
        Assert.Equal((Distribution.Normal, 0.5, 0.1), (normal.Kind, normal.Mu!.Value, normal.Sigma!.Value));

        var hidden = Numeric(DimensionSpec.Of(new Distribution(Distribution.IntUniform, 10, 100, 10)));
        Assert.Equal((10.0, 100.0, 10.0, true, false), (hidden.GridLow, hidden.GridHigh, hidden.Step!.Value, hidden.IsInteger, hidden.Log));

        // uniform with q is q_uniform: multiples of q, doubles when q is fractional.
        var dropout = Numeric(DimensionSpec.Of(new Distribution(Distribution.Uniform, 0.1, 0.5, 0.1)));
        Assert.Equal(DistributionKinds.QUniform, DimensionSpec.Of(new Distribution(Distribution.Uniform, 0.1, 0.5, 0.1)).Kind);
        Assert.False(dropout.IsInteger);
        Assert.Equal((1L, 5L), (dropout.KLow, dropout.KHigh));

        // Today's uniform with a whole q still gives doubles, as random search does for the same file.
        var epochs = SearchDimension.Of(new Distribution(Distribution.Uniform, 1, 10, 1));
        var random = new Distribution(Distribution.Uniform, 1, 10, 1).Sample(new Rng(1));
        Assert.IsType<double>(random);
        Assert.All(Enumerable.Range(0, 50).Select(i => epochs.SamplePrior(new Rng((ulong)i))), v => Assert.IsType<double>(v));
    }

    [Fact]
    public void A_q_kind_gives_whole_numbers_when_q_is_whole_unless_told_otherwise()
    {
        var rng = new Rng(3);
        Assert.IsType<long>(SearchDimension.Of(new DimensionSpec(DistributionKinds.QUniform, 0, 100, 5)).SamplePrior(rng));
        Assert.IsType<double>(SearchDimension.Of(new DimensionSpec(DistributionKinds.QUniform, 0, 100, 5, Integer: false)).SamplePrior(rng));
        Assert.IsType<double>(SearchDimension.Of(new DimensionSpec(DistributionKinds.QUniform, 0, 100, 2.5)).SamplePrior(rng));
        Assert.Equal("q", Assert.Single(SearchDimension.Validate(new DimensionSpec(DistributionKinds.QUniform, 0, 100, 2.5, Integer: true))).Key);
    }

    [Fact]
    public void Wandb_log_kinds_read_min_and_max_as_exponents_or_as_values()
    {
        // log_uniform: exp(uniform(-5, 0)) lies in [e^-5, 1]; inv_log_uniform: exp(-uniform(0, 5)) also does.
        foreach (var kind in new[] { DistributionKinds.LogUniform, DistributionKinds.InvLogUniform })
        {
            var d = Numeric(kind == DistributionKinds.LogUniform ? new DimensionSpec(kind, -5, 0) : new DimensionSpec(kind, 0, 5));
            Assert.Equal(Math.Exp(-5), d.Low, 15);
            Assert.Equal(1, d.High, 15);
            Assert.True(d.Log);
        }

        // inv_log_uniform_values 0.01..1: 1/x with x log-uniform on [1, 100], which is log-uniform on [0.01, 1]: its
        // median is the geometric mean 0.1 and a quarter of the draws fall below 0.01 * 10^0.5.
        var inv = Numeric(new DimensionSpec(DistributionKinds.InvLogUniformValues, 0.01, 1));
        var draws = Draws(inv);
        Assert.All(draws, x => Assert.InRange(x, 0.01, 1));
        Assert.InRange(SamplerBenchmark.Median(draws), 0.09, 0.11);
        Assert.InRange(draws.Count(x => x < 0.01 * Math.Sqrt(10)) / 4000.0, 0.22, 0.28);

        var values = Numeric(new DimensionSpec(DistributionKinds.LogUniformValues, 0.01, 1));
        Assert.Equal((inv.Low, inv.High, inv.Log), (values.Low, values.High, values.Log));
    }

    [Fact]
    public void Quantized_kinds_land_on_multiples_of_q_within_the_range()
    {
        // q_uniform 0.05..1 with q 0.1: 0.1, 0.2, ..., 1.0 (0 is outside the range, so it is not a value).
        var qu = Numeric(new DimensionSpec(DistributionKinds.QUniform, 0.05, 1, 0.1));
        Assert.Equal((1L, 10L), (qu.KLow, qu.KHigh));
        var draws = Draws(qu);
        Assert.All(draws, x => Assert.Equal(Math.Round(x / 0.1) * 0.1, x));
        Assert.Equal(10, draws.Distinct().Count());

        // Whole q gives integers: q_log_uniform_values 1..1000 q 10 -> 10, 20, ..., 1000, as longs.
        var ql = Numeric(new DimensionSpec(DistributionKinds.QLogUniformValues, 1, 1000, 10));
        var rng = new Rng(2);
        for (var i = 0; i < 500; i++)
        {
            var v = Assert.IsType<long>(ql.SamplePrior(rng));
            Assert.Equal(0, v % 10);
            Assert.InRange(v, 10, 1000);
        }

        // q_log_uniform (exponents 0..log 1000) with q 1: the integers 1..1000; log scale puts half the draws below ~32.
        var qle = Numeric(new DimensionSpec(DistributionKinds.QLogUniform, 0, Math.Log(1000), 1));
        Assert.Equal((1.0, 1000.0), (qle.GridLow, qle.GridHigh));
        Assert.InRange(SamplerBenchmark.Median(Draws(qle)), 25, 40);

        // q_normal and q_log_normal round too.
        Assert.All(Draws(SearchDimension.Of(new DimensionSpec(DistributionKinds.QNormal, Mu: 10, Sigma: 3, Q: 2)), 500), x => Assert.Equal(0, x % 2));
        Assert.All(Draws(SearchDimension.Of(new DimensionSpec(DistributionKinds.QLogNormal, Mu: 3, Sigma: 1, Q: 5)), 500), x => Assert.Equal(0, x % 5));
    }

    [Fact]
    public void Normal_kinds_search_mu_plus_or_minus_four_sigma_with_the_users_normal_as_prior()
    {
        var n = Numeric(new DimensionSpec(DistributionKinds.Normal, Mu: 2, Sigma: 0.5));
        Assert.Equal((0.0, 4.0, false), (n.Low, n.High, n.Log));
        Assert.Equal((2.0, 0.5), (n.PriorCentre, n.PriorWidth));
        var draws = Draws(n, 20_000);
        Assert.InRange(draws.Average(), 2 - 0.02, 2 + 0.02);
        Assert.InRange(Math.Sqrt(draws.Average(x => (x - 2) * (x - 2))), 0.48, 0.52);

        // log_normal: the log of the value is normal(mu, sigma); the value's median is e^mu.
        var ln = Numeric(new DimensionSpec(DistributionKinds.LogNormal, Mu: -3, Sigma: 1));
        Assert.True(ln.Log);
        Assert.Equal((Math.Exp(-7), Math.Exp(1)), (ln.Low, ln.High));
        Assert.Equal((-3.0, 1.0), (ln.PriorCentre, ln.PriorWidth));
        Assert.InRange(SamplerBenchmark.Median(Draws(ln, 20_000)), Math.Exp(-3.05), Math.Exp(-2.95));

        // Defaults as W&B's: mu 0, sigma 1.
        var d = Numeric(new DimensionSpec(DistributionKinds.Normal));
        Assert.Equal((-4.0, 4.0), (d.Low, d.High));
    }

    [Fact]
    public void Single_valued_ranges_and_one_value_lists_become_constants()
    {
        Assert.Equal(new ConstantDimension(5L), SearchDimension.Of(new DimensionSpec(DistributionKinds.IntUniform, 5, 5)));
        Assert.Equal(new ConstantDimension(0.5), SearchDimension.Of(new DimensionSpec(DistributionKinds.Uniform, 0.5, 0.5)));
        Assert.Equal(new ConstantDimension("adam"), SearchDimension.Of(new DimensionSpec(DistributionKinds.Categorical, Values: ["adam"])));
        Assert.Equal(new ConstantDimension(0.5), SearchDimension.Of(new DimensionSpec(DistributionKinds.QUniform, 0.45, 0.55, 0.5)));
        Assert.Equal(new ConstantDimension(7L), SearchDimension.Of(new DimensionSpec(DistributionKinds.Constant, Value: 7L)));
    }

    [Theory]
    [InlineData("beta", null, null, null, null, "distribution")]
    [InlineData(DistributionKinds.Uniform, 2.0, 1.0, null, null, "max")]
    [InlineData(DistributionKinds.Uniform, null, 1.0, null, null, "min")]
    [InlineData(DistributionKinds.LogUniformValues, 0.0, 1.0, null, null, "min")]
    [InlineData(DistributionKinds.InvLogUniformValues, -1.0, 1.0, null, null, "min")]
    [InlineData(DistributionKinds.LogUniform, 0.0, 800.0, null, null, "max")]
    [InlineData(DistributionKinds.QUniform, 0.0, 1.0, 0.0, null, "q")]
    [InlineData(DistributionKinds.QUniform, 0.1, 0.2, 0.5, null, "q")]
    [InlineData(DistributionKinds.IntUniform, 0.5, 3.0, null, null, "min")]
    [InlineData(DistributionKinds.IntUniform, 0.0, 3.0, 1.5, null, "q")]
    [InlineData(DistributionKinds.Normal, null, null, null, 0.0, "sigma")]
    [InlineData(DistributionKinds.LogNormal, null, null, null, 200.0, "sigma")]
    public void Bad_specs_are_refused_naming_the_key_at_fault(string kind, double? min, double? max, double? q, double? sigma, string key)
    {
        var spec = new DimensionSpec(kind, min, max, q, Sigma: sigma);
        var problems = SearchDimension.Validate(spec);
        var problem = Assert.Single(problems);
        Assert.Equal(key, problem.Key);
        var e = Assert.Throws<ArgumentException>(() => SearchDimension.Of(spec));
        Assert.StartsWith(key + ": ", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Every_kind_that_validates_samples_inside_its_own_range()
    {
        DimensionSpec[] specs =
        [
            new(DistributionKinds.Uniform, -1, 1), new(DistributionKinds.IntUniform, -3, 9, 3), new(DistributionKinds.QUniform, 0, 1, 0.25),
            new(DistributionKinds.LogUniform, -2, 2), new(DistributionKinds.LogUniformValues, 1e-3, 1), new(DistributionKinds.QLogUniform, 0, 5, 2),
            new(DistributionKinds.QLogUniformValues, 0.01, 1, 0.01), new(DistributionKinds.InvLogUniform, 1, 3), new(DistributionKinds.InvLogUniformValues, 2, 8),
            new(DistributionKinds.Normal, Mu: 1, Sigma: 2), new(DistributionKinds.QNormal, Mu: 1, Sigma: 2, Q: 0.5), new(DistributionKinds.LogNormal, Mu: 0, Sigma: 0.5),
            new(DistributionKinds.QLogNormal, Mu: 2, Sigma: 0.5, Q: 1),
        ];
        Assert.Equal(DistributionKinds.All.Count - 2, specs.Length); // all but constant and categorical
        foreach (var spec in specs)
        {
            Assert.Empty(SearchDimension.Validate(spec));
            var d = Numeric(spec);
            Assert.All(Draws(d, 500), x => Assert.InRange(x, d.GridLow, d.GridHigh));
            Assert.All(Draws(d, 500), x => Assert.Equal(x, ParamValue.AsDouble(d.FromInternal(d.ToInternal(x)))));
        }
    }
}
