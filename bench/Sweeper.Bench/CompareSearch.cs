using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Bench;

/// <summary>
/// The search methods compared on the real CIFAR-10 for the same budget of training epochs: random search, Bayesian
/// search (TPE) and Bayesian search with successive halving (ASHA, hyperband min_iter 1, eta 3), on the two-layer and
/// the fully-connected search spaces, for several seeds. Each sweep runs in a silo in this process on its own SQLite
/// store and is stopped once its trials have trained the budget's epochs (random and bayes plan exactly that many:
/// trials x epochs; with hyperband more trials are planned, since most stop at a rung). The best trial is chosen by
/// validation accuracy only and evaluated once on the test split. Prints one JSON line per sweep and one summary line
/// per space: mean best test accuracy per method, and the epochs each method needed to reach random search's best
/// validation accuracy (trials in the order they last stopped training, each counted then with all the epochs it trained
/// and its validation accuracy: a trial paused at a rung and promoted later counts when its last stint ended).
/// <code>bench compare-search [--spaces two_layer,fc] [--seeds 1,2,3] [--trials 20] [--epochs 10] [--methods random,bayes,bayes_hyperband] [--hyperband "min_iter: 1, eta: 3"] [--train-size 45000] [--slots 2] [--data DIR]</code>
/// </summary>
public static class CompareSearch
{
    public static async Task RunAsync(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        int Int(string name, int fallback) => Arg(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        var spaces = (Arg("--spaces") ?? "two_layer,fc").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var seeds = (Arg("--seeds") ?? "1,2,3").Split(',').Select(s => ulong.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var trials = Int("--trials", 20);
        var epochs = Int("--epochs", 10);
        var trainSize = Int("--train-size", 45_000);
        var slots = Int("--slots", Environment.ProcessorCount);
        var methods = (Arg("--methods") ?? "random,bayes,bayes_hyperband").Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (methods.FirstOrDefault(m => m is not ("random" or "bayes" or "bayes_hyperband")) is { } unknown)
        {
            Console.Error.WriteLine($"bench compare-search: --methods: unknown method '{unknown}' (random, bayes, bayes_hyperband)");
            Environment.Exit(2);
            return;
        }

        // ASHA's rungs: W&B's hyperband keys, as in a sweep file's early_terminate block.
        var hyperband = Arg("--hyperband") ?? "min_iter: 1, eta: 3";
        string data;
        try
        {
            // Found or refused here, before any sweep: trials without data would all fail, and the comparison mean nothing.
            data = Engine.Data.DataLocator.Resolve(Arg("--data"));
        }
        catch (DirectoryNotFoundException e)
        {
            Console.Error.WriteLine("bench compare-search: " + e.Message + " (or give --data DIR, or set SWEEPER_DATA)");
            Environment.Exit(2);
            return;
        }

        var budget = trials * epochs;
        var dir = Path.Combine(Path.GetTempPath(), "sweeper-compare-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        using var trainer = new TrialTrainer(data);
        try
        {
            foreach (var space in spaces)
            {
                var rows = new List<Row>();
                foreach (var seed in seeds)
                {
                    foreach (var method in methods)
                    {
                        var planned = method == "bayes_hyperband" ? trials * 4 : trials;
                        var text = SweepText(space, method, seed, planned, epochs, trainSize, hyperband);
                        var row = await RunSweepAsync(Path.Combine(dir, $"{space}-{method}-{seed}.db"), text, trainer, budget, slots);
                        row = row with { Space = space, Method = method, Seed = seed };
                        rows.Add(row);
                        Console.WriteLine(JsonSerializer.Serialize(new
                        {
                            bench = "compare-search", space, method, seed, budget_epochs = budget, epochs_spent = row.EpochsSpent, trials = row.Trials,
                            best_trial = row.BestTrial, best_val_accuracy = row.BestVal, test_accuracy = row.TestAccuracy, seconds = Math.Round(row.Seconds, 1),
                        }));
                    }
                }

                Console.WriteLine(JsonSerializer.Serialize(Summary(space, rows, budget, trainSize, hyperband)));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed record Row(string Space, string Method, ulong Seed, int Trials, int EpochsSpent, int? BestTrial, double? BestVal, double? TestAccuracy, double Seconds,
        IReadOnlyList<(int Epochs, double Val)> Timeline);

    private static object Summary(string space, List<Row> rows, int budget, int trainSize, string hyperband)
    {
        // Epochs a sweep needed to first reach (at least) the validation accuracy that random search of the same seed ended with.
        int? EpochsToReach(Row row, double target)
        {
            var spent = 0;
            var best = double.NegativeInfinity;
            foreach (var (e, v) in row.Timeline)
            {
                spent += e;
                best = Math.Max(best, v);
                if (best >= target)
                {
                    return spent;
                }
            }

            return null;
        }

        var methods = rows.Select(r => r.Method).Distinct().ToList();
        double MeanTest(string method) => rows.Where(r => r.Method == method && r.TestAccuracy is not null).Select(r => r.TestAccuracy!.Value).DefaultIfEmpty(double.NaN).Average();
        return new
        {
            bench = "compare-search-summary",
            space,
            budget_epochs = budget,
            train_size = trainSize,
            hyperband,
            seeds = rows.Select(r => r.Seed).Distinct().Count(),
            methods = methods.ToDictionary(m => m, m =>
            {
                var mine = rows.Where(r => r.Method == m).ToList();
                var reach = mine.Select(r => rows.SingleOrDefault(x => x.Seed == r.Seed && x.Method == "random")?.BestVal is { } target ? EpochsToReach(r, target) : null).ToList();
                return new
                {
                    mean_test_accuracy = Round(MeanTest(m)),
                    mean_best_val_accuracy = Round(mine.Where(r => r.BestVal is not null).Select(r => r.BestVal!.Value).DefaultIfEmpty(double.NaN).Average()),
                    mean_epochs_spent = Round(mine.Average(r => (double)r.EpochsSpent)),
                    epochs_to_reach_randoms_best = reach,
                };
            }),
            // The two claims, as measured: bayes beats random on mean test accuracy; bayes + hyperband reaches
            // random's best validation accuracy (of the same seed) with at most half the epochs random spent.
            bayes_beats_random_on_mean_test = MeanTest("bayes") > MeanTest("random"),
            hyperband_reaches_randoms_best_with_half_its_epochs = rows.Where(r => r.Method == "bayes_hyperband").Select(r =>
            {
                var random = rows.SingleOrDefault(x => x.Seed == r.Seed && x.Method == "random");
                return random?.BestVal is { } target && EpochsToReach(r, target) is { } spent && spent * 2 <= random.EpochsSpent;
            }).ToList(),
        };
    }

    private static double? Round(double v) => double.IsFinite(v) ? Math.Round(v, 4) : null;

    /// <summary>The space's parameters, with the method's method and early termination.</summary>
    private static string SweepText(string space, string method, ulong seed, int trials, int epochs, int trainSize, string hyperband)
    {
        var parameters = space switch
        {
            "two_layer" => """
                  model: {value: two_layer}
                  hidden_size: {values: [50, 100, 200, 300, 500]}
                  learning_rate: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}
                  reg: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0}
                  lr_decay: {distribution: uniform, min: 0.85, max: 1.0}
                """,
            "fc" => """
                  model: {value: fc}
                  update_rule: {value: adam}
                  normalization: {values: [batch, layer]}
                  hidden_sizes: {values: [[100, 100, 100, 100], [200, 200], [500], [300, 300, 300]]}
                  dropout: {distribution: uniform, min: 0.0, max: 0.6}
                  learning_rate: {distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}
                  reg: {distribution: log_uniform_values, min: 1.0e-6, max: 1.0e-2}
                """,
            _ => throw new ArgumentException($"--spaces: unknown space '{space}' (two_layer, fc)."),
        };
        var earlyTerminate = method == "bayes_hyperband" ? $"early_terminate: {{type: hyperband, {hyperband}}}" : "early_terminate: {type: none}";
        return $"""
            name: compare
            method: {(method == "random" ? "random" : "bayes")}
            metric: {"{"}name: val_accuracy, goal: maximize{"}"}
            parameters:
            {parameters}
              epochs: {"{"}value: {epochs}{"}"}
              batch_size: {"{"}value: 200{"}"}
            data: {"{"}train_size: {trainSize}, val_size: 5000, test_size: 10000{"}"}
            run_cap: {trials}
            {earlyTerminate}
            seed: {seed}
            """;
    }

    private static async Task<Row> RunSweepAsync(string path, string text, TrialTrainer trainer, int budget, int slots)
    {
        var clock = Stopwatch.StartNew();
        await using var store = await TrialStores.OpenAsync("sqlite:" + path);
        var settings = new SiloSettings { Slots = slots, SiloPort = 0 };
        var runner = new SolverTrialRunner(trainer);
        var silo = SweeperSilo.Build(store, runner, settings, Logger.None);
        await silo.StartAsync();
        try
        {
            var grains = (IGrainFactory)silo.Services.GetService(typeof(IGrainFactory))!;
            await grains.GetGrain<IStudyGrain>("compare").OpenAsync(text, "compare.yaml");
            while (await store.GetResultAsync("compare") is null && (await store.GetTrialsAsync("compare")).Sum(t => t.EpochsDone) < budget)
            {
                await Task.Delay(500);
            }
        }
        finally
        {
            await silo.StopAsync();
            silo.Dispose();
        }

        var sweep = SweepParser.Parse(text, "compare.yaml");
        var all = await store.GetTrialsAsync("compare");
        var result = await store.GetResultAsync("compare");
        var best = result?.BestTrialNumber is { } n ? all.Single(t => t.Number == n)
            : StudySelection.Best(all, sweep) ?? all.Where(t => t.ValAccuracy is not null).OrderByDescending(t => t.ValAccuracy).ThenBy(t => t.Number).FirstOrDefault();
        double? test = result?.TestAccuracy;
        if (test is null && best is not null && await store.GetCheckpointAsync(best.Id) is { } checkpoint)
        {
            // Stopped at the budget before the study closed: the chosen trial is evaluated here, once, as the coordinator would.
            test = runner.EvaluateOnTest(sweep, best, checkpoint.Data).Accuracy;
        }

        // When each trial last stopped training: at its last pause if it was never promoted after it (one ended at the
        // study's end without a promotion is stamped finished then, though it trained no more), else when it finished.
        var lastPause = (await store.GetEventsAsync("compare")).Where(e => e.TrialId is not null && e.Kind is "trial_paused" or "trial_promoted")
            .GroupBy(e => e.TrialId!.Value).Select(g => g.MaxBy(e => e.At)).Where(e => e.Kind == "trial_paused").ToDictionary(e => e.TrialId!.Value, e => e.At);
        var timeline = all.Where(t => t.EpochsDone > 0).OrderBy(t => lastPause.TryGetValue(t.Id, out var at) ? at : t.FinishedAt ?? DateTimeOffset.MaxValue).ThenBy(t => t.Number)
            .Select(t => (t.EpochsDone, t.ValAccuracy ?? 0)).ToList();
        return new Row("", "", 0, all.Count(t => t.EpochsDone > 0), all.Sum(t => t.EpochsDone), best?.Number, best?.ValAccuracy, test, clock.Elapsed.TotalSeconds, timeline);
    }
}
