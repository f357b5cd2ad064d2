using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Serilog;
using Spectre.Console;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Cli;

public static partial class SweepCommands
{
    /// <summary>
    /// <c>sweeper run FILE</c>: the main job. Creates or resumes the study in the store, runs the coordinator here and
    /// N worker processes beside it (restarting any that die while work remains), shows live progress, and prints
    /// the trials by validation accuracy and the best trial's test accuracy. Ctrl-C stops cleanly; running the same
    /// command again resumes.
    /// </summary>
    private static Command Run()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML), e.g. sweeps/quickstart.yaml." };
        var workers = new Option<int>("--workers") { Description = "Worker processes on this machine. Default: one per core.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var store = StoreOption();
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder. Default: the sweep file's data.path, $SWEEPER_DATA, the cache, then a download." };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object (progress goes to stderr)." };
        var lease = new Option<double>("--lease-seconds") { Description = "Worker lease length; a vanished worker's trial is taken over after it.", DefaultValueFactory = _ => 30 };
        var command = new Command("run", "Run a sweep on this machine: the coordinator plus N worker processes on the embedded store.") { file, workers, store, data, json, lease };
        command.SetAction(async (parse, ct) =>
        {
            var sweep = ParseSweep(parse.GetValue(file)!);
            if (sweep is null)
            {
                return 2;
            }

            if (parse.GetValue(workers) < 1)
            {
                Log.Error("--workers must be at least 1");
                return 2;
            }

            var asJson = parse.GetValue(json);
            var address = AbsoluteStore(StoreAddress(parse, store));
            string dataDir;
            try
            {
                dataDir = await DataCommand.ResolveOrDownloadAsync(parse.GetValue(data)?.FullName ?? sweep.Data.Path, ct);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Log.Error("{Message}", e.Message);
                return 1;
            }

            await using var trialStore = await TrialStores.OpenAsync(address, cancellationToken: ct);
            var coordinator = new Coordinator(trialStore, sweep, LazyEvaluator(dataDir, ct), Log.Logger);
            try
            {
                await coordinator.EnsureStudyAsync(ct);
            }
            catch (StudyConflictException e)
            {
                Log.Error("{Message}", e.Message);
                return 2;
            }

            Log.Information("Store {Store}; {Workers} worker processes; data {Data}", address, parse.GetValue(workers), dataDir);
            var fleet = new WorkerFleet(address, sweep.Name, dataDir, parse.GetValue(workers), parse.GetValue(lease));
            var coordination = coordinator.RunAsync(ct);
            var clock = Stopwatch.StartNew();
            try
            {
                await ShowProgressAsync(trialStore, sweep.Name, coordination, fleet, asJson, ct);
                await coordination;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine();
                Log.Warning("Stopping: workers hand their trials back; run the same command again to resume.");
                await fleet.StopAsync(TimeSpan.FromSeconds(15), interrupted: true);
                return 130;
            }
            catch (FleetFailedException e)
            {
                Log.Error("{Message}", e.Message);
                await fleet.StopAsync(TimeSpan.FromSeconds(15));
                return 1;
            }

            await fleet.StopAsync(TimeSpan.FromSeconds(15));
            var result = await coordination;
            var trials = await trialStore.GetTrialsAsync(sweep.Name, CancellationToken.None);
            var counts = await trialStore.CountStatesAsync(sweep.Name, CancellationToken.None);
            var record = (await trialStore.GetStudyAsync(sweep.Name, CancellationToken.None))!;
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(Report.Summary(record, counts, trials, result), _json));
            }
            else
            {
                AnsiConsole.Write(Report.TrialTable(trials, top: 20));
                if (trials.Count > 20)
                {
                    Console.WriteLine($"({trials.Count - 20} more: sweeper results {sweep.Name})");
                }

                Console.WriteLine($"Study {sweep.Name}: {Report.Counts(counts)} in {clock.Elapsed.TotalSeconds:F0} s");
                PrintBest(result, trials);
            }

            return 0;
        });
        return command;
    }

    /// <summary>"#3 ep 4 val 0.412; #5 ep 2 val 0.300": the running trials with their latest epoch and validation accuracy.</summary>
    private static async Task<string> RunningAsync(ITrialStore store, IReadOnlyList<TrialRecord> trials, CancellationToken ct)
    {
        var parts = new List<string>();
        foreach (var t in trials.Where(t => t.State == TrialState.Running).Take(4))
        {
            var last = (await store.GetEpochsAsync(t.Id, ct)).LastOrDefault();
            parts.Add(last is null ? $"#{t.Number} starting" : $"#{t.Number} ep {last.Epoch} val {Report.Acc(last.ValAccuracy)}");
        }

        return parts.Count == 0 ? "-" : string.Join("; ", parts);
    }

    private static async Task ShowProgressAsync(ITrialStore store, string study, Task coordination, WorkerFleet fleet, bool asJson, CancellationToken ct)
    {
        var interactive = !asJson && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        var lastLine = "";
        var lastPrint = DateTime.MinValue;
        async Task<(StateCounts Counts, IReadOnlyList<TrialRecord> Trials)> Poll()
        {
            fleet.Supervise();
            return (await store.CountStatesAsync(study, ct), await store.GetTrialsAsync(study, ct));
        }

        if (interactive)
        {
            await AnsiConsole.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var bar = ctx.AddTask("trials");
                    while (!coordination.IsCompleted)
                    {
                        var (c, trials) = await Poll();
                        bar.MaxValue = Math.Max(c.Total, 1);
                        bar.Value = c.Final;
                        var best = Coordinator.SelectBest(trials);
                        var running = await RunningAsync(store, trials, ct);
                        bar.Description = Markup.Escape($"{c.Completed} done {c.Running} running {c.Pending} pending {c.Pruned} pruned {c.Diverged + c.Failed} failed | best {(best is null ? "-" : $"#{best.Number} {Report.Acc(best.ValAccuracy)}")} | {running}");
                        await Task.WhenAny(coordination, Task.Delay(500, ct));
                        ct.ThrowIfCancellationRequested();
                    }

                    bar.Value = bar.MaxValue;
                });
            return;
        }

        while (!coordination.IsCompleted)
        {
            var (c, trials) = await Poll();
            var best = Coordinator.SelectBest(trials);
            // A line when the counts or the best change, and every 30 s otherwise (with the running trials' epochs).
            var line = $"{Report.Counts(c)}; best so far: {(best is null ? "-" : $"trial {best.Number} val acc {Report.Acc(best.ValAccuracy)}")}";
            if (line != lastLine || DateTime.UtcNow - lastPrint > TimeSpan.FromSeconds(30))
            {
                Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss} progress] {line}; running: {await RunningAsync(store, trials, ct)}");
                lastLine = line;
                lastPrint = DateTime.UtcNow;
            }

            await Task.WhenAny(coordination, Task.Delay(1000, ct));
            ct.ThrowIfCancellationRequested();
        }
    }
}

