using Sweeper.Core.Search;

namespace Sweeper.Core.Tests.Search;

public class ImportanceTests
{
    /// <summary>Rows of <paramref name="d"/> uniform [0, 1) columns and the values <paramref name="f"/> gives them.</summary>
    private static (List<double[]> X, List<double> Y) Synthetic(int n, int d, Func<double[], double> f, int seed)
    {
        var rng = new Random(seed);
        var x = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, d).Select(_ => rng.NextDouble()).ToArray()).ToList();
        return (x, x.Select(f).ToList());
    }

    [Fact]
    public void A_value_that_depends_only_on_the_first_parameter_gives_it_most_of_the_importance()
    {
        var (x, y) = Synthetic(600, 4, r => Math.Sin(6 * r[0]), seed: 1);
        var shares = Importance.Of(x, y);
        Assert.Equal(1.0, shares.Sum(), 9);
        Assert.True(shares[0] > 0.9, string.Join(", ", shares));
        Assert.Equal(0, Array.IndexOf(shares, shares.Max()));
    }

    [Fact]
    public void Two_equally_important_parameters_get_similar_shares_and_a_noise_parameter_little()
    {
        var (x, y) = Synthetic(800, 3, r => r[0] + r[2], seed: 2);
        var shares = Importance.Of(x, y);
        Assert.InRange(shares[0], 0.38, 0.62);
        Assert.InRange(shares[2], 0.38, 0.62);
        Assert.InRange(Math.Abs(shares[0] - shares[2]), 0, 0.15);
        Assert.True(shares[1] < 0.05, string.Join(", ", shares));
    }

    [Fact]
    public void A_parameter_with_a_larger_effect_ranks_above_one_with_a_smaller_effect()
    {
        var (x, y) = Synthetic(800, 3, r => (3 * r[1]) + (0.5 * r[0]), seed: 3);
        var shares = Importance.Of(x, y);
        Assert.True(shares[1] > shares[0] && shares[0] > shares[2], string.Join(", ", shares));
    }

    [Fact]
    public void The_answer_is_the_same_for_the_same_seed_and_is_all_zero_for_a_constant_value()
    {
        var (x, y) = Synthetic(300, 3, r => (r[0] * r[1]) + (0.1 * r[2]), seed: 4);
        Assert.Equal(Importance.Of(x, y, new ImportanceOptions { Seed = 7 }), Importance.Of(x, y, new ImportanceOptions { Seed = 7 }));
        Assert.All(Importance.Of(x, [.. y.Select(_ => 0.5)]), s => Assert.Equal(0, s));
    }

    [Fact]
    public void More_rows_than_the_cap_are_sampled_down_and_still_find_the_parameter_that_matters()
    {
        // 10,000 rows, cap 500: the answer comes from a sample, is deterministic and still right.
        var (x, y) = Synthetic(10_000, 3, r => r[2] > 0.5 ? 1 : 0, seed: 5);
        var options = new ImportanceOptions { MaxRows = 500, Trees = 16 };
        var shares = Importance.Of(x, y, options);
        Assert.True(shares[2] > 0.9, string.Join(", ", shares));
        Assert.Equal(shares, Importance.Of(x, y, options));
    }

    [Fact]
    public void A_dozen_trials_are_enough_to_see_a_strong_effect()
    {
        // A small study: leaves may hold a single trial, so the trees still split.
        var (x, y) = Synthetic(12, 3, r => r[1] > 0.5 ? 0.9 : 0.1, seed: 9);
        var shares = Importance.Of(x, y);
        Assert.True(shares[1] > 0.6, string.Join(", ", shares));
    }

    [Fact]
    public void Categories_logs_and_missing_parameters_are_encoded_as_ordered_numbers()
    {
        IReadOnlyList<IReadOnlyDictionary<string, object>> trials =
        [
            new Dictionary<string, object> { ["lr"] = 1e-3, ["opt"] = "sgd", ["hidden"] = 10L },
            new Dictionary<string, object> { ["lr"] = 1e-1, ["opt"] = "adam" },
            new Dictionary<string, object> { ["lr"] = 1e-2, ["opt"] = true, ["hidden"] = 30L },
        ];
        var rows = Importance.Encode(["lr", "opt", "hidden"], trials, new HashSet<string> { "lr" });
        Assert.Equal([-3, -1, -2], rows.Select(r => Math.Round(r[0], 9)));
        Assert.Equal([1.0, 0, 2], rows.Select(r => r[1])); // adam < sgd < true, as text
        Assert.Equal(10, rows[0][2]);
        Assert.True(double.IsNaN(rows[1][2]));
        Assert.Equal(30, rows[2][2]);
    }

    [Fact]
    public void A_categorical_parameter_that_decides_the_value_is_found()
    {
        var rng = new Random(6);
        var opts = new[] { "adam", "rmsprop", "sgd" };
        var trials = Enumerable.Range(0, 400).Select(_ => (IReadOnlyDictionary<string, object>)new Dictionary<string, object>
        {
            ["optimizer"] = opts[rng.Next(3)],
            ["lr"] = Math.Pow(10, -4 + (3 * rng.NextDouble())),
        }).ToList();
        var y = trials.Select(t => (string)t["optimizer"] == "rmsprop" ? 0.9 : 0.3).ToList();
        var shares = Importance.Of(Importance.Encode(["lr", "optimizer"], trials, new HashSet<string> { "lr" }), y);
        Assert.True(shares[1] > 0.9, string.Join(", ", shares));
    }
}
