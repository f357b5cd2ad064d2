using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Core.Tests;

/// <summary>W&amp;B's meaning of every distribution, key and macro, checked against closed forms and W&amp;B's own rules.</summary>
public class WandbDialectTests
{
    private const string Program = "name: p\nprogram: train.py\nmethod: random\nrun_cap: 4000\nparameters:\n";

    private static double[] Draws(string parameter, int n = 4000)
    {
        var sweep = SweepParser.Parse(Program.Replace("4000", n.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) + "  x: " + parameter + "\n");
        return [.. new RandomSampler().Propose(sweep, n).Select(t => ParamValue.AsDouble(t.Parameters["x"]))];
    }

    private static SweepFileException Fails(string yaml)
    {
        var ex = Assert.Throws<SweepFileException>(() => SweepParser.Parse(yaml, "w.yaml"));
        Assert.StartsWith($"w.yaml:{ex.Line}:{ex.Column}: ", ex.Message);
        return ex;
    }

    private static (double Mean, double Std) Moments(IEnumerable<double> xs)
    {
        var a = xs.ToArray();
        var mean = a.Average();
        return (mean, Math.Sqrt(a.Sum(x => (x - mean) * (x - mean)) / (a.Length - 1)));
    }

    [Fact]
    public void Log_uniform_takes_natural_log_exponents_and_log_uniform_values_takes_the_values()
    {
        // log_uniform: ln x ~ U(min, max); mean of ln x = (min + max) / 2, std = (max - min) / sqrt(12).
        var exponents = Draws("{distribution: log_uniform, min: -9.21, max: -2.3}").Select(x => Math.Log(x)).ToArray();
        Assert.All(exponents, e => Assert.InRange(e, -9.21, -2.3));
        var (mean, std) = Moments(exponents);
        Assert.InRange(mean, -5.755 - 0.07, -5.755 + 0.07);
        Assert.InRange(std, (6.91 / Math.Sqrt(12)) * 0.96, (6.91 / Math.Sqrt(12)) * 1.04);

        foreach (var kind in new[] { "log_uniform_values", "inv_log_uniform_values" })
        {
            // Both are log-uniform between the values (W&B's inv_ form draws exp(-U(-ln max, -ln min))).
            var logs = Draws($"{{distribution: {kind}, min: 1.0e-4, max: 1.0e-1}}").Select(x => Math.Log10(x)).ToArray();
            Assert.All(logs, l => Assert.InRange(l, -4 - 1e-9, -1 + 1e-9));
            Assert.InRange(Moments(logs).Mean, -2.5 - 0.04, -2.5 + 0.04);
            Assert.InRange(logs.Count(l => l < -3) / (double)logs.Length, 0.30, 0.37);
        }
    }

    [Fact]
    public void Inv_log_uniform_draws_exp_of_minus_a_uniform_exponent()
    {
        var draws = Draws("{distribution: inv_log_uniform, min: 0, max: 3}");
        Assert.All(draws, x => Assert.InRange(x, Math.Exp(-3), 1.0));
        Assert.InRange(Moments(draws.Select(x => -Math.Log(x))).Mean, 1.5 - 0.04, 1.5 + 0.04);
    }

    [Fact]
    public void Q_kinds_round_to_multiples_of_q_and_a_whole_q_gives_whole_numbers()
    {
        var sweep = SweepParser.Parse(Program + "  a: {distribution: q_uniform, min: 0, max: 1000, q: 100}\n  b: {distribution: q_uniform, min: 0, max: 1, q: 0.25}\n  c: {distribution: q_uniform, min: 0, max: 10}\n");
        var trials = new RandomSampler().Propose(sweep, 4000);
        Assert.All(trials, t => Assert.IsType<long>(t.Parameters["a"]));
        Assert.Equal([0L, 100L, 200L, 300L, 400L, 500L, 600L, 700L, 800L, 900L, 1000L], trials.Select(t => (long)t.Parameters["a"]).Distinct().Order());

        // round(U(0, 1000) / 100): the end values 0 and 1000 get half the share of the others (rounding halves to even).
        Assert.InRange(trials.Count(t => (long)t.Parameters["a"] == 0) / 4000.0, 0.035, 0.065);
        Assert.Equal([0.0, 0.25, 0.5, 0.75, 1.0], trials.Select(t => (double)t.Parameters["b"]).Distinct().Order());

        // W&B's default q is 1.0, a float: the draws are whole floats.
        Assert.All(trials, t => Assert.Equal(Math.Round((double)t.Parameters["c"]), (double)t.Parameters["c"]));
        Assert.All(trials, t => Assert.IsType<double>(t.Parameters["c"]));

        var logs = Draws("{distribution: q_log_uniform_values, min: 16, max: 1024, q: 16}");
        Assert.All(logs, x => Assert.Equal(0, x % 16));
        Assert.Equal(16, logs.Min());
        Assert.Equal(1024, logs.Max());
    }