/// <summary>Too many worker processes died right after starting: something is wrong beyond one trial.</summary>
public sealed class FleetFailedException(string message) : Exception(message);

/// <summary>The worker processes of <c>sweeper run</c>: started, restarted when they die while work remains, stopped with SIGTERM.</summary>
public sealed class WorkerFleet
{
    private readonly string[] _arguments;
    private readonly int _size;
    private readonly List<Process> _processes = [];
    private readonly Dictionary<int, DateTime> _started = [];
    private int _quickDeaths;

    public WorkerFleet(string store, string study, string dataDir, int size, double leaseSeconds)
    {
        _size = size;
        _arguments = ["worker", "--store", store, "--study", study, "--exit-when-done", "--data", dataDir, "--lease-seconds", leaseSeconds.ToString(CultureInfo.InvariantCulture)];
        for (var i = 0; i < size; i++)
        {
            Start();
        }
    }

    /// <summary>Replaces workers that died with a non-zero exit code (a crash or kill -9); workers that finished (exit 0) are not replaced.</summary>
    public void Supervise()
    {
        foreach (var p in _processes.ToList())
        {
            if (!p.HasExited)
            {
                continue;
            }

            _processes.Remove(p);
            var exitCode = p.ExitCode;
            if (exitCode != 0)
            {
                var quick = DateTime.UtcNow - _started.GetValueOrDefault(p.Id) < TimeSpan.FromSeconds(5);
                _quickDeaths = quick ? _quickDeaths + 1 : 0;
                if (_quickDeaths > 2 * _size + 2)
                {
                    throw new FleetFailedException($"worker processes keep dying right after start (last exit code {exitCode}); see their log lines above.");
                }

                Log.Warning("Worker process {Pid} died (exit code {Code}); starting another", p.Id, exitCode);
                Start();
            }

            p.Dispose();
        }
    }

    private void Start()
    {
        var (exe, prefix) = SelfCommand();
        var info = new ProcessStartInfo(exe) { UseShellExecute = false };
        foreach (var a in prefix.Concat(_arguments))
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info) ?? throw new FleetFailedException("could not start a worker process.");
        _started[process.Id] = DateTime.UtcNow;
        _processes.Add(process);
    }

    /// <summary>How to start this same program again: the apphost directly, or dotnet with the dll.</summary>
    public static (string Exe, string[] Prefix) SelfCommand()
    {
        var path = Environment.ProcessPath ?? "dotnet";
        var dll = typeof(WorkerFleet).Assembly.Location;
        return Path.GetFileNameWithoutExtension(path) == "dotnet" ? (path, [dll]) : (path, []);
    }

    /// <summary>
    /// Asks every worker to stop (SIGTERM: each hands its trial back), then kills those still running after
    /// <paramref name="grace"/>. After a Ctrl-C in a terminal the workers got the SIGINT too: they are given a moment
    /// to finish handing back before the SIGTERM, which a second signal would turn into an immediate stop.
    /// </summary>
    public async Task StopAsync(TimeSpan grace, bool interrupted = false)
    {
        if (interrupted)
        {
            var settle = DateTime.UtcNow + TimeSpan.FromSeconds(3);
            while (_processes.Any(p => !p.HasExited) && DateTime.UtcNow < settle)
            {
                await Task.Delay(100);
            }
        }

        foreach (var p in _processes.Where(p => !p.HasExited))
        {
            _ = Kill(p.Id, 15);
        }

        var deadline = DateTime.UtcNow + grace;
        foreach (var p in _processes)
        {
            var left = deadline - DateTime.UtcNow;
            using var cts = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero);
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
            }

            p.Dispose();
        }

        _processes.Clear();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
