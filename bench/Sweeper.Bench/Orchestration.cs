using System.Diagnostics;
using System.Text.Json;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Engine.Training;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Bench;

/// <summary>
/// Orchestration overhead through the SQLite store with trials that do no training: creating a 10,000-trial grid
/// study, claiming + reporting one epoch (with a small checkpoint) + completing trials with one and with two
/// workers (each on its own connection, as separate processes would be), and reading all finished trials back.
/// </summary>
public static class Orchestration
{
    public static async Task RunAsync(string[] args)
    {
        var trials = args.Length > 1 && args[0] == "--trials" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 10_000;
        var dir = Path.Combine(Path.GetTempPath(), "sweeper-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var workers in new[] { 1, 2 })
            {
                var path = Path.Combine(dir, $"w{workers}.db");
                var sweep = SweepParser.Parse($$"""
                    name: bench
                    method: grid
                    model: softmax
                    parameters:
                      learning_rate: {distribution: int_uniform, min: 1, max: {{trials}}}
                      epochs: {value: 1}
                    budget: {max_trials: {{trials}}}
                    """);
                await using var store = await SqliteTrialStore.OpenAsync(path);
                var create = Stopwatch.StartNew();
                await new Coordinator(store, sweep, (_, _, _) => (0, 0), Logger.None).EnsureStudyAsync();
                create.Stop();

                var stores = new List<ITrialStore>();
                for (var i = 0; i < workers; i++)
                {
                    stores.Add(await SqliteTrialStore.OpenAsync(path));
                }

                var run = Stopwatch.StartNew();
                await Task.WhenAll(stores.Select((s, i) => Task.Run(() =>
                    new Worker(s, new NoTraining(), new WorkerOptions { Id = $"bench-{i}", Study = "bench", ExitWhenDone = true, Poll = TimeSpan.FromMilliseconds(1) }, Logger.None)
                        .RunAsync(CancellationToken.None))));
                run.Stop();

                var read = Stopwatch.StartNew();
                var all = await store.GetTrialsAsync("bench");
                read.Stop();
                var counts = await store.CountStatesAsync("bench");
                foreach (var s in stores)
                {
                    await s.DisposeAsync();
                }

                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    bench = "orchestration_sqlite",
                    workers,
                    trials,
                    completed = counts.Completed,
                    create_study_seconds = Math.Round(create.Elapsed.TotalSeconds, 3),
                    trials_per_second = Math.Round(counts.Completed / run.Elapsed.TotalSeconds, 1),
                    read_all_trials_ms = Math.Round(read.Elapsed.TotalMilliseconds, 1),
                    rows_read = all.Count,
                    durability = "WAL, synchronous=NORMAL (commits survive a process crash)",
                    optuna_reference_trials_per_second = workers == 1 ? 57 : 65,
                }));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Reports one epoch with a 1 KiB checkpoint and completes.</summary>
    private sealed class NoTraining : ITrialRunner
    {
        private static readonly byte[] _checkpoint = new byte[1024];

        public TrialRunResult Run(TrialAssignment trial, byte[]? checkpoint, Func<EpochMetrics, Func<byte[]>, bool> onEpoch, CancellationToken cancellationToken)
        {
            onEpoch(new EpochMetrics(1, 1, 2.3, 0.1, 0.1, 1e-3, 0), () => _checkpoint);
            return new TrialRunResult(TrialState.Completed, 0.1, 0.1, 1, null);
        }
    }
}
