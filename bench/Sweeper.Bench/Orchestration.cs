using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Bench;

/// <summary>
/// Orchestration overhead through the real runtime (an Orleans silo, the study and trial grains, the training slots)
/// with trials that do no training: each is claimed, reports one epoch with a 1 KiB checkpoint and completes. Trials per
/// second with 1, 2 and 4 slots on SQLite and PostgreSQL, from opening a 10,000-trial grid study until it closes, on a
/// warm silo (a first study of 12,000 trials, <c>--warmup N</c>, runs before); then
/// the failover time: two silo processes train slow trials, one is killed with SIGKILL, and the time until each of its
/// trials trains again on the other silo is measured.
/// </summary>
public static class Orchestration
{
    public static async Task RunAsync(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var trials = int.Parse(Arg("--trials") ?? "10000", System.Globalization.CultureInfo.InvariantCulture);
        int[] slotCounts = Arg("--slots") is { } only ? [int.Parse(only, System.Globalization.CultureInfo.InvariantCulture)] : [1, 2, 4];
        var failover = !args.Contains("--no-failover");
        // A silo runs for hours: it is measured warm. After 3,000 trials the JIT's tiering had not settled here (1,500
        // trials/s against 1,960 with tiering off and 1,850-2,050 after 12,000).
        var warmup = int.Parse(Arg("--warmup") ?? "12000", System.Globalization.CultureInfo.InvariantCulture);
        var dir = Path.Combine(Path.GetTempPath(), "sweeper-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var sqlite = !args.Contains("--no-sqlite");
            foreach (var slots in sqlite ? slotCounts : [])
            {
                await MeasureAsync("sqlite", "sqlite:" + Path.Combine(dir, $"s{slots}.db"), trials, slots, warmup);
            }

            if (failover && sqlite)
            {
                await FailoverAsync("sqlite", "sqlite:" + Path.Combine(dir, "failover.db"));
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
            foreach (var slots in slotCounts)
            {
                await MeasureAsync("postgres", database(), trials, slots, warmup, Arg("--postgres") is null ? server.CpuTime : null);
            }

            if (failover)
            {
                await FailoverAsync("postgres", database());
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Server { get; set; } = "";

    private static string SweepText(int trials, int epochs, string name = "bench") => $$"""
        name: {{name}}
        method: grid
        model: softmax
        parameters:
          learning_rate: {distribution: int_uniform, min: 1, max: {{trials}}}
          epochs: {value: {{epochs}}}
        budget: {max_trials: {{trials}}}
        """;

    private static async Task MeasureAsync(string backend, string address, int trials, int slots, int warmup, Func<TimeSpan>? serverCpu = null)
    {
        await using var store = await TrialStores.OpenAsync(address);
        var settings = new SiloSettings { Slots = slots, SiloPort = 0, Poll = TimeSpan.FromMilliseconds(2), IdleRecheck = TimeSpan.FromMilliseconds(50) };
        using var silo = SweeperSilo.Build(store, new NoTraining(TimeSpan.Zero), settings, Logger.None);
        await silo.StartAsync();
        var grains = silo.Services.GetRequiredService<IGrainFactory>();

        // A first study of its own lets the JIT's tiering settle (on a cold process, background recompilation takes a
        // third of the CPU for the first seconds, and methods run unoptimized code for longer).
        await grains.GetGrain<IStudyGrain>("warmup").OpenAsync(SweepText(warmup, 1, "warmup"), "warmup.yaml");
        while (await store.GetResultAsync("warmup") is null)
        {
            await Task.Delay(5);
        }

        var create = Stopwatch.StartNew();
        await grains.GetGrain<IStudyGrain>("bench").OpenAsync(SweepText(trials, 1), "bench.yaml");
        create.Stop();
        // CPU time per trial, of this process (the silo) and of the database server's processes: unlike the rate, it
        // stays meaningful when other work shares the machine's cores.
        var process = Process.GetCurrentProcess();
        var siloCpu = process.TotalProcessorTime;
        var dbCpu = serverCpu?.Invoke() ?? TimeSpan.Zero;
        var groupedBefore = (store as SqliteTrialStore)?.Grouped;
        var run = Stopwatch.StartNew();
        while (await store.GetResultAsync("bench") is null)
        {
            await Task.Delay(50); // a 50 ms granularity is under 1% of a run; polling the store more often costs its CPU
        }

        run.Stop();
        process.Refresh();
        siloCpu = process.TotalProcessorTime - siloCpu;
        var groupedAfter = (store as SqliteTrialStore)?.Grouped;
        dbCpu = (serverCpu?.Invoke() ?? TimeSpan.Zero) - dbCpu;
        await silo.StopAsync();
        var read = Stopwatch.StartNew();
        var all = await store.GetTrialsAsync("bench");
        read.Stop();
        var completed = all.Count(t => t.State == TrialState.Completed);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "orchestration",
            store = backend,
            slots,
            trials,
            completed,
            claimed_twice = all.Count(t => t.Attempts != 1 || t.LeaseToken != 1),
            create_study_seconds = Math.Round(create.Elapsed.TotalSeconds, 3),
            trials_per_second = Math.Round(completed / run.Elapsed.TotalSeconds, 1),
            warmup_trials = warmup,
            silo_cpu_us_per_trial = Math.Round(siloCpu.TotalMicroseconds / Math.Max(1, completed)),
            server_cpu_us_per_trial = serverCpu is null ? (double?)null : Math.Round(dbCpu.TotalMicroseconds / Math.Max(1, completed)),
            cores = Environment.ProcessorCount,
            target_trials_per_second = backend == "sqlite" ? 2000 : 1000,
            read_all_trials_ms = Math.Round(read.Elapsed.TotalMilliseconds, 1),
            // SQLite's group commit: the writes per transaction during the run (1.0: none shared one).
            sqlite_writes_per_commit = groupedBefore is { } b && groupedAfter is { } a && a.Groups > b.Groups
                ? Math.Round((double)(a.Writes - b.Writes) / (a.Groups - b.Groups), 2) : (double?)null,
            path = "silo in process: StudyGrain.NextTrial -> TrialGrain.Begin/Finish -> store (fenced writes; each 1-epoch trial's epoch and checkpoint are stored with its outcome in one commit)",
            store_settings = backend == "sqlite" ? "WAL, synchronous=NORMAL (commits survive a process crash)" : Server,
        }));
    }

    /// <summary>
    /// Three silo processes of one slot each (<c>bench silo ADDRESS</c>) and 2 slow trials (40 epochs of 0.25 s): once two
    /// silos train, one of them is killed with SIGKILL; the time from the kill until its trial trains again on the idle
    /// third silo (so the figure is detection and takeover, not waiting for a free slot).
    /// </summary>
    private static async Task FailoverAsync(string backend, string address)
    {
        await using var store = await TrialStores.OpenAsync(address);
        var processes = new List<Process> { StartSilo(address), StartSilo(address), StartSilo(address) };
        try
        {
            // The study is opened by a silo process; wait until both silos train a trial past its first epoch.
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            IReadOnlyList<TrialRecord> running = [];
            while (DateTime.UtcNow < deadline)
            {
                running = await store.GetStudyAsync("bench") is null ? [] : (await store.GetTrialsAsync("bench")).Where(t => t.State == TrialState.Running && t.EpochsDone >= 1).ToList();
                if (running.Select(t => Silo(t.Owner!)).Distinct().Count() == 2)
                {
                    break;
                }

                await Task.Delay(50);
            }

            if (running.Count < 2)
            {
                throw new InvalidOperationException("the silo processes did not start training; is the bench built?");
            }

            var victim = (await store.GetWorkersAsync()).First(w => w.Id == Silo(running[0].Owner!));
            var victimTrials = running.Where(t => Silo(t.Owner!) == victim.Id).Select(t => t.Number).ToHashSet();
            var killed = Stopwatch.StartNew();
            processes.Single(p => p.Id == victim.Pid).Kill();
            var resumed = new Dictionary<int, double>();
            while (resumed.Count < victimTrials.Count && killed.Elapsed < TimeSpan.FromMinutes(1))
            {
                foreach (var t in await store.GetTrialsAsync("bench"))
                {
                    if (victimTrials.Contains(t.Number) && !resumed.ContainsKey(t.Number) && t.State == TrialState.Running && t.Owner is { } o && Silo(o) != victim.Id)
                    {
                        resumed[t.Number] = killed.Elapsed.TotalSeconds;
                    }
                }

                await Task.Delay(20);
            }

            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "failover",
                store = backend,
                killed_silo_trials = victimTrials.Count,
                resumed = resumed.Count,
                seconds_from_kill_to_training_elsewhere = resumed.Values.Select(v => Math.Round(v, 2)).Order().ToArray(),
                max_seconds = resumed.Count == 0 ? (double?)null : Math.Round(resumed.Values.Max(), 2),
                target_seconds = 5,
                detection = "Orleans membership: probes of 1 s, 2 missed -> declared dead; the survivors expire the dead silo's leases at once",
            }));
        }
        finally
        {
            foreach (var p in processes.Where(p => !p.HasExited))
            {
                p.Kill();
            }
        }
    }

    private static string Silo(string owner) => owner[..owner.LastIndexOf('/')];

    private static Process StartSilo(string address)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            info.ArgumentList.Add(typeof(Orchestration).Assembly.Location);
        }

        info.ArgumentList.Add("silo");
        info.ArgumentList.Add(address);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>One silo process of <see cref="FailoverAsync"/>: a slot of slow trials; it opens the study too (a later open resumes it).</summary>
    public static async Task SiloAsync(string address)
    {
        await using var store = await TrialStores.OpenAsync(address);
        var settings = new SiloSettings { Slots = 1, SiloPort = 0 };
        using var silo = SweeperSilo.Build(store, new NoTraining(TimeSpan.FromMilliseconds(250)), settings, Logger.None);
        await silo.StartAsync();
        await silo.Services.GetRequiredService<IGrainFactory>().GetGrain<IStudyGrain>("bench").OpenAsync(SweepText(2, 40), "bench.yaml");
        while (await store.GetResultAsync("bench") is null)
        {
            await Task.Delay(200);
        }

        await silo.StopAsync();
    }

    /// <summary>
    /// Reports each of the trial's epochs (sleeping <paramref name="epoch"/> for each) with a 1 KiB checkpoint, and completes;
    /// the last epoch is announced as such, so it is stored with the outcome (a trial of N epochs takes N commits, not N + 1).
    /// </summary>
    private sealed class NoTraining(TimeSpan epoch) : ITrialRunner
    {
        private static readonly byte[] _checkpoint = new byte[1024];

        public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null)
        {
            var epochs = Convert.ToInt32(ParamJson.Deserialize(lease.ParametersJson)["epochs"], System.Globalization.CultureInfo.InvariantCulture);
            var start = checkpoint is null ? 0 : BitConverter.ToInt32(checkpoint);
            for (var e = start + 1; e <= epochs; e++)
            {
                cancellationToken.WaitHandle.WaitOne(epoch);
                cancellationToken.ThrowIfCancellationRequested();
                var done = e;
                if (!onEpoch(new EpochRecord(e, 2.3, 0.1, 0.1, 1e-3, epoch.TotalSeconds), () => [.. BitConverter.GetBytes(done), .. _checkpoint], last: e == epochs))
                {
                    return new TrialFinish(TrialState.Pruned, 0.1, 0.1, e, "stopped");
                }
            }

            return new TrialFinish(TrialState.Completed, 0.1, 0.1, epochs, null);
        }

        public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) => (0.1, 1000);
    }
}
