using System.Numerics;
using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests;

/// <summary>Inputs that once escaped as other exceptions (or were read wrongly): each is now a clear error or a correct reading.</summary>
public class SweepFileEdgeCaseTests
{
    private const string Random = "name: a\nmethod: random\nmodel: fc\nparameters:\n";
    private const string Grid = "name: a\nmethod: grid\nmodel: fc\nparameters:\n";

    private static SweepFileException Fails(string yaml)
    {
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.Parse(yaml, "x.yaml"));
        Assert.StartsWith($"x.yaml:{ex.Line}:{ex.Column}: ", ex.Message);
        return ex;
    }

    // 1. Integer ranges past 32 bits.

    [Fact]
    public void An_int_uniform_range_past_the_largest_int_is_drawn_over_all_of_it()
    {
        var sweep = SweepParser.Parse(Random + "  iterations: {distribution: int_uniform, min: 1, max: 5e9}\nbudget: {max_trials: 2000}\nseed: 5\n");
        var draws = SearchSpace.CreateSampler(sweep).Propose(sweep, 2000).Select(t => (long)t.Parameters["iterations"]).ToArray();
        Assert.All(draws, v => Assert.InRange(v, 1L, 5_000_000_000L));

        // 32-bit arithmetic never drew above about 7.05e8; uniform over [1, 5e9] puts a fifth of the draws in each 1e9.
        for (var fifth = 0; fifth < 5; fifth++)
        {
            Assert.InRange(draws.Count(v => (v - 1) / 1_000_000_000 == fifth), 330, 470);
        }
    }

    [Theory]
    [InlineData("4294967296")]
    [InlineData("3e9")]
    [InlineData("5e9")]
    public void Int_uniform_ranges_past_32_bits_draw_above_where_32_bit_arithmetic_stopped(string max)
    {
        var sweep = SweepParser.Parse(Random + $"  iterations: {{distribution: int_uniform, min: 1, max: {max}}}\nbudget: {{max_trials: 500}}\n");
        var draws = SearchSpace.CreateSampler(sweep).Propose(sweep, 500).Select(t => (long)t.Parameters["iterations"]).ToArray();
        Assert.All(draws, v => Assert.InRange(v, 1L, (long)double.Parse(max, System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(draws.Count(v => v > 700_000_000) > 250, $"{draws.Count(v => v > 700_000_000)} of 500 draws above 7e8");
    }

    [Fact]
    public void A_missing_sweep_file_is_named_without_a_line_and_column_it_does_not_have()
    {
        var path = Path.Combine(Path.GetTempPath(), "sweeper-no-such-" + Guid.NewGuid().ToString("N")[..8] + ".yaml");
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.ParseFile(path));
        Assert.Equal(path + ": the sweep file does not exist.", ex.Message);
    }

    [Fact]
    public void A_nested_parameter_and_a_dotted_name_for_the_same_parameter_are_refused()
    {
        var ex = Fails("name: a\nprogram: t.py\nmethod: random\nparameters:\n  opt:\n    parameters:\n      lr: {value: 1}\n  opt.lr: {value: 2}\n");
        Assert.Equal(("parameters.opt.lr", 8, "appears twice (a nested parameter and a dotted name both make opt.lr)."), (ex.Key, ex.Line, ex.Problem));
    }

    [Fact]
    public void An_int_uniform_range_with_a_step_past_the_largest_int_draws_every_step()
    {
        var sweep = SweepParser.Parse(Random + "  iterations: {distribution: int_uniform, min: 1, max: 3000000001, q: 1000000000}\nbudget: {max_trials: 200}\n");
        var draws = SearchSpace.CreateSampler(sweep).Propose(sweep, 200).Select(t => (long)t.Parameters["iterations"]).ToHashSet();
        Assert.Equal([1L, 1_000_000_001L, 2_000_000_001L, 3_000_000_001L], draws.Order());
    }

    [Theory]
    [InlineData("4294967296")]
    [InlineData("3e9")]
    public void A_hidden_size_past_the_largest_int_is_refused_at_its_bound(string max)
    {
        var ex = Fails(Random + $"  hidden_size: {{distribution: int_uniform, min: 1, max: {max}}}\n");
        Assert.Equal("parameters.hidden_size.max", ex.Key);
        Assert.Equal((5, 57), (ex.Line, ex.Column));
        Assert.Equal($"hidden_size must be in [1, 2147483647] (got {(max == "3e9" ? "3000000000" : max)}).", ex.Problem);
    }

    [Fact]
    public void A_file_past_a_megabyte_an_endless_one_or_a_folder_is_refused_before_it_is_read_whole()
    {
        var dir = Directory.CreateTempSubdirectory("sweeper-big-").FullName;
        try
        {
            var big = Path.Combine(dir, "big.yaml");
            File.WriteAllText(big, Grid + "  reg: {value: 1}\n" + new string('#', SweepParser.MaxFileBytes));
            Assert.Equal("is larger than 1 MiB; a sweep file is a few KiB of YAML (is this the right file?).", Assert.Throws<SweepFileException>(() => SweepParser.ParseFile(big)).Problem);
            // /dev/zero's length reads as 0: it was read until memory ran out (4 GB, then OutOfMemoryException).
            Assert.Contains("is larger than 1 MiB", Assert.Throws<SweepFileException>(() => SweepParser.ParseFile("/dev/zero")).Problem);
            Assert.StartsWith("is a folder, not a sweep file", Assert.Throws<SweepFileException>(() => SweepParser.ParseFile(dir)).Problem);
            var fine = Path.Combine(dir, "fine.yaml");
            File.WriteAllText(fine, "\uFEFF" + Grid + "  reg: {value: 1}\n");
            Assert.Equal("a", SweepParser.ParseFile(fine).Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Conditions_and_hyperband_bands_that_can_never_take_effect_are_warned_about_at_their_place()
    {
        var sweep = SweepParser.Parse(Random + """
              reg: {values: [1, 2]}
              learning_rate: {distribution: uniform, min: 0.1, max: 0.2}
              epochs: {values: [1, 2]}
            conditions:
              - when: {reg: 3}
                parameters: {dropout: {value: 0.5}}
              - when: {learning_rate: 0.15}
                parameters: {weight_scale: {value: 0.01}}
              - when: {reg: [1, 1, 2]}
                parameters: {normalization: {value: batch}}
              - when: {reg: [1, 5]}
                parameters: {num_layers: {value: 2}}
              - when: {reg: 2}
                parameters: {init: {value: he}}
            early_terminate: {type: hyperband, min_iter: 2, eta: 3}
            """, "x.yaml");
        var warnings = sweep.Warnings.Select(w => (w.Line, w.Key, w.Message)).ToList();
        Assert.Equal(
        [
            (9, "conditions[0].when.reg", "reg never takes 3 (1, 2): this block never applies."),
            (11, "conditions[1].when.learning_rate", "learning_rate is drawn from a continuous range, which a draw equals almost never: this block almost never applies (test a parameter with values, or use q_ distributions)."),
            (13, "conditions[2].when.reg", "lists a value twice."),
            (15, "conditions[3].when.reg", "reg never takes 5 (1, 2)."),
            (19, "early_terminate", "hyperband's first band is at epoch 2, and no trial trains more than 2 epochs (parameters.epochs): no trial is ever judged or stopped early."),
        ], warnings);

        // A band before the last epoch: no warning.
        Assert.Empty(SweepParser.Parse(Grid + "  epochs: {values: [1, 3]}\nearly_terminate: {type: hyperband, min_iter: 2, eta: 3}\n").Warnings);
    }

    [Fact]
    public void A_second_yaml_document_is_refused_at_its_start_and_a_trailing_separator_is_nothing()
    {
        var ex = Fails(Grid + "  reg: {value: 1}\n---\nname: b\nmethod: random\n");
        Assert.Equal((7, 1), (ex.Line, ex.Column));
        Assert.StartsWith("a second YAML document (after '---')", ex.Problem, StringComparison.Ordinal);
        Assert.Equal("a", SweepParser.Parse("---\n" + Grid + "  reg: {value: 1}\n---\n").Name);
    }

    [Fact]
    public void A_grid_past_its_trial_limit_is_refused_at_the_limit_it_passes_and_an_invalid_max_trials_is_not_compared()
    {
        const string Twelve = "  reg: {values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}\n";
        var flow = Fails(Grid + Twelve + "budget: {max_trials: 10}\n");
        Assert.Equal((6, 22, "budget.max_trials"), (flow.Line, flow.Column, flow.Key)); // it said 1:1, run_cap
        Assert.Equal("the grid has 12 trials, more than budget.max_trials = 10. Raise the budget or shrink the grid.", flow.Problem);
        var cap = Fails("name: a\nmethod: grid\nmodel: fc\nrun_cap: 5\nparameters:\n" + Twelve);
        Assert.Equal((4, 10, "run_cap"), (cap.Line, cap.Column, cap.Key));

        // max_trials: 0 is its own error; run_cap is not said to disagree with the default (20) it fell back to.
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.Parse("name: a\nmethod: random\nmodel: fc\nrun_cap: 5\nparameters:\n  reg: {values: [1, 2]}\nbudget: {max_trials: 0}\n", "x.yaml"));
        Assert.Equal(["budget.max_trials"], ex.Errors.Select(e => e.Key));
    }

    [Fact]
    public void A_net_too_wide_to_allocate_is_refused_at_its_width_not_left_to_fail_each_trial()
    {
        // 2147483647 hidden units: 6.6e12 weights, which overflowed a count in the first trial ("OverflowException").
        var ex = Fails(Grid + "  hidden_size: {value: 2147483647}\n");
        Assert.Equal("parameters.hidden_size", ex.Key);
        Assert.Contains("would have 6,618,544,600,054 weights; at most 268,435,456 (1 GiB of float32) are taken", ex.Problem);
        var wide = Fails(Grid + "  hidden_sizes: {values: ['100,100', '20000,20000']}\n");
        Assert.Contains("widths 20000,20000 would have 461,640,000 weights", wide.Problem);
        Assert.Equal(268_435_456, Hyperparameters.MaxWeights);
        Assert.Equal((3072L * 100) + (100 * 100) + (100 * 10), Hyperparameters.WeightCount(3072, [100, 100], 10));
        Assert.NotNull(SweepParser.Parse(Grid + "  hidden_size: {value: 80000}\n")); // 246 million weights: taken
    }

    [Theory]
    [InlineData("9007199254740993")]
    [InlineData("1e17")]
    [InlineData("18446744073709551616")]
    public void Int_uniform_bounds_past_2_to_the_53_are_refused_because_a_double_cannot_hold_them(string max)
    {
        var ex = Fails(Random + $"  iterations: {{distribution: int_uniform, min: 1, max: {max}}}\n");
        Assert.Equal("parameters.iterations.max", ex.Key);
        Assert.Equal((5, 56), (ex.Line, ex.Column));
        Assert.StartsWith($"{max} is beyond ±2^53 (±9007199254740992): numbers in a sweep file are read as doubles", ex.Problem);
    }

    [Fact]
    public void The_largest_exact_bound_2_to_the_53_is_drawn_exactly()
    {
        var sweep = SweepParser.Parse(Random + "  iterations: {distribution: int_uniform, min: 9007199254740990, max: 9007199254740992}\nbudget: {max_trials: 100}\n");
        var draws = SearchSpace.CreateSampler(sweep).Propose(sweep, 100).Select(t => (long)t.Parameters["iterations"]).ToHashSet();
        Assert.Equal([9007199254740990L, 9007199254740991L, 9007199254740992L], draws.Order());
    }

    [Fact]
    public void The_64_bit_bounded_draw_is_the_32_bit_one_for_int_sized_bounds()
    {
        foreach (var n in new[] { 1, 2, 7, 10, 1000, 1 << 30, int.MaxValue })
        {
            var a = new Rng(99);
            var b = new Rng(99);
            for (var i = 0; i < 200; i++)
            {
                Assert.Equal((ulong)a.NextInt(n), b.NextULong((ulong)n));
            }
        }
    }

    [Fact]
    public void The_64_bit_bounded_draw_is_unbiased_over_a_range_near_2_to_the_64()
    {
        // With n = 3 * 2^62, taking NextULong() % n would put half the draws below 2^62 instead of a third.
        const ulong N = 3UL << 62;
        var rng = new Rng(3);
        const int Draws = 30_000;
        var low = 0;
        for (var i = 0; i < Draws; i++)
        {
            var v = rng.NextULong(N);
            Assert.True(v < N);
            low += v < (1UL << 62) ? 1 : 0;
        }

        Assert.InRange(low / (double)Draws, 1.0 / 3 - 0.015, 1.0 / 3 + 0.015);
    }

    // 2. Grid sizes.

    [Fact]
    public void A_billion_point_grid_is_refused_at_once_naming_its_axes()
    {
        var ex = Fails(Grid + "  learning_rate: {values: [1.0e-3, 1.0e-4]}\n  hidden_size: {distribution: int_uniform, min: 1, max: 1e9}\n");
        Assert.Equal("parameters.hidden_size", ex.Key);
        Assert.Equal((6, 3), (ex.Line, ex.Column));
        Assert.Equal("the grid has 2,000,000,000 trials, more than the 1,000,000 a grid may have. Axes: model (1 value) × learning_rate (2 values) × " +
            "hidden_size (1,000,000,000 values). Shrink the largest axes (fewer values, a larger q) or use method: random.", ex.Problem);
    }

    [Fact]
    public void A_grid_of_small_axes_whose_product_is_too_large_is_refused()
    {
        var ex = Fails(Grid + "  hidden_size: {min: 1, max: 1000}\n  batch_size: {min: 1, max: 1000}\n  epochs: {min: 1, max: 1000}\nbudget: {max_trials: 10000000}\n");
        Assert.StartsWith("the grid has 1,000,000,000 trials, more than the 1,000,000 a grid may have.", ex.Problem);
        Assert.Contains("hidden_size (1,000 values) × batch_size (1,000 values) × epochs (1,000 values)", ex.Problem);
    }

    [Fact]
    public void A_conditions_block_whose_grid_is_past_64_bits_is_refused_with_its_exact_size()
    {
        var ex = Fails("""
            name: a
            method: grid
            parameters:
              model: {values: [softmax, fc]}
              learning_rate: {values: [1.0e-3, 1.0e-4, 1.0e-5]}
            conditions:
              - when: {model: fc}
                parameters:
                  hidden_size: {distribution: int_uniform, min: 1, max: 2000000000}
                  batch_size: {distribution: int_uniform, min: 1, max: 2000000000}
                  epochs: {distribution: int_uniform, min: 1, max: 2000000000}
            """);
        Assert.Equal("conditions[0].parameters.hidden_size", ex.Key);
        Assert.Equal((9, 7), (ex.Line, ex.Column));
        var trials = 3 + (3 * BigInteger.Pow(2_000_000_000, 3));
        Assert.StartsWith($"the grid has {trials:N0} trials", ex.Problem);
        Assert.Contains("Axes: model (2 values) × learning_rate (3 values); conditions[0], for 3 of the 6 points: hidden_size (2,000,000,000 values) × " +
            "batch_size (2,000,000,000 values) × epochs (2,000,000,000 values).", ex.Problem);
    }

    [Fact]
    public void A_grid_of_exactly_the_maximum_is_allowed_and_one_more_is_not()
    {
        var sweep = SweepParser.Parse(Grid + "  iterations: {min: 1, max: 1000000}\nbudget: {max_trials: 1000000}\n");
        Assert.Equal(SearchSpace.MaxGridTrials, SearchSpace.TrialCount(sweep));
        Assert.Equal([1L, 2L], SearchSpace.CreateSampler(sweep).Propose(sweep, 2).Select(t => t.Parameters["iterations"]));

        var ex = Fails(Grid + "  iterations: {min: 1, max: 1000001}\nbudget: {max_trials: 10000000}\n");
        Assert.StartsWith("the grid has 1,000,001 trials, more than the 1,000,000", ex.Problem);
    }

    [Fact]
    public void Grid_sizes_are_counted_without_enumerating_and_agree_with_the_grid_sampler()
    {
        string[] grids =
        [
            // Two blocks that match the same points and name the same parameter: the last block's axis counts (as in sampling).
            """
            name: a
            method: grid
            parameters:
              model: {values: [softmax, two_layer, fc]}
              reg: {values: [0, 1, 2]}
              batch_size: {distribution: int_uniform, min: 10, max: 50, q: 10}
            conditions:
              - when: {model: [two_layer, fc]}
                parameters:
                  hidden_size: {values: [10, 20, 30]}
                  dropout: {values: [0, 0.5]}
              - when: {model: fc, batch_size: [20, 30, 35, 70]}
                parameters:
                  hidden_size: {values: [40, 50]}
                  num_layers: {values: [1, 2, 3]}
              - when: {reg: [1, 5]}
                parameters:
                  learning_rate: {values: [1.0e-3, 1.0e-4]}
            budget: {max_trials: 10000}
            """,
            """
            name: b
            method: grid
            parameters:
              model: {values: [softmax, svm]}
              learning_rate: {values: [1.0e-3]}
            conditions:
              - when: {model: fc}
                parameters:
                  reg: {values: [1, 2, 3]}
              - when: {model: []}
                parameters:
                  reg: {values: [4, 5]}
            budget: {max_trials: 10}
            """,
        ];
        foreach (var yaml in grids)
        {
            var sweep = SweepParser.Parse(yaml);
            var trials = SearchSpace.CreateSampler(sweep).Propose(sweep, int.MaxValue);
            Assert.Equal(trials.Count, SearchSpace.GridSize(sweep));
            Assert.Equal(trials.Count, trials.Select(t => ParamJson.Serialize(t.Parameters)).Distinct().Count());
        }

        var first = SweepParser.Parse(grids[0]);
        var fc = SearchSpace.CreateSampler(first).Propose(first, int.MaxValue).Where(t => (string)t.Parameters["model"] == "fc" && (long)t.Parameters["batch_size"] == 20).ToList();
        Assert.Equal([40L, 50L], fc.Select(t => t.Parameters["hidden_size"]).Distinct());
    }

    [Fact]
    public void A_grid_definition_built_in_code_counts_past_a_billion_points_instantly()
    {
        var sweep = new SweepDefinition
        {
            Name = "big",
            Method = "grid",
            SourceText = "",
            Parameters = new Dictionary<string, ParameterDomain>
            {
                ["model"] = new ValueList(["softmax", "fc"]),
                ["iterations"] = new Distribution(Distribution.IntUniform, 1, 4e15, null),
            },
            Conditions = [new ConditionalBlock(new Dictionary<string, IReadOnlyList<object>> { ["model"] = ["fc"], ["iterations"] = [7L, 8L, 9L] },
                new Dictionary<string, ParameterDomain> { ["hidden_size"] = new Distribution(Distribution.IntUniform, 1, 1e9, null) }, 1)],
        };
        Assert.Equal(8_000_000_000_000_000L - 3 + (3 * 1_000_000_000L), SearchSpace.GridSize(sweep));
        Assert.Equal([BigInteger.One * 3], SearchSpace.CountGrid(sweep).BlockPoints);
    }

    // 3. Quantization.

    [Theory]
    [InlineData("dropout: {distribution: uniform, min: 0.1, max: 0.2, q: 0.5}", "q = 0.5 leaves no value in [0.1, 0.2] to round to (the multiples of q between min and max)")]
    [InlineData("learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-3, q: 1.0e-3}", "q = 0.001 leaves 1 value in [1E-05, 0.001] (the multiples of q between min and max), so every trial would get that value")]
    [InlineData("hidden_size: {distribution: int_uniform, min: 1, max: 5, q: 10}", "q = 10 leaves 1 value in [1, 5] (min, min + q, ... up to max), so every trial would get that value")]
    [InlineData("reg: {distribution: q_log_uniform, min: 0, max: 0.5, q: 5}", "q = 5 leaves 1 value in [1, 1.64872] (the multiples of q that draws round to), so every trial would get that value")]
    [InlineData("reg: {distribution: q_uniform, min: 0.1, max: 0.2, q: 0.5}", "q = 0.5 leaves 1 value in [0.1, 0.2] (the multiples of q that draws round to), so every trial would get that value")]
    public void A_q_that_leaves_fewer_than_two_values_is_refused_saying_how_many_it_leaves(string parameter, string problem)
    {
        var ex = Fails(Random + "  " + parameter + "\n");
        Assert.EndsWith(".q", ex.Key);
        Assert.Equal(5, ex.Line);
        Assert.Equal(problem + "; q must leave at least two values: use a smaller q (or value: for a constant).", ex.Problem);
    }

    [Theory]
    [InlineData("0", "0")]
    [InlineData("-0.1", "-0.1")]
    [InlineData("1e400", "Infinity")]
    [InlineData("NaN", "NaN")]
    public void A_q_that_is_not_a_positive_finite_number_is_refused(string q, string shown)
    {
        var ex = Fails(Random + $"  reg: {{distribution: uniform, min: 0, max: 1, q: {q}}}\n");
        Assert.Equal("parameters.reg.q", ex.Key);
        Assert.Equal($"must be a finite number > 0 (got {shown}).", ex.Problem);
    }

    [Fact]
    public void A_q_too_small_to_divide_by_is_refused()
    {
        var ex = Fails(Random + "  reg: {distribution: uniform, min: 1.0e+300, max: 1.5e+300, q: 1.0e-300}\n");
        Assert.Contains("is too small", ex.Problem);
    }

    [Fact]
    public void A_q_that_leaves_two_values_gives_both()
    {
        var sweep = SweepParser.Parse(Random + "  reg: {distribution: uniform, min: 0.4, max: 1.1, q: 0.5}\nbudget: {max_trials: 100}\n");
        Assert.Equal([0.5, 1.0], SearchSpace.CreateSampler(sweep).Propose(sweep, 100).Select(t => (double)t.Parameters["reg"]).Distinct().Order());

        sweep = SweepParser.Parse(Random + "  dropout: {distribution: uniform, min: 0, max: 0.5, q: 0.5}\nbudget: {max_trials: 100}\n");
        Assert.Equal([0.0, 0.5], SearchSpace.CreateSampler(sweep).Propose(sweep, 100).Select(t => (double)t.Parameters["dropout"]).Distinct().Order());
    }

    // 4. Keys that are not names.

    [Theory]
    [InlineData("  [a, b]: 1\n", 5, 3, "parameters", "this one is a list.")]
    [InlineData("  {x: 1}: 2\n", 5, 3, "parameters", "this one is a mapping.")]
    [InlineData("  learning_rate: {[value]: 1}\n", 5, 19, "parameters.learning_rate", "this one is a list; expected one of value, values, distribution, min, max, q, mu, sigma, probabilities.")]
    [InlineData("  learning_rate: {value: 1}\n{x: 1}: 2\n", 6, 1, "", "this one is a mapping; expected one of name, description")]
    [InlineData("  model: {values: [softmax, fc]}\nconditions:\n  - when: {[model]: fc}\n    parameters: {reg: {value: 1}}\n", 7, 12, "conditions[0].when", "this one is a list.")]
    public void A_list_or_mapping_used_as_a_key_is_an_error_at_that_key(string body, int line, int column, string key, string problem)
    {
        var ex = Fails(Random.Replace("model: fc\n", "", StringComparison.Ordinal) + body);
        Assert.Equal((line - 1, column, key), (ex.Line, ex.Column, ex.Key));
        Assert.Contains("a key must be a plain name such as learning_rate, but " + problem, ex.Problem);
    }

    // 5. Tabs and quoted numbers.

    [Theory]
    [InlineData("  learning_rate:\n\t\tvalue: 1\n", 6, 1)]
    [InlineData("  learning_rate:\n  \t value: 1\n", 6, 3)]
    [InlineData("  learning_rate: {value: 1}\n\t\n", 6, 1)]
    public void A_tab_used_as_indentation_is_reported_at_its_line_and_column(string body, int line, int column)
    {
        var ex = Fails(Random + body);
        Assert.Equal((line, column), (ex.Line, ex.Column));
        Assert.Equal("not valid YAML: a tab is used as indentation; YAML indents with spaces only (replace the tab with spaces).", ex.Problem);
    }

    [Theory]
    [InlineData("learning_rate: {min: \"1e-4\", max: 1}", "parameters.learning_rate.min", "must be a number, but \"1e-4\" is in quotes, which makes it a string: numbers are written without quotes (1e-4).")]
    [InlineData("learning_rate: {value: '0.1'}", "parameters.learning_rate.value", "learning_rate must be a number, but \"0.1\" is in quotes, which makes it a string: numbers are written without quotes (0.1).")]
    [InlineData("epochs: {values: [1, \"10\"]}", "parameters.epochs.values[1]", "epochs must be a whole number, but \"10\" is in quotes, which makes it a string: numbers are written without quotes (10).")]
    [InlineData("hidden_sizes: {value: [100, '50']}", "parameters.hidden_sizes.value[1]", "must be a whole number, but \"50\" is in quotes, which makes it a string: numbers are written without quotes (50).")]
    public void A_quoted_number_is_called_a_quoted_string(string parameter, string key, string problem)
    {
        var ex = Fails(Random + "  " + parameter + "\n");
        Assert.Equal((key, problem), (ex.Key, ex.Problem));
    }

    [Fact]
    public void Seed_and_budget_say_so_too_when_quoted()
    {
        var ex = Fails(Random + "  reg: {value: 1}\nseed: \"7\"\n");
        Assert.Equal(("seed", "must be a whole number, but \"7\" is in quotes, which makes it a string: numbers are written without quotes (7)."), (ex.Key, ex.Problem));
    }

    // 6. Other inputs the fuzzer found.

    [Theory]
    [InlineData(100_000)]
    [InlineData(65)]
    public void Deep_nesting_is_refused_before_it_can_overflow_the_stack(int depth)
    {
        foreach (var yaml in new[]
        {
            "name: a\nmethod: random\nmodel: " + new string('[', depth) + new string(']', depth) + "\n",
            string.Concat(Enumerable.Repeat("- ", depth)) + "1\n",
            "name: a\nmethod: random\nmodel: " + string.Concat(Enumerable.Repeat("{a: ", depth)) + "1" + new string('}', depth) + "\n",
        })
        {
            var ex = Fails(yaml);
            Assert.Equal("nested more than 64 levels deep; a sweep file needs a few.", ex.Problem);
        }
    }

    [Fact]
    public void Nesting_within_the_limit_and_brackets_in_text_are_not_counted_as_deep()
    {
        var ex = Fails("name: a\nmethod: random\nmodel: " + new string('[', 40) + new string(']', 40) + "\n");
        Assert.Equal("model", ex.Key);
        var sweep = SweepParser.Parse("name: a\ndescription: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\nmethod: random\nmodel: fc\n" +
            "parameters:\n  reg: {value: 1} # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n");
        Assert.StartsWith("[[[[", sweep.Description);
    }

    [Fact]
    public void A_list_that_contains_itself_is_an_error_not_a_stack_overflow()
    {
        var ex = Fails(Random + "  hidden_sizes: {value: &x [100, *x]}\n");
        Assert.Equal(("parameters.hidden_sizes.value[1]", "must be a single value."), (ex.Key, ex.Problem));
    }

    [Fact]
    public void An_entry_without_a_key_is_an_error_at_its_line()
    {
        var ex = Fails(Random + "  epochs:\n    : 1e18\n    value: 3\n");
        Assert.Equal((6, 5), (ex.Line, ex.Column));
        Assert.Equal("not valid YAML: this entry has no key before its ':' (write key: value).", ex.Problem);
    }
}
