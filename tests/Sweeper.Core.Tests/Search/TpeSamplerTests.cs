using Sweeper.Core.Search;
using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests.Search;

public class TpeSamplerTests
{
    private static readonly ParameterSpace _space = new(
        [
            new("learning_rate", SearchDimension.Of(new DimensionSpec(DistributionKinds.LogUniformValues, 1e-5, 1e-1))),
            new("hidden_size", SearchDimension.Of(new DimensionSpec(DistributionKinds.IntUniform, 10, 200, 10))),
            new("update_rule", SearchDimension.Of(new DimensionSpec(DistributionKinds.Categorical, Values: ["sgd", "adam", "rmsprop"]))),
            new("dropout", SearchDimension.Of(new DimensionSpec(DistributionKinds.QUniform, 0, 0.5, 0.1))),
            new("batch_size", new ConstantDimension(100L)),
        ],
        []);

    /// <summary>A made-up loss with its best at learning rate 1e-3, hidden 120, adam, dropout 0.2.</summary>
    private static double Loss(IReadOnlyDictionary<string, object> p)
    {
        var lr = Math.Log10(ParamValue.AsDouble(p["learning_rate"])) + 3;
        var h = (ParamValue.AsDouble(p["hidden_size"]) - 120) / 100;
        var rule = (string)p["update_rule"] == "adam" ? 0 : 0.5;
        var d = (ParamValue.AsDouble(p["dropout"]) - 0.2) * 2;
        return (lr * lr) + (h * h) + rule + (d * d);
    }

    private static List<Observation> Study(TpeSampler tpe, ParameterSpace space, int trials, ulong seed, Func<IReadOnlyDictionary<string, object>, double> loss, Goal goal = Goal.Minimize)
    {
        var history = new List<Observation>();
        for (var n = 0; n < trials; n++)
        {
            var p = tpe.Propose(space, history, n, seed, goal);
            history.Add(new Observation(n, p, TrialOutcome.Complete, loss(p)));
        }

        return history;
    }

    private static string Json(IReadOnlyDictionary<string, object> p) => ParamJson.Serialize(p);

    [Fact]
    public void A_resumed_study_proposes_exactly_what_an_uninterrupted_one_did()
    {
        var tpe = new TpeSampler();
        var run = Study(tpe, _space, 40, seed: 77, Loss);

        // Resume at every point: the history as a store would give it back (parameters through JSON, in any order), to a
        // fresh sampler.
        var shuffle = new Rng(5);
        for (var n = 0; n < run.Count; n++)
        {
            var stored = run.Take(n).Select(o => o with { Parameters = ParamJson.Deserialize(Json(o.Parameters)) }).ToArray();
            var order = Enumerable.Range(0, stored.Length).ToArray();
            shuffle.Shuffle(order);
            var resumed = new TpeSampler().Propose(_space, [.. order.Select(i => stored[i])], n, 77, Goal.Minimize);
            Assert.Equal(Json(run[n].Parameters), Json(resumed));
        }

        // Another seed gives other proposals; every value lies in its domain; the constant stays.
        var other = Study(tpe, _space, 40, seed: 78, Loss);
        Assert.NotEqual(run.Select(o => Json(o.Parameters)), other.Select(o => Json(o.Parameters)));
        Assert.All(run, o =>
        {
            Assert.InRange((double)o.Parameters["learning_rate"], 1e-5, 1e-1);
            Assert.Equal(0, (long)o.Parameters["hidden_size"] % 10);
            Assert.Contains((string)o.Parameters["update_rule"], new[] { "sgd", "adam", "rmsprop" });
            Assert.Equal(100L, o.Parameters["batch_size"]);
        });
    }