    [Fact]
    public void Normal_kinds_have_the_mean_and_spread_of_mu_and_sigma()
    {
        var (mean, std) = Moments(Draws("{distribution: normal, mu: 3, sigma: 0.5}"));
        Assert.InRange(mean, 3 - 0.03, 3 + 0.03);
        Assert.InRange(std, 0.5 * 0.95, 0.5 * 1.05);

        var logs = Moments(Draws("{distribution: log_normal, mu: -1, sigma: 0.25}").Select(x => Math.Log(x)));
        Assert.InRange(logs.Mean, -1 - 0.02, -1 + 0.02);
        Assert.InRange(logs.Std, 0.25 * 0.95, 0.25 * 1.05);

        Assert.All(Draws("{distribution: q_normal, mu: 10, sigma: 5, q: 2}"), x => Assert.Equal(0, x % 2));
        Assert.All(Draws("{distribution: q_log_normal, mu: 2, sigma: 0.5, q: 0.5}"), x => Assert.Equal(0, x % 0.5));

        // W&B's defaults: mu 0, sigma 1.
        var standard = Moments(Draws("{distribution: normal}"));
        Assert.InRange(standard.Mean, -0.06, 0.06);
        Assert.InRange(standard.Std, 0.95, 1.05);
    }

    [Fact]
    public void Categorical_probabilities_weight_the_values()
    {
        var sweep = SweepParser.Parse(Program + "  x: {values: [a, b, c], probabilities: [0.6, 0.3, 0.1]}\n");
        var draws = new RandomSampler().Propose(sweep, 4000).Select(t => (string)t.Parameters["x"]).ToList();
        Assert.InRange(draws.Count(d => d == "a") / 4000.0, 0.57, 0.63);
        Assert.InRange(draws.Count(d => d == "c") / 4000.0, 0.085, 0.115);

        Assert.Contains("must sum to 1 (they sum to 0.9)", Fails(Program + "  x: {values: [a, b], probabilities: [0.6, 0.3]}\n").Problem);
        Assert.Contains("a list of 2 numbers", Fails(Program + "  x: {values: [a, b], probabilities: [1]}\n").Problem);
    }

    [Theory]
    [InlineData("{min: 1, max: 10}", Distribution.IntUniform)]
    [InlineData("{min: 1.0, max: 10}", Distribution.Uniform)]
    [InlineData("{min: 0, max: 0.5}", Distribution.Uniform)]
    public void Without_distribution_whole_bounds_mean_int_uniform_and_others_uniform(string parameter, string kind)
    {
        var sweep = SweepParser.Parse(Program + "  x: " + parameter + "\n");
        Assert.Equal(kind, ((Distribution)sweep.Parameters["x"]).Kind);
        Assert.IsType<FixedValue>(SweepParser.Parse(Program + "  x: {value: 1}\n").Parameters["x"]);
        Assert.IsType<FixedValue>(SweepParser.Parse(Program + "  x: {distribution: constant, value: 1}\n").Parameters["x"]);
        Assert.IsType<ValueList>(SweepParser.Parse(Program + "  x: {distribution: categorical, values: [1, 2]}\n").Parameters["x"]);
    }

    [Fact]
    public void A_built_in_float_with_whole_bounds_warns_that_it_is_int_uniform()
    {
        var sweep = SweepParser.Parse("name: a\nmethod: random\nmodel: fc\nparameters:\n  reg: {min: 0, max: 1}\n");
        var warning = Assert.Single(sweep.Warnings);
        Assert.Equal((5, 8, "parameters.reg"), (warning.Line, warning.Column, warning.Key));
        Assert.Contains("write 0.0 for a uniform range", warning.Message);
    }

