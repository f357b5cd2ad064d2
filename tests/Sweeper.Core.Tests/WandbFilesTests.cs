using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests;

/// <summary>
/// W&amp;B sweep files in the shapes found in public repositories (our own files, under wandb/): each validates as written,
/// and each malformed one gets every one of its errors with its place.
/// </summary>
public class WandbFilesTests
{
    /// <summary>tests/Sweeper.Core.Tests/wandb, found above the test binaries.</summary>
    internal static string FindWandb()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Sweeper.Core.Tests", "wandb");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Sweeper.Core.Tests/wandb not found above the test binaries");
    }

    private static SweepDefinition Parse(string file) => SweepParser.ParseFile(Path.Combine(FindWandb(), file));

    public static TheoryData<string> ValidFiles() => [.. Directory.GetFiles(FindWandb(), "*.yaml").Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(ValidFiles))]
    public void Every_wandb_file_validates_as_written_and_proposes_its_trials(string file)
    {
        var sweep = Parse(file);
        var count = SearchSpace.TrialCount(sweep);
        Assert.InRange(count, 1, sweep.Budget.MaxTrials);
        var sampler = sweep.Method == "bayes" ? new RandomSampler() : SearchSpace.CreateSampler(sweep);
        var trials = sampler.Propose(sweep, (int)Math.Min(count, 50));
        Assert.Equal(Math.Min(count, 50), trials.Count);
        Assert.All(trials, t => Assert.Equal(sweep.ParameterNames.Order(), t.Parameters.Keys.Order()));
        Assert.True(sweep.Warnings.Count == 0 || file == "controller-local.yaml", string.Join("\n", sweep.Warnings));
        Assert.True(Directory.GetFiles(FindWandb(), "*.yaml").Length >= 11);
    }

    [Fact]
    public void The_grid_hyperband_example_reads_as_w_and_b_reads_it()
    {
        var sweep = Parse("sweep-grid-hyperband.yaml");
        Assert.Equal(("sweep-grid-hyperband", "grid", "loss", "minimize", "train.py"), (sweep.Name, sweep.Method, sweep.Metric, sweep.Goal, sweep.Program!.Program));
        Assert.Equal(5 * 4 * 4 * 3, SearchSpace.TrialCount(sweep));
        var et = sweep.EarlyTerminate!;
        Assert.Equal((EarlyTerminate.Hyperband, 27, 2, 3.0, false), (et.Type, et.MaxIter!.Value, et.S!.Value, et.Eta, et.Strict));

        // W&B: band = max_iter; twice band /= eta -> 9, 3; sorted.
        Assert.Equal([3, 9], et.Bands());
        Assert.Equal(ProgramSpec.DefaultCommand, sweep.Program.Command);
    }

    [Fact]
    public void Nested_and_dotted_parameters_are_flattened_to_dotted_names()
    {
        Assert.Equal(["optimizer.name", "optimizer.lr", "optimizer.betas.beta1", "optimizer.betas.beta2", "batch_size"], Parse("nested-parameters.yaml").ParameterNames);
        Assert.Equal(["optimizer.config.learning_rate", "experiment", "optimizer"], Parse("hydra-dotted.yaml").ParameterNames);
        Assert.Equal(40, Parse("nested-parameters.yaml").Budget.MaxTrials);
    }

    [Fact]
    public void Project_entity_description_and_run_cap_are_kept()
    {
        var sweep = Parse("run-cap-random.yaml");
        Assert.Equal(("cifar-baselines", "vision-lab", "a random search capped at 50 runs", 50, "val/acc"), (sweep.Project, sweep.Entity, sweep.Description, sweep.Budget.MaxTrials, sweep.Metric));
        Assert.Equal(50, SearchSpace.TrialCount(sweep));
    }

    [Fact]
    public void Keys_that_mean_nothing_here_are_warnings_with_their_place()
    {
        var sweep = Parse("controller-local.yaml");
        Assert.Equal([(3, 1, "controller"), (8, 3, "metric.target")], sweep.Warnings.Select(w => (w.Line, w.Column, w.Key)));
        Assert.All(sweep.Warnings, w => Assert.Contains("means nothing here", w.Message));
    }

    [Fact]
    public void A_built_in_sweep_in_w_and_b_shape_uses_exponent_bounds_and_a_whole_q()
    {
        var sweep = Parse("builtin-cifar.yaml");
        Assert.Equal(("train_loss", "minimize", 12, "native", "cpu"), (sweep.Metric, sweep.Goal, sweep.Budget.MaxTrials, sweep.Engine, sweep.Device));
        var trials = new RandomSampler().Propose(sweep, 200);
        Assert.All(trials, t => Assert.InRange((double)t.Parameters["learning_rate"], Math.Exp(-8.1), Math.Exp(-5.8)));
        Assert.Equal([50L, 100L, 150L, 200L, 250L], trials.Select(t => (long)t.Parameters["hidden_size"]).Distinct().Order());
    }

    public static TheoryData<string, (int Line, int Column, string Key, string Says)[]> MalformedFiles() => new()
    {
        {
            "misspelt.yaml",
            [
                (2, 1, "metod", "unknown key (did you mean method?)"),
                (5, 9, "metric.goal", "(got minimise) (did you mean minimize?)"),
                (8, 19, "parameters.lr.distribution", "(got log_uniformm) (did you mean log_uniform?)"),
                (12, 5, "parameters.epochs.valeus", "unknown key (did you mean values?)"),
                (16, 3, "early_terminate", "hyperband needs exactly one of min_iter"),
                (17, 8, "early_terminate.eta", "must be a number > 1 (got 1)"),
                (1, 1, "method", "is required: grid, random or bayes."),
            ]
        },
        {
            "old-log-uniform.yaml",
            [
                (7, 10, "parameters.learning_rate.min", "[1E-05, 0.01] gives values from 1.00001 to 1.01005, all near 1.0. These bounds look like the values themselves: use distribution: log_uniform_values"),
                (12, 10, "parameters.reg.max", "exp(50000) is past the largest double; for bounds that are the values themselves use distribution: log_uniform_values."),
                (14, 20, "parameters.update_rule.values[1]", "(got sgdd) (did you mean sgd?)"),
                (15, 3, "parameters.hiden_size", "unknown hyperparameter (did you mean hidden_size?)"),
                (18, 9, "metric.name", "the built-in models record val_accuracy, train_accuracy, train_loss, not val_acc"),
            ]
        },
        {
            "program-errors.yaml",
            [
                (7, 3, "parameters.lr", "a grid needs values (or int_uniform or q_uniform); normal has no grid"),
                (11, 3, "parameters.optimizer.probabilities", "a grid tries every value once"),
                (14, 3, "parameters.1st_layer", "starts with a letter or '_'"),
                (20, 5, "command[3]", "unknown macro ${arg} (did you mean ${args}?)"),
                (22, 20, "trial.timeout_seconds", "must lie in [1, 100000000] (got 0)"),
            ]
        },
    };

    [Theory]
    [MemberData(nameof(MalformedFiles))]
    public void Malformed_files_report_every_error_at_once_with_its_place(string file, (int Line, int Column, string Key, string Says)[] expected)
    {
        var path = Path.Combine(FindWandb(), "malformed", file);
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.ParseFile(path));
        Assert.Equal(expected.Select(e => (e.Line, e.Column, e.Key)), ex.Errors.Select(e => (e.Line, e.Column, e.Key)));
        Assert.All(expected.Zip(ex.Errors), pair => Assert.Contains(pair.First.Says, pair.Second.Message, StringComparison.Ordinal));

        // The message is one file:line:column: key: problem line per error.
        Assert.Equal(ex.Errors.Select(e => $"{path}:{e.Line}:{e.Column}: {e.Key}: {e.Message}"), ex.Message.Split('\n'));
    }
}
