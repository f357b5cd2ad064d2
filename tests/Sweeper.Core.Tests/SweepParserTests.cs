using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests;

public class SweepParserTests
{
    /// <summary>A valid sweep file (also a seed of the fuzzer).</summary>
    internal const string Valid = """
        name: demo
        method: grid
        model: two_layer
        parameters:
          learning_rate:
            values: [1.0e-3, 1.0e-4]
          reg:
            values: [0, 0.5]
          hidden_size:
            value: 50
          epochs:
            value: 3
        budget:
          max_trials: 10
        seed: 4
        """;

    private static SweepFileException Fails(string yaml)
    {
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.Parse(yaml, "sweeps/x.yaml"));
        Assert.StartsWith("sweeps/x.yaml:", ex.Message);
        return ex;
    }

    [Fact]
    public void A_valid_file_parses_into_its_search_space()
    {
        var sweep = SweepParser.Parse(Valid, "demo.yaml");
        Assert.Equal(("demo", "grid", 10, 4UL), (sweep.Name, sweep.Method, sweep.Budget.MaxTrials, sweep.Seed));
        Assert.Equal(["model", "learning_rate", "reg", "hidden_size", "epochs"], sweep.Parameters.Keys);
        Assert.Equal([1e-3, 1e-4], ((ValueList)sweep.Parameters["learning_rate"]).Values.Cast<double>());
        Assert.Equal(4, SearchSpace.TrialCount(sweep));
        Assert.Equal(64, sweep.SourceHash.Length);
        Assert.Null(sweep.EarlyTerminate);
    }

    [Theory]
    [InlineData("  colour: red\n", 5, "colour", "unknown key")]
    [InlineData("parameters:\n  learning_rat:\n    value: 1\n", 6, "parameters.learning_rat", "unknown hyperparameter")]
    public void Unknown_keys_are_errors_naming_the_line_and_key(string extra, int line, string key, string text)
    {
        var yaml = extra.StartsWith("  ", StringComparison.Ordinal)
            ? Valid.Replace("budget:\n", "budget:\n" + extra, StringComparison.Ordinal)
            : "name: a\nmethod: random\nmodel: softmax\nseed: 1\n" + extra;
        var ex = Fails(yaml);
        Assert.Contains(key, ex.Key);
        Assert.Contains(text, ex.Message);
        Assert.True(ex.Line >= 1);
        if (key == "colour")
        {
            Assert.Equal(14, ex.Line);
        }
        else
        {
            Assert.Equal(line, ex.Line);
        }
    }

    [Theory]
    [InlineData("learning_rate:\n    values: []", "parameters.learning_rate.values", "is empty")]
    [InlineData("learning_rate:\n    value: 0", "parameters.learning_rate.value", "> 0")]
    [InlineData("learning_rate:\n    value: -1e-3", "parameters.learning_rate.value", "> 0")]
    [InlineData("learning_rate:\n    value: fast", "parameters.learning_rate.value", "must be a number")]
    [InlineData("learning_rate:\n    distribution: log_uniform_values\n    min: 0\n    max: 1", "parameters.learning_rate.min", "log_uniform_values needs min > 0")]
    [InlineData("learning_rate:\n    distribution: uniform\n    min: 0.1\n    max: 0.01", "parameters.learning_rate.min", "greater than max")]
    [InlineData("learning_rate:\n    distribution: gaussian\n    min: 0.1\n    max: 0.2", "parameters.learning_rate.distribution", "must be one of")]
    [InlineData("learning_rate:\n    value: 1e-3\n  dropout:\n    value: 1.0", "parameters.dropout.value", "in [0, 1)")]
    [InlineData("learning_rate:\n    value: 1e-3\n  hidden_size:\n    value: 2.5", "parameters.hidden_size.value", "whole number")]
    [InlineData("learning_rate:\n    value: 1e-3\n  update_rule:\n    value: adagrad", "parameters.update_rule.value", "must be one of")]
    [InlineData("learning_rate:\n    value: 1e-3\n    values: [1]", "parameters.learning_rate", "cannot be combined")]
    [InlineData("learning_rate:\n    values: [1e-3, 1e-3]", "parameters.learning_rate.values", "twice")]
    public void Wrong_types_empty_lists_and_impossible_ranges_are_errors(string parameter, string key, string text)
    {
        var ex = Fails("name: a\nmethod: random\nmodel: fc\nparameters:\n  " + parameter + "\n");
        Assert.Equal(key, ex.Key);
        Assert.Contains(text, ex.Problem);
        Assert.True(ex.Line >= 5, ex.Message);
    }

    [Fact]
    public void A_grid_larger_than_the_budget_is_refused()
    {
        var ex = Fails(Valid.Replace("max_trials: 10", "max_trials: 3", StringComparison.Ordinal));
        Assert.Equal("budget.max_trials", ex.Key);
        Assert.Contains("4 trials", ex.Problem);
        Assert.Equal(14, ex.Line);
    }

    [Fact]
    public void A_grid_over_a_continuous_distribution_is_refused()
    {
        var ex = Fails("name: a\nmethod: grid\nmodel: softmax\nparameters:\n  learning_rate:\n    distribution: log_uniform_values\n    min: 1e-7\n    max: 1e-6\n");
        Assert.Contains("method: random", ex.Problem);
        Assert.Equal(5, ex.Line);
    }

    [Fact]
    public void Hidden_layer_parameters_for_a_linear_model_are_refused_unless_conditional()
    {
        var ex = Fails("name: a\nmethod: random\nparameters:\n  model:\n    values: [softmax, fc]\n  hidden_size:\n    value: 100\n");
        Assert.Equal("parameters.hidden_size", ex.Key);
        Assert.Contains("no hidden layers", ex.Problem);
        Assert.Equal(6, ex.Line);

        var ok = SweepParser.Parse("""
            name: a
            method: grid
            parameters:
              model: {values: [softmax, fc]}
              learning_rate: {value: 1.0e-3}
            conditions:
              - when: {model: fc}
                parameters:
                  hidden_size: {values: [50, 100]}
                  dropout: {values: [0, 0.5]}
            budget: {max_trials: 5}
            """);
        Assert.Equal(5, SearchSpace.TrialCount(ok));
    }

    [Fact]
    public void Invalid_yaml_names_the_line()
    {
        var ex = Fails("name: a\nmethod: [grid\nparameters: {}\n");
        Assert.Contains("not valid YAML", ex.Problem);
        Assert.True(ex.Line >= 2);
    }

    [Theory]
    [InlineData("method: bayesian", "method")]
    [InlineData("metric: {name: test_accuracy}", "metric.name")]
    [InlineData("data: {dataset: mnist}", "data.dataset")]
    [InlineData("data: {train_size: 49500, val_size: 1000}", "data")]
    [InlineData("budget: {max_trials: 0}", "budget.max_trials")]
    [InlineData("early_terminate: {type: hyperbands}", "early_terminate.type")]
    [InlineData("early_terminate: {type: hyperband}", "early_terminate")]
    [InlineData("name: 'a b'", "name")]
    public void Other_sections_are_validated_too(string line, string key)
    {
        var lines = new List<string> { "name: a", "method: random", "model: softmax", "parameters:", "  learning_rate: {value: 1.0e-7}" };
        var field = line.Split(':')[0];
        lines.RemoveAll(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        lines.Add(line);
        var ex = Fails(string.Join("\n", lines) + "\n");
        Assert.Equal(key, ex.Key);
    }

    [Fact]
    public void The_example_sweep_files_are_valid()
    {
        var dir = FindSweeps();
        var files = Directory.GetFiles(dir, "*.yaml");
        Assert.True(files.Length >= 4);
        foreach (var file in files)
        {
            var sweep = SweepParser.ParseFile(file);
            Assert.InRange(SearchSpace.TrialCount(sweep), 1, sweep.Budget.MaxTrials);
        }
    }

    /// <summary>The repository's sweeps/ folder, found above the test binaries.</summary>
    internal static string FindSweeps()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "sweeps");
            if (File.Exists(Path.Combine(candidate, "quickstart.yaml")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("sweeps/ not found above the test binaries");
    }

    [Fact]
    public void Trial_parameters_resolve_into_a_configuration_that_leaves_unnamed_settings_to_the_engine()
    {
        var trial = Hyperparameters.Resolve(new Dictionary<string, object>
        {
            ["model"] = "fc", ["hidden_size"] = 64L, ["num_layers"] = 3L, ["dropout"] = 0.25, ["normalization"] = "layer",
            ["update_rule"] = "adam", ["learning_rate"] = 2e-3, ["reg"] = 0L, ["epochs"] = 7L, ["beta2"] = 0.99,
        }, 9);
        Assert.Equal([64, 64, 64], trial.HiddenSizes);
        Assert.Equal(("fc", 0.25, "layer", 0.0), (trial.Model, trial.Dropout, trial.Normalization, trial.Reg));
        Assert.Equal(("adam", 2e-3, 7, 0.99, 9UL), (trial.UpdateRule, trial.LearningRate, trial.Epochs, trial.Beta2, trial.Seed));
        Assert.Equal((null, null, null, null), (trial.BatchSize, trial.Iterations, trial.Beta1, trial.Init));

        Assert.Equal([Hyperparameters.DefaultHiddenSize], Hyperparameters.Resolve(new Dictionary<string, object> { ["model"] = "two_layer" }, 1).HiddenSizes);
        Assert.Equal([300, 100], Hyperparameters.Resolve(new Dictionary<string, object> { ["model"] = "fc", ["hidden_sizes"] = "300,100" }, 1).HiddenSizes);
        Assert.Empty(Hyperparameters.Resolve(new Dictionary<string, object> { ["model"] = "svm" }, 1).HiddenSizes);
    }

    [Theory]
    [InlineData("two_layer", "num_layers", 2L, "num_layers:")]
    [InlineData("softmax", "hidden_size", 10L, "hidden_size:")]
    [InlineData("fc", "batch_size", 3_000_000_000L, "batch_size:")]
    public void An_impossible_trial_names_its_parameter(string model, string name, object value, string start)
    {
        var ex = Assert.Throws<ArgumentException>(() => Hyperparameters.Resolve(new Dictionary<string, object> { ["model"] = model, [name] = value }, 1));
        Assert.StartsWith(start, ex.Message);
    }

    [Fact]
    public void Epochs_and_iterations_together_are_impossible()
    {
        var ex = Assert.Throws<ArgumentException>(() => Hyperparameters.Resolve(new Dictionary<string, object> { ["model"] = "fc", ["epochs"] = 2L, ["iterations"] = 100L }, 1));
        Assert.StartsWith("iterations:", ex.Message);
    }

    [Fact]
    public void A_number_past_the_largest_double_is_refused_where_the_file_gives_it()
    {
        var ex = Fails("name: a\nmethod: grid\nmodel: softmax\nparameters:\n  learning_rate: {value: 1e400}\n");
        Assert.Equal(5, ex.Line);
        Assert.Contains("finite", ex.Message);
    }
}