    [Theory]
    [InlineData("learning_rate: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-2}", "parameters.learning_rate.min", "use distribution: log_uniform_values")]
    [InlineData("reg: {distribution: log_uniform, min: 1.0, max: 5.0e+4}", "parameters.reg.max", "exp(50000) is past the largest double")]
    [InlineData("dropout: {distribution: normal, mu: 0.5, sigma: 0.125}", "parameters.dropout", "dropout must be in [0, 1) (got -0.625) (normal draws from -0.625 to 1.625)")]
    [InlineData("learning_rate: {distribution: log_normal, mu: -7, sigma: 1}", "", "")]
    [InlineData("hidden_size: {distribution: uniform, min: 10.5, max: 100}", "parameters.hidden_size.distribution", "whole number: use int_uniform")]
    [InlineData("hidden_size: {distribution: q_uniform, min: 10, max: 100, q: 10}", "", "")]
    [InlineData("learning_rate: {distribution: log_uniform, min: -9.2, max: -4.6}", "", "")]
    [InlineData("dropout: {distribution: q_uniform, min: 0, max: 0.99, q: 0.5}", "parameters.dropout.max", "dropout must be in [0, 1) (got 1) (q_uniform draws from 0 to 1)")]
    public void Built_in_parameters_check_every_value_a_distribution_can_draw(string parameter, string key, string says)
    {
        var yaml = "name: a\nmethod: random\nmodel: fc\nparameters:\n  " + parameter + "\n";
        if (key.Length == 0)
        {
            var sweep = SweepParser.Parse(yaml);
            Assert.All(new RandomSampler().Propose(sweep, 300), t => Hyperparameters.Resolve(t.Parameters, t.Seed));
            return;
        }

        var ex = Fails(yaml);
        Assert.Equal(key, ex.Key);
        Assert.Contains(says, ex.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_q_uniform_grid_lists_min_plus_multiples_of_q_below_max_as_numpy_arange_does()
    {
        var sweep = SweepParser.Parse("name: g\nprogram: t.py\nmethod: grid\nparameters:\n  x: {distribution: q_uniform, min: 0, max: 1, q: 0.25}\n  n: {distribution: q_uniform, min: 2, max: 11, q: 3}\n");
        var trials = new GridSampler().Propose(sweep, 100);
        Assert.Equal(4 * 3, SearchSpace.TrialCount(sweep));
        Assert.Equal([0.0, 0.25, 0.5, 0.75], trials.Select(t => (double)t.Parameters["x"]).Distinct());
        Assert.Equal([2L, 5L, 8L], trials.Select(t => (long)t.Parameters["n"]).Distinct());
        Assert.Equal(SearchSpace.GridSize(sweep), trials.Select(t => ParamJson.Serialize(t.Parameters)).Distinct().Count());
    }

    [Theory]
    [InlineData("{type: hyperband, max_iter: 27, s: 2, eta: 3}", new[] { 3, 9 })]
    [InlineData("{type: hyperband, max_iter: 81, s: 3}", new[] { 3, 9, 27 })]
    [InlineData("{type: hyperband, max_iter: 10, s: 5, eta: 2}", new[] { 1, 2, 5 })]
    [InlineData("{type: hyperband, min_iter: 3, eta: 2}", new[] { 3, 6, 12, 24, 48 })]
    public void Hyperband_bands_are_computed_as_w_and_b_computes_them(string et, int[] bands)
    {
        var sweep = SweepParser.Parse(Program + "  x: {value: 1}\nearly_terminate: " + et + "\n");
        Assert.Equal(bands, sweep.EarlyTerminate!.Bands(upTo: 50));
    }

    [Theory]
    [InlineData("{type: hyperband, min_iter: 3, max_iter: 27, s: 2}", "early_terminate", "exactly one of min_iter")]
    [InlineData("{type: hyperband, eta: 3}", "early_terminate", "exactly one of min_iter")]
    [InlineData("{type: hyperband, max_iter: 27}", "early_terminate.s", "max_iter needs s")]
    [InlineData("{type: hyperband, min_iter: 3, eta: 1}", "early_terminate.eta", "must be a number > 1 (got 1)")]
    [InlineData("{type: hyperband, min_iter: 3, eta: 0.5}", "early_terminate.eta", "must be a number > 1 (got 0.5)")]
    [InlineData("{type: hyperband, max_iter: 2, s: 1, eta: 3}", "early_terminate.max_iter", "no band")]
    [InlineData("{type: hyperband, min_iter: 3, strict: yes}", "early_terminate.strict", "must be true or false")]
    [InlineData("{type: median, min_iter: 3}", "early_terminate.min_iter", "belongs to type: hyperband")]
    [InlineData("{type: hyperband, min_iter: 3, warmup_epochs: 2}", "early_terminate.warmup_epochs", "belongs to type: median")]
    public void Hyperband_settings_are_checked_as_w_and_b_requires(string et, string key, string says)
    {
        var ex = Fails(Program + "  x: {value: 1}\nearly_terminate: " + et + "\n");
        Assert.Equal(key, ex.Key);
        Assert.Contains(says, ex.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Metric_goal_defaults_to_minimize_as_in_w_and_b_and_an_accuracy_without_goal_warns()
    {
        var sweep = SweepParser.Parse(Program + "  x: {value: 1}\nmetric: {name: val_acc}\n");
        Assert.Equal(("val_acc", "minimize"), (sweep.Metric, sweep.Goal));
        Assert.Contains("write goal: maximize", Assert.Single(sweep.Warnings).Message);
        Assert.Equal(("val_accuracy", "maximize"), (SweepParser.Parse(Program + "  x: {value: 1}\n").Metric, SweepParser.Parse(Program + "  x: {value: 1}\n").Goal));

        var builtIn = SweepParser.Parse("name: a\nmethod: random\nmodel: softmax\nparameters:\n  epochs: {value: 1}\nmetric: {name: train_loss, goal: minimize}\n");
        Assert.Equal(("train_loss", "minimize"), (builtIn.Metric, builtIn.Goal));
        Assert.Contains("(did you mean train_loss?)", Fails("name: a\nmethod: random\nmodel: softmax\nparameters:\n  epochs: {value: 1}\nmetric: {name: train_los}\n").Problem);
    }

    [Fact]
    public void Run_cap_is_the_budget_and_a_different_max_trials_is_refused()
    {
        Assert.Equal(7, SweepParser.Parse(Program.Replace("run_cap: 4000\n", "run_cap: 7\n", StringComparison.Ordinal) + "  x: {min: 0.0, max: 1}\n").Budget.MaxTrials);
        var ex = Fails(Program.Replace("run_cap: 4000\n", "run_cap: 7\nbudget: {max_trials: 8}\n", StringComparison.Ordinal) + "  x: {value: 1}\n");
        Assert.Equal(("run_cap", 4), (ex.Key, ex.Line));
        Assert.Contains("budget.max_trials (line 5) is 8", ex.Problem);
    }

    [Fact]
    public void Engine_device_and_the_bayes_block_are_read_and_checked()
    {
        var sweep = SweepParser.Parse("name: a\nmethod: bayes\nmodel: fc\nengine: torch\ndevice: cuda\nbayes: {startup_trials: 5, candidates: 48}\nparameters:\n  reg: {min: 0.0, max: 1}\n");
        Assert.Equal(("bayes", "torch", "cuda", 5, 48), (sweep.Method, sweep.Engine, sweep.Device, sweep.Bayes.StartupTrials, sweep.Bayes.Candidates));
        Assert.Equal(20, SearchSpace.TrialCount(sweep));
        Assert.True(SearchSpace.ProposesAsItGoes(sweep));
        Assert.Equal((5, 48), (SearchSpace.TpeOptionsOf(sweep).StartupTrials, SearchSpace.TpeOptionsOf(sweep).EiCandidates));
        Assert.Equal("bayes", SearchSpace.CreateSampler(sweep).Name);

        var ex = Fails("name: a\nmethod: random\nmodel: fc\nengine: nativ\ndevice: cuda\nparameters:\n  reg: {value: 1}\n");
        Assert.Equal(["engine", "device"], ex.Errors.Select(e => e.Key));
        Assert.EndsWith("(got nativ) (did you mean native?).", ex.Errors[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("cuda needs engine: torch", ex.Errors[1].Message, StringComparison.Ordinal);
        Assert.Contains("is used only by method: bayes", Assert.Single(SweepParser.Parse("name: a\nmethod: random\nmodel: fc\nbayes: {candidates: 8}\nparameters:\n  reg: {value: 1}\n").Warnings).Message);
    }

    [Fact]
    public void A_program_sweep_accepts_any_parameter_name_and_value_but_a_built_in_one_suggests_the_catalogue()
    {
        var sweep = SweepParser.Parse(Program + "  optimizer: {values: [adamw, lion]}\n  warmup-ratio: {value: '0.1'}\n");
        Assert.Equal("0.1", ((FixedValue)sweep.Parameters["warmup-ratio"]).Value);
        var ex = Fails("name: a\nmethod: random\nmodel: fc\nparameters:\n  learning_rat: {value: 1}\n  optimizer: {value: adam}\n");
        Assert.Equal(["parameters.learning_rat", "parameters.optimizer"], ex.Errors.Select(e => e.Key));
        Assert.Contains("(did you mean learning_rate?)", ex.Errors[0].Message);
        Assert.Contains("a sweep with a program: takes any name", ex.Errors[1].Message);
    }

    [Fact]
    public void Command_macros_build_argv_and_environment_as_the_w_and_b_agent_does()
    {
        var parameters = new Dictionary<string, object> { ["lr"] = 1e-5, ["epochs"] = 10L, ["amp"] = true, ["shuffle"] = false, ["opt"] = "adam", ["w"] = 0.001, ["x"] = 2.0 };
        var spec = new ProgramSpec { Program = "train.py", Env = new Dictionary<string, string> { ["SEED"] = "4" } };
        var (argv, env) = spec.Build(parameters, "/tmp/args.json");
        Assert.Equal(["/usr/bin/env", "python", "train.py", "--lr=1e-05", "--epochs=10", "--amp=True", "--shuffle=False", "--opt=adam", "--w=0.001", "--x=2.0"], argv);
        Assert.Equal("4", env["SEED"]);

        spec = spec with { Command = ["${interpreter}", "${program}", "${args_no_hyphens}", "${args_no_boolean_flags}", "--seed=${envvar:SEED}", "${args_json}", "${args_json_file}"] };
        (argv, _) = spec.Build(new Dictionary<string, object> { ["a.b"] = 1L, ["amp"] = true, ["off"] = false }, "/tmp/args.json", windows: true);
        Assert.Equal(["python", "train.py", "a.b=1", "amp=True", "off=False", "--a.b=1", "--amp", "--seed=4", "{\"a.b\":1,\"amp\":true,\"off\":false}", "/tmp/args.json"], argv);

        // ${env} is nothing on Windows; ${interpreter} is nothing for a program that is not Python.
        Assert.Equal(["run.sh", "--k=v"], new ProgramSpec { Program = "run.sh" }.Build(new Dictionary<string, object> { ["k"] = "v" }, "f", windows: true).Argv);
    }

    [Theory]
    [InlineData(1e-5, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(123456.789, "123456.789")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(-2.5e-7, "-2.5e-07")]
    [InlineData(0.1, "0.1")]
    [InlineData(3.0, "3.0")]
    [InlineData(0.0, "0.0")]
    [InlineData(1.5e-300, "1.5e-300")]
    [InlineData(0.30000000000000004, "0.30000000000000004")]
    public void Floats_are_written_as_python_writes_them(double value, string text) => Assert.Equal(text, ProgramSpec.PythonText(value));

    [Fact]
    public void Every_new_field_round_trips_through_the_stored_json()
    {
        foreach (var file in Directory.GetFiles(WandbFilesTests.FindWandb(), "*.yaml"))
        {
            var text = File.ReadAllText(file);
            var parsed = SweepParser.Parse(text, file);
            var read = SweepJson.Deserialize(SweepJson.Serialize(parsed), text);
            Assert.Equal(SweepJson.Serialize(parsed), SweepJson.Serialize(read));
            Assert.Equal((parsed.Project, parsed.Entity, parsed.Engine, parsed.Device, parsed.Bayes, parsed.EarlyTerminate, parsed.Budget), (read.Project, read.Entity, read.Engine, read.Device, read.Bayes, read.EarlyTerminate, read.Budget));
            Assert.Equal(parsed.Program is null, read.Program is null);
            if (parsed.Program is { } p)
            {
                Assert.Equal((p.Program, p.WorkDir, p.TimeoutSeconds), (read.Program!.Program, read.Program.WorkDir, read.Program.TimeoutSeconds));
                Assert.Equal(p.Command, read.Program.Command);
                Assert.Equal(p.Env, read.Program.Env);
            }

            Assert.Equal(parsed.Warnings, read.Warnings);
            var sampler = new RandomSampler();
            Assert.Equal(sampler.Propose(parsed, 30).Select(t => ParamJson.Serialize(t.Parameters)), sampler.Propose(read, 30).Select(t => ParamJson.Serialize(t.Parameters)));
        }
    }

    [Fact]
    public void A_format_1_document_is_still_read_and_its_log_uniform_keeps_its_old_meaning()
    {
        const string Old = """
            {"format":1,"name":"old","description":null,"method":"random","metric":"val_accuracy","goal":"maximize","seed":3,
            "data":{"dataset":"cifar10","path":null,"train_size":49000,"val_size":1000,"test_size":1000,"dev_size":0,"subtract_mean":true,"bias_column":false},
            "budget":{"max_trials":20,"max_concurrent":null,"retries":2},"early_terminate":{"type":"median","warmup_epochs":1,"min_trials":3},
            "parameters":[{"name":"model","value":"softmax"},{"name":"learning_rate","distribution":"log_uniform","min":1.0E-7,"max":1.0E-6,"q":null}],
            "conditions":[]}
            """;
        var sweep = SweepJson.Deserialize(Old, "name: old\n");
        Assert.Equal((Distribution.LogUniformValues, 1e-7, 1e-6), (((Distribution)sweep.Parameters["learning_rate"]).Kind, ((Distribution)sweep.Parameters["learning_rate"]).Min, ((Distribution)sweep.Parameters["learning_rate"]).Max));
        Assert.Equal(("native", "cpu", null, EarlyTerminate.Median), (sweep.Engine, sweep.Device, sweep.Program, sweep.EarlyTerminate!.Type));
        Assert.All(new RandomSampler().Propose(sweep, 100), t => Assert.InRange((double)t.Parameters["learning_rate"], 1e-7, 1e-6));
    }

    [Fact]
    public void The_best_trial_is_chosen_by_the_sweeps_metric_and_goal()
    {
        static TrialRecord T(int n, TrialState state, double? val, double? train) =>
            new(n, "s", n, "{}", 0, state, 1, null, 0, null, 3, val, train, null, null, null);

        TrialRecord[] trials = [T(0, TrialState.Completed, 0.4, 0.9), T(1, TrialState.Completed, 0.5, 0.6), T(2, TrialState.Pruned, 0.9, 0.95), T(3, TrialState.Completed, 0.5, 0.3), T(4, TrialState.Completed, null, null)];
        Assert.Equal(1, StudySelection.Best(trials)!.Number);
        Assert.Equal(0, StudySelection.Best(trials, "train_accuracy", "maximize")!.Number);
        Assert.Equal(3, StudySelection.Best(trials, "train_accuracy", "minimize")!.Number);

        // A metric the record does not hold comes from the caller (e.g. the last epoch's loss); NaN is never best.
        var loss = new Dictionary<int, double> { [0] = 0.7, [1] = double.NaN, [3] = 0.9, [4] = 0.2 };
        Assert.Equal(4, StudySelection.Best(trials, "train_loss", "minimize", t => loss.TryGetValue(t.Number, out var l) ? l : null)!.Number);
        Assert.Equal(3, StudySelection.Best(trials, "train_loss", "maximize", t => loss.TryGetValue(t.Number, out var l) ? l : null)!.Number);
        Assert.Null(StudySelection.Best(trials, "val_loss", "minimize"));
        Assert.Equal("lowest train_loss among completed trials; ties go to the lowest trial number", StudySelection.RuleFor("train_loss", "minimize"));
    }

    [Theory]
    [InlineData("learnin_rate", "learning_rate")]
    [InlineData("epoch", "epochs")]
    [InlineData("baches", null)]
    [InlineData("LEARNING_RATE", "learning_rate")]
    [InlineData("momentun", "momentum")]
    public void Did_you_mean_finds_the_nearest_known_word_only_when_it_is_close(string word, string? expected) =>
        Assert.Equal(expected, Suggest.Closest(word, Hyperparameters.Known.Keys));
}