    [Fact]
    public void Start_up_trials_are_random_and_the_model_starts_after_ten_finished_trials()
    {
        var tpe = new TpeSampler();
        var run = Study(tpe, _space, 11, seed: 3, Loss);
        // The same parameters with other values: nothing changes before 10 finished trials ...
        var scrambled = run.Select((o, i) => o with { Value = 1000.0 - i }).ToList();
        for (var n = 0; n < 10; n++)
        {
            Assert.Equal(Json(run[n].Parameters), Json(tpe.Propose(_space, scrambled.Take(n).ToList(), n, 3, Goal.Minimize)));
        }

        // ... and with 10 the values matter (the good trials differ, so do l and g).
        var withModel = Enumerable.Range(10, 10).Select(n => Json(tpe.Propose(_space, run.Take(10).ToList(), n, 3, Goal.Minimize)));
        var withScrambled = Enumerable.Range(10, 10).Select(n => Json(tpe.Propose(_space, scrambled.Take(10).ToList(), n, 3, Goal.Minimize)));
        Assert.NotEqual(withModel, withScrambled);

        // A larger start-up keeps it random for longer.
        var patient = new TpeSampler(new TpeOptions { StartupTrials = 20 });
        Assert.Equal(
            Json(patient.Propose(_space, run.Take(10).ToList(), 10, 3, Goal.Minimize)),
            Json(patient.Propose(_space, scrambled.Take(10).ToList(), 10, 3, Goal.Minimize)));
    }

    [Fact]
    public void Maximizing_a_value_proposes_what_minimizing_its_negative_does()
    {
        var tpe = new TpeSampler();
        var run = Study(tpe, _space, 30, seed: 9, Loss);
        var negated = run.Select(o => o with { Value = -o.Value }).ToList();
        for (var n = 30; n < 40; n++)
        {
            Assert.Equal(Json(tpe.Propose(_space, run, n, 9, Goal.Minimize)), Json(tpe.Propose(_space, negated, n, 9, Goal.Maximize)));
        }

        // Maximizing the loss itself proposes something else.
        Assert.NotEqual(
            Enumerable.Range(30, 10).Select(n => Json(tpe.Propose(_space, run, n, 9, Goal.Minimize))),
            Enumerable.Range(30, 10).Select(n => Json(tpe.Propose(_space, run, n, 9, Goal.Maximize))));
    }

    [Fact]
    public void Failed_trials_are_ignored_and_pruned_ones_count_as_finished()
    {
        var tpe = new TpeSampler();
        var run = Study(tpe, _space, 25, seed: 4, Loss);
        var rng = new Rng(8);
        var failed = Enumerable.Range(100, 5).Select(n => new Observation(n, _space.Parameters.ToDictionary(p => p.Name, p => p.Dimension.SamplePrior(rng)), TrialOutcome.Failed)).ToList();
        var complete = run.Concat([new Observation(105, run[0].Parameters, TrialOutcome.Complete, double.NaN)]).ToList(); // NaN: as failed
        for (var n = 200; n < 205; n++)
        {
            Assert.Equal(Json(tpe.Propose(_space, run, n, 4, Goal.Minimize)), Json(tpe.Propose(_space, [.. run, .. failed], n, 4, Goal.Minimize)));
            Assert.Equal(Json(tpe.Propose(_space, run, n, 4, Goal.Minimize)), Json(tpe.Propose(_space, complete, n, 4, Goal.Minimize)));
        }

        // Nine complete and one pruned trial make ten finished: the model starts.
        var nine = run.Take(9).ToList();
        var pruned = new Observation(9, run[9].Parameters, TrialOutcome.Pruned, 5.0, Epoch: 2);
        Assert.NotEqual(
            Json(tpe.Propose(_space, nine, 10, 4, Goal.Minimize)),
            Json(tpe.Propose(_space, [.. nine, pruned], 10, 4, Goal.Minimize)));
    }

