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
/// Orchestration overhead with trials that do no training (claim, report one epoch with a 1 KiB checkpoint,
/// complete): creating a 10,000-trial grid study, trials per second with 1, 2 and 4 workers (each its own
/// connection, as separate processes would be) through SQLite and PostgreSQL, reading all finished trials back,
/// and on PostgreSQL 32 worker processes at once, checking afterwards that no trial was ever claimed twice.
/// </summary>
public static class Orchestration
{
    public static async Task RunAsync(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var trials = int.Parse(Arg("--trials") ?? "10000", System.Globalization.CultureInfo.InvariantCulture);
        var processes = int.Parse(Arg("--processes") ?? "32", System.Globalization.CultureInfo.InvariantCulture);
        var dir = Path.Combine(Path.GetTempPath(), "sweeper-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var workers in new[] { 1, 2, 4 })
            {
                await MeasureAsync("sqlite", "sqlite:" + Path.Combine(dir, $"w{workers}.db"), trials, workers);
            }

            if (args.Contains("--no-postgres"))
            {
                return;
            }

            var durable = args.Contains("--durable");
            var server = durable ? Storage.Tests.PostgresServer.StartDurable() : Storage.Tests.PostgresServer.Shared;
            Func<string> database = Arg("--postgres") is { } url ? () => url : server.CreateDatabase;
            Server = Arg("--postgres") is not null ? "the server given with --postgres"
                : durable ? "temporary PostgreSQL 15 on 127.0.0.1 with durable defaults (fsync, synchronous_commit on)"
                : "temporary PostgreSQL 15 on 127.0.0.1 (fsync=off, synchronous_commit=off)";
            foreach (var workers in new[] { 1, 2, 4 })
            {
                await MeasureAsync("postgres", database(), trials, workers);
            }

            await MeasureProcessesAsync(database(), trials, processes);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Server { get; set; } = "";

    private static SweepDefinition Sweep(int trials) => SweepParser.Parse($$"""
        name: bench
        method: grid
        model: softmax
        parameters:
          learning_rate: {distribution: int_uniform, min: 1, max: {{trials}}}
          epochs: {value: 1}
        budget: {max_trials: {{trials}}}
        """);

    private static async Task MeasureAsync(string backend, string address, int trials, int workers)
    {
        await using var store = await TrialStores.OpenAsync(address);
        var create = Stopwatch.StartNew();
        await new Coordinator(store, Sweep(trials), (_, _, _) => (0, 0), Logger.None).EnsureStudyAsync();
        create.Stop();

        var stores = new List<ITrialStore>();
        for (var i = 0; i < workers; i++)
        {
            stores.Add(await TrialStores.OpenAsync(address));
        }

        var run = Stopwatch.StartNew();
        await Task.WhenAll(stores.Select((s, i) => Task.Run(() => LightWorker(s, $"bench-{i}").RunAsync(CancellationToken.None))));
        run.Stop();

        var read = Stopwatch.StartNew();
        var all = await store.GetTrialsAsync("bench");
        read.Stop();
        foreach (var s in stores)
        {
            await s.DisposeAsync();
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "orchestration",
            store = backend,
            workers,
            trials,
            completed = all.Count(t => t.State == TrialState.Completed),
            claimed_twice = all.Count(t => t.Attempts != 1 || t.LeaseEpoch != 1),
            create_study_seconds = Math.Round(create.Elapsed.TotalSeconds, 3),
            trials_per_second = Math.Round(all.Count(t => t.State == TrialState.Completed) / run.Elapsed.TotalSeconds, 1),
            read_all_trials_ms = Math.Round(read.Elapsed.TotalMilliseconds, 1),
            optuna_reference_trials_per_second = backend == "sqlite" ? (workers == 1 ? 57 : 65) : (workers == 1 ? 56 : 81),
            store_settings = backend == "sqlite" ? "WAL, synchronous=NORMAL (commits survive a process crash)" : Server,
        }));
    }

    /// <summary><paramref name="processes"/> separate worker processes at once against one study.</summary>
    private static async Task MeasureProcessesAsync(string address, int trials, int processes)
    {
        await using var store = await TrialStores.OpenAsync(address);
        await new Coordinator(store, Sweep(trials), (_, _, _) => (0, 0), Logger.None).EnsureStudyAsync();
        var run = Stopwatch.StartNew();
        var children = Enumerable.Range(0, processes).Select(_ =>
        {
            var info = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            {
                info.ArgumentList.Add(typeof(Orchestration).Assembly.Location);
            }

            info.ArgumentList.Add("light-worker");
            info.ArgumentList.Add(address);
            info.ArgumentList.Add("bench");
            return Process.Start(info)!;
        }).ToList();
        foreach (var child in children)
        {
            await child.WaitForExitAsync();
        }

        run.Stop();
        var all = await store.GetTrialsAsync("bench");
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "orchestration_processes",
            store = "postgres",
            worker_processes = processes,
            trials,
            completed = all.Count(t => t.State == TrialState.Completed),
            claimed_twice = all.Count(t => t.Attempts != 1 || t.LeaseEpoch != 1),
            distinct_workers = all.Select(t => t.Owner).Distinct().Count(),
            failed_processes = children.Count(c => c.ExitCode != 0),
            trials_per_second_including_process_start = Math.Round(all.Count(t => t.State == TrialState.Completed) / run.Elapsed.TotalSeconds, 1),
            store_settings = Server,
        }));
    }

    /// <summary>One worker process of <see cref="MeasureProcessesAsync"/>.</summary>
    public static async Task LightWorkerAsync(string address, string study)
    {
        await using var store = await TrialStores.OpenAsync(address);
        await LightWorker(store, $"proc-{Environment.ProcessId}", study).RunAsync(CancellationToken.None);
    }

    private static Worker LightWorker(ITrialStore store, string id, string study = "bench") =>
        new(store, new NoTraining(), new WorkerOptions { Id = id, Study = study, ExitWhenDone = true, Poll = TimeSpan.FromMilliseconds(1) }, Logger.None);

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