    [Fact]
    public void The_good_trials_are_the_best_tenth_and_pruned_ones_fill_in_by_epochs_then_value()
    {
        static Observation T(int n, TrialOutcome outcome, double? value = null, int epoch = 0) => new(n, new Dictionary<string, object>(), outcome, value, epoch);
        var tpe = new TpeSampler(new TpeOptions { GammaFraction = 0.5 });
        Observation[] trials =
        [
            T(0, TrialOutcome.Complete, 5), T(1, TrialOutcome.Pruned, 9, 4), T(2, TrialOutcome.Complete, 3), T(3, TrialOutcome.Pruned, 1, 2),
            T(4, TrialOutcome.Pruned, 7, 4), T(5, TrialOutcome.Running), T(6, TrialOutcome.Failed), T(7, TrialOutcome.Complete, null),
        ];

        // 5 finished (3 pruned): ceil(2.5) = 3 good = both complete ones, then the pruned one that got furthest (epoch 4)
        // with the better value (7 beats 9 when minimizing). The running trial joins the bad ones; failed ones are nowhere.
        var (good, bad, finished) = tpe.Split(trials, Goal.Minimize);
        Assert.Equal(5, finished);
        Assert.Equal([0, 2, 4], good.Select(t => t.Number));
        Assert.Equal([1, 3, 5], bad.Select(t => t.Number));

        // Maximizing, 9 beats 7; without the constant liar the running trial is left out.
        var (goodMax, badMax, _) = new TpeSampler(new TpeOptions { GammaFraction = 0.5, ConstantLiar = false }).Split(trials, Goal.Maximize);
        Assert.Equal([0, 1, 2], goodMax.Select(t => t.Number));
        Assert.Equal([3, 4], badMax.Select(t => t.Number));

        // Default gamma: min(ceil(n / 10), 25).
        Assert.Equal([0, 1, 1, 2, 10, 25, 25], new[] { 0, 1, 10, 11, 100, 250, 1000 }.Select(new TpeOptions().GoodCount));
    }

    [Fact]
    public void With_the_constant_liar_a_point_that_is_already_running_is_not_proposed_again()
    {
        // One integer parameter 0..20, loss |x - 10|, every point tried once: the good trials are 10 and 9.
        var space = new ParameterSpace([new("x", SearchDimension.Of(new DimensionSpec(DistributionKinds.IntUniform, 0, 20)))], []);
        var history = Enumerable.Range(0, 21).Select(x => new Observation(x, new Dictionary<string, object> { ["x"] = (long)x }, TrialOutcome.Complete, Math.Abs(x - 10.0))).ToList();
        var tpe = new TpeSampler();
        var honest = new TpeSampler(new TpeOptions { ConstantLiar = false });
        const int Number = 21;
        var first = (long)tpe.Propose(space, history, Number, 1, Goal.Minimize)["x"];
        Assert.InRange(first, 8, 12);

        // Workers already train that point: the liar counts them as bad, so TPE moves elsewhere; without it, it repeats.
        var running = Enumerable.Range(100, 3).Select(n => new Observation(n, new Dictionary<string, object> { ["x"] = first }, TrialOutcome.Running)).ToList();
        Assert.NotEqual(first, (long)tpe.Propose(space, [.. history, .. running], Number, 1, Goal.Minimize)["x"]);
        Assert.Equal(first, (long)honest.Propose(space, [.. history, .. running], Number, 1, Goal.Minimize)["x"]);

        // Workers asking in turn, each earlier proposal running: the liar spreads them over the good region (it makes a
        // running point less attractive, it does not forbid it), where without it they would pile onto the best point.
        List<long> Batch(TpeSampler sampler)
        {
            var proposals = new List<long>();
            var now = new List<Observation>(history);
            for (var n = 21; n < 27; n++)
            {
                var x = (long)sampler.Propose(space, now, n, 1, Goal.Minimize)["x"];
                proposals.Add(x);
                now.Add(new Observation(n, new Dictionary<string, object> { ["x"] = x }, TrialOutcome.Running));
            }

            return proposals;
        }

        var spread = Batch(tpe);
        Assert.True(spread.Distinct().Count() >= 4, string.Join(", ", spread));
        Assert.True(spread.GroupBy(x => x).Max(g => g.Count()) < Batch(honest).GroupBy(x => x).Max(g => g.Count()));
    }

    [Fact]
    public void A_conditional_parameter_is_fitted_on_the_trials_that_have_it()
    {
        // hidden_size exists only for model fc; the best fc trials have hidden_size near 180.
        var sweep = SweepParser.Parse("""
            name: c
            method: random
            parameters:
              model: {values: [softmax, fc]}
              learning_rate: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
            conditions:
              - when: {model: fc}
                parameters:
                  hidden_size: {distribution: int_uniform, min: 10, max: 200, q: 10}
            budget: {max_trials: 100}
            seed: 5
            """, "c.yaml");
        var space = ParameterSpace.Of(sweep);
        static double Loss(IReadOnlyDictionary<string, object> p) =>
            (string)p["model"] == "fc" ? Math.Abs(ParamValue.AsDouble(p["hidden_size"]) - 180) / 100 : 1.5;
        var tpe = new TpeSampler();
        var run = Study(tpe, space, 60, 5, Loss);

        Assert.All(run, o => Assert.Equal((string)o.Parameters["model"] == "fc", o.Parameters.ContainsKey("hidden_size")));
        var late = run.Skip(30).ToList();
        Assert.True(late.Count(o => (string)o.Parameters["model"] == "fc") >= 24, "TPE should prefer the better model");
        var hidden = late.Where(o => o.Parameters.ContainsKey("hidden_size")).Select(o => ParamValue.AsDouble(o.Parameters["hidden_size"])).ToList();
        Assert.True(SamplerBenchmark.Median(hidden) >= 150, $"median hidden_size {SamplerBenchmark.Median(hidden)}");

        // Trials whose hidden_size this domain cannot hold (another block's strings, out-of-range numbers) are skipped.
        var odd = run.Take(30).Select((o, i) => o.Parameters.ContainsKey("hidden_size") && i % 2 == 0
            ? o with { Parameters = new Dictionary<string, object>(o.Parameters) { ["hidden_size"] = i % 4 == 0 ? "wide" : 5000L } }
            : o).ToList();
        var p = tpe.Propose(space, odd, 30, 5, Goal.Minimize);
        Assert.True(!p.ContainsKey("hidden_size") || (long)p["hidden_size"] is >= 10 and <= 200);
    }

    [Fact]
    public void A_categorical_parameter_learns_which_value_is_best()
    {
        var space = new ParameterSpace(
            [
                new("rule", SearchDimension.Of(new DimensionSpec(DistributionKinds.Categorical, Values: ["sgd", "momentum", "adam", "rmsprop"]))),
                new("noise", SearchDimension.Of(new DimensionSpec(DistributionKinds.Uniform, 0, 1))),
            ],
            []);
        var tpe = new TpeSampler();
        var run = Study(tpe, space, 40, 21, p => ((string)p["rule"] == "adam" ? 0 : 1) + (0.1 * (double)p["noise"]));
        // Random search would pick adam a quarter of the time; after its 10 random start-up trials TPE mostly does.
        var late = run.Skip(10).Select(o => (string)o.Parameters["rule"]).ToList();
        Assert.True(late.Count(r => r == "adam") >= 18, string.Join(", ", late));
    }

    [Theory]
    [InlineData(-1, 24, 1.0, 0.1)]
    [InlineData(10, 0, 1.0, 0.1)]
    [InlineData(10, 24, -1.0, 0.1)]
    [InlineData(10, 24, 1.0, 0.0)]
    [InlineData(10, 24, 1.0, 1.5)]
    public void Settings_tpe_cannot_work_with_are_refused(int startup, int candidates, double priorWeight, double gamma)
    {
        var options = new TpeOptions { StartupTrials = startup, EiCandidates = candidates, PriorWeight = priorWeight, GammaFraction = gamma };
        Assert.StartsWith("TPE needs", Assert.Throws<ArgumentException>(() => new TpeSampler(options)).Message);
    }

    [Fact]
    public void The_isampler_adapter_proposes_a_batch_of_distinct_numbered_trials()
    {
        var sweep = SamplerBenchmark.Sweep(SamplerBenchmark.Branin, 3);
        var history = new BayesSampler().Propose(sweep, 12).Select(t => new FinishedTrial(t.Parameters, SamplerBenchmark.Branin.Evaluate([(double)t.Parameters["x0"], (double)t.Parameters["x1"]]))).ToList();
        var batch = new BayesSampler().Propose(sweep, 4, history, firstNumber: 12);
        Assert.Equal([12, 13, 14, 15], batch.Select(t => t.Number));
        Assert.Equal(4, batch.Select(t => Json(t.Parameters)).Distinct().Count());
        Assert.Equal(batch.Select(t => SearchSpace.TrialSeed(3, t.Number)), batch.Select(t => t.Seed));
        Assert.Equal(batch.Select(t => Json(t.Parameters)), new BayesSampler().Propose(sweep, 4, history, firstNumber: 12).Select(t => Json(t.Parameters)));
    }

    [Fact]
    public void Multivariate_tpe_is_deterministic_and_keeps_conditional_parameters_independent()
    {
        var sweep = SweepParser.Parse("""
            name: m
            method: random
            parameters:
              model: {values: [softmax, fc]}
              learning_rate: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-1}
              batch_size: {value: 100}
            conditions:
              - when: {model: fc}
                parameters:
                  hidden_size: {distribution: int_uniform, min: 10, max: 200, q: 10}
            seed: 8
            """, "m.yaml");
        var space = ParameterSpace.Of(sweep);
        static double Loss(IReadOnlyDictionary<string, object> p) =>
            Math.Abs(Math.Log10(ParamValue.AsDouble(p["learning_rate"])) + 2) + ((string)p["model"] == "fc" ? Math.Abs(ParamValue.AsDouble(p["hidden_size"]) - 100) / 100 : 1);
        var multivariate = new TpeSampler(new TpeOptions { Multivariate = true });
        var run = Study(multivariate, space, 40, 8, Loss);
        Assert.Equal(run.Select(o => Json(o.Parameters)), Study(new TpeSampler(new TpeOptions { Multivariate = true }), space, 40, 8, Loss).Select(o => Json(o.Parameters)));
        Assert.NotEqual(run.Select(o => Json(o.Parameters)), Study(new TpeSampler(), space, 40, 8, Loss).Select(o => Json(o.Parameters)));
        Assert.All(run, o =>
        {
            Assert.Equal(100L, o.Parameters["batch_size"]);
            Assert.Equal((string)o.Parameters["model"] == "fc", o.Parameters.ContainsKey("hidden_size"));
        });
        // The learning rate settles near its best, 1e-2.
        Assert.InRange(SamplerBenchmark.Median([.. run.Skip(20).Select(o => Math.Log10((double)o.Parameters["learning_rate"]))]), -2.5, -1.5);
    }

    [Theory]
    [InlineData("branin", false)]
    [InlineData("hartmann6", false)]
    [InlineData("branin", true)]
    [InlineData("hartmann6", true)]
    public void Over_many_seeds_tpe_finds_better_values_than_random_search(string name, bool multivariate)
    {
        // The benchmark (bench samplers) runs 30 seeds; 16 keep this test quick and still separate the two clearly.
        var f = name == "branin" ? SamplerBenchmark.Branin : SamplerBenchmark.Hartmann6;
        const int Seeds = 16, Trials = 100;
        var random = Enumerable.Range(0, Seeds).Select(s => SamplerBenchmark.BestRandom(f, (ulong)s, Trials)).ToList();
        var tpe = Enumerable.Range(0, Seeds).Select(s => SamplerBenchmark.BestTpe(f, (ulong)s, Trials, new TpeOptions { Multivariate = multivariate })).ToList();
        var (medianRandom, medianTpe) = (SamplerBenchmark.Median(random), SamplerBenchmark.Median(tpe));
        Assert.True(medianTpe < medianRandom, $"{name}: median best TPE {medianTpe}, random {medianRandom}");
        Assert.True(tpe.Count(v => v < medianRandom) >= Seeds * 3 / 4, $"{name}: TPE beat random's median on only {tpe.Count(v => v < medianRandom)} of {Seeds} seeds");
        Assert.All(tpe, v => Assert.True(v >= f.Minimum - 1e-9));
    }
}
