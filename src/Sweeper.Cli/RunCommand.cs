using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog;
using Spectre.Console;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Cli;

public static partial class SweepCommands
{
    /// <summary>
    /// <c>sweeper run FILE</c>: the main job. Hosts an Orleans silo in this process with one training slot per core,
    /// opens the study through its coordinator grain (created, or resumed when it exists), shows live progress until the
    /// study closes, and prints the trials by validation accuracy and the best trial's test accuracy. Ctrl-C stops cleanly
    /// (the slots hand their trials back); running the same command again resumes.
    /// </summary>
    private static Command Run()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML), e.g. sweeps/quickstart.yaml." };
        var slots = SlotsOption(Environment.ProcessorCount, "Training slots in this process (trials trained at once). Default: one per core.");
        var store = StoreOption();
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder. Default: the sweep file's data.path, $SWEEPER_DATA, the cache, then a download." };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object (progress goes to stderr)." };
        var cluster = new SiloFlags(defaultPort: 0);
        var command = new Command("run", "Run a sweep: an Orleans silo in this process (coordinator grain and training slots) on the embedded store, or joining a cluster's store.")
        {
            file, slots, store, data, json,
        };
        cluster.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var sweep = ParseSweep(parse.GetValue(file)!);
            if (sweep is null)
            {
                return 2;
            }

            if (!SiloFlags.SlotsValid(parse.GetValue(slots)))
            {
                return 2;
            }

            // A program's trials need neither our engine nor CIFAR-10.
            var program = sweep.Program is not null;
            if (!program && !EngineReady())
            {
                return 1;
            }

            var asJson = parse.GetValue(json);
            var address = AbsoluteStore(StoreAddress(parse, store));
            if (cluster.Settings(parse) is not { } flags)
            {
                return 2;
            }

            if (!TrainableHere(sweep, parse.GetValue(file)!, address, flags))
            {
                return 2;
            }

            string dataDir;
            try
            {
                dataDir = program ? "(none: trials run " + sweep.Program!.Program + ")" : await DataCommand.ResolveOrDownloadAsync(parse.GetValue(data)?.FullName ?? sweep.Data.Path, ct,
                    parse.GetValue(data) is null && sweep.Data.Path is not null ? $"{parse.GetValue(file)}: data.path" : "--data");
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Log.Error("{Message}", e.Message);
                return 1;
            }

            await using var trialStore = await TrialStores.OpenAsync(address, cancellationToken: ct, say: m => Log.Information("{Message}", m), forWriting: true);
            using var trainer = new TrialTrainer(dataDir);

            var settings = flags with { Slots = parse.GetValue(slots) };
            using var silo = SweeperSilo.Build(trialStore, new SolverTrialRunner(trainer), settings, Log.Logger);
            var clock = Stopwatch.StartNew();
            var finalBefore = 0;
            try
            {
                await StartSiloAsync(silo, ct);
                Log.Information("Store {Store}; silo with {Slots} training slot(s); data {Data}", TrialStores.Redact(address), settings.Slots, dataDir);
                await OpenStudyAsync(silo, sweep, parse.GetValue(file)!.ToString());
                // A resumed study: the time said at the end is this run's, and the trials it did not train are said too.
                finalBefore = (await trialStore.CountStatesAsync(sweep.Name, ct)).Final;
                await ShowProgressAsync(trialStore, sweep.Name, asJson, ct);
            }
            catch (StudyConflictException e)
            {
                Log.Error("{Message}", e.Message);
                await StopSiloAsync(silo);
                return 2;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine();
                Log.Warning("Stopping: the slots hand their trials back; run the same command again to resume.");
                await StopSiloAsync(silo);
                return 130;
            }

            await StopSiloAsync(silo);
            var result = await trialStore.GetResultAsync(sweep.Name, CancellationToken.None);
            var trials = await trialStore.GetTrialsAsync(sweep.Name, CancellationToken.None);
            var counts = await trialStore.CountStatesAsync(sweep.Name, CancellationToken.None);
            var record = (await trialStore.GetStudyAsync(sweep.Name, CancellationToken.None))!;
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(Report.Summary(record, counts, trials, result), _json));
            }
            else
            {
                Console.Write(Report.TrialTable(trials, top: 20));
                if (trials.Count > 20)
                {
                    Console.WriteLine($"({trials.Count - 20} more: sweeper results {sweep.Name})");
                }

                var resumed = finalBefore > 0 ? $" (this run; {finalBefore} of the trials were final before it, from an earlier run)" : "";
                Console.WriteLine($"Study {sweep.Name}: {Report.Counts(counts, record.TrialCount)} in {clock.Elapsed.TotalSeconds:F0} s{resumed}");
                PrintBest(result, trials);
            }

            return NoneCompleted(sweep.Name, result) ? 1 : 0;
        });
        return command;
    }

    /// <summary>
    /// Creates or resumes the study through its coordinator grain (the grain, not this process, creates the trials). The
    /// grain may be on a silo that has just died (killed, cut off): the call fails until the cluster declares it dead and
    /// the grain re-activates elsewhere, a few seconds; so it is tried again for up to a minute.
    /// </summary>
    private static async Task<StudyRecord> OpenStudyAsync(IHost silo, SweepDefinition sweep, string file)
    {
        var grain = silo.Services.GetRequiredService<IGrainFactory>().Study(sweep.Name);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            try
            {
                return (await grain.OpenAsync(sweep.SourceText, file)).Get(sweep.Name);
            }
            catch (Exception e) when (e is SiloUnavailableException or TimeoutException or OrleansMessageRejectionException && DateTime.UtcNow < deadline)
            {
                Log.Warning("The study's coordinator grain did not answer ({Reason}); trying again while the cluster moves it", e.GetType().Name);
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }
    }

    /// <summary>
    /// True, after saying so, when the study closed without a completed trial (every one failed, diverged or was
    /// pruned): the command then exits with status 1, so that a script or a batch job sees that it produced nothing.
    /// </summary>
    private static bool NoneCompleted(string study, StudyResult? result)
    {
        if (result is null || result.BestTrialNumber is not null)
        {
            return false;
        }

        Log.Error("Study {Study} closed without a completed trial; the reasons: sweeper results {Study} --columns number,state,reason", study, study);
        return true;
    }

    /// <summary>
    /// False (after saying why, exit 2) when no trial of <paramref name="sweep"/> could train on this silo and, on the
    /// embedded store, no other silo would come to train it: a program that cannot start here (missing, not executable,
    /// its folder missing), or device: cuda without GPU slots. On a cluster's store the same is a warning: the workers
    /// may have what this machine lacks. Checked before the data is fetched and the study created.
    /// </summary>
    private static bool TrainableHere(SweepDefinition sweep, FileInfo file, string address, SiloSettings flags)
    {
        var embedded = SqliteFile(address) is not null;
        var problems = ProgramTrialRunner.StartProblems(sweep, file.FullName).Select(p => $"{p.Key}: {p.Message}").ToList();
        if (sweep.Device == "cuda" && flags.GpuSlots == 0)
        {
            problems.Add(embedded
                ? "device: cuda trains on GPU slots, and this silo has none; give --gpu-slots N (one per GPU; it needs a usable CUDA runtime), or device: cpu"
                : "device: cuda trains on GPU slots, and this silo has none: its trials wait for a worker started with --gpu-slots");
        }

        foreach (var problem in problems)
        {
            if (embedded)
            {
                Console.Error.WriteLine($"error: {file}: {problem}");
            }
            else
            {
                Log.Warning("{File}: {Problem} (on this machine)", file.ToString(), problem);
            }
        }

        return !embedded || problems.Count == 0;
    }

    /// <summary>
    /// Starts the silo. Stopped (Ctrl-C, SIGTERM) while it starts: cancelled, as if it had started (the caller stops it).
    /// Its port taken by another process: an error naming the port and the flag, not Orleans' start-up failure.
    /// </summary>
    private static async Task StartSiloAsync(IHost silo, CancellationToken ct)
    {
        var endpoints = silo.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Orleans.Configuration.EndpointOptions>>().Value;
        var portInUse = new CliException($"the silo port {endpoints.SiloPort} is in use on this machine (another silo, or another program, listens there); "
            + "give another with --silo-port, or --silo-port 0 for a free one");
        if (PortHeld(endpoints.SiloListeningEndpoint ?? new System.Net.IPEndPoint(endpoints.AdvertisedIPAddress, endpoints.SiloPort)))
        {
            // Orleans binds its port for reuse: a second silo on a port a running one listens on would start, and the
            // cluster would then declare the running one dead (a newer generation of the same address). Refused first.
            throw portInUse;
        }

        try
        {
            await silo.StartAsync(ct);
        }
        catch (Exception e) when (ct.IsCancellationRequested && e is not OutOfMemoryException)
        {
            throw new OperationCanceledException("stopped while the silo started", e, ct);
        }
        catch (Exception e) when (SweeperSilo.IsPortInUse(e))
        {
            // Taken between the probe and Orleans' bind.
            await StopSiloAsync(silo);
            throw portInUse;
        }
    }

    /// <summary>
    /// True when a socket listens on <paramref name="endpoint"/> already. The probe sets SO_REUSEADDR alone (not .NET's
    /// ReuseAddress, which adds SO_REUSEPORT on Linux): connections of a silo that just stopped, left in TIME_WAIT, do
    /// not count; a listener does, whatever options it set.
    /// </summary>
    private static bool PortHeld(System.Net.IPEndPoint endpoint)
    {
        if (endpoint.Port == 0)
        {
            return false;
        }

        using var probe = new System.Net.Sockets.Socket(endpoint.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        try
        {
            if (OperatingSystem.IsLinux())
            {
                probe.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
            }

            probe.Bind(endpoint);
            return false;
        }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            return true;
        }
    }

    private static async Task StopSiloAsync(IHost silo)
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await silo.StopAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
            Log.Warning("The silo did not stop within 30 s; its trials are taken over when its lease runs out.");
        }
        catch (InvalidOperationException e)
        {
            // Stopped before it had started (Ctrl-C during start-up, or its port taken): there is nothing to hand back.
            Log.Debug("The silo was not running: {Message}", e.Message);
        }
    }

    private static Option<int> SlotsOption(int defaultValue, string description) =>
        new("--slots", "--workers") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>"#3 ep 4 val_accuracy 0.412; #5 ep 2 val_accuracy 0.3": the running trials with their latest epoch and its value of the sweep's metric.</summary>
    private static async Task<string> RunningAsync(ITrialStore store, IReadOnlyList<TrialRecord> trials, string metric, CancellationToken ct)
    {
        var parts = new List<string>();
        foreach (var t in trials.Where(t => t.State == TrialState.Running).Take(4))
        {
            var last = (await store.GetEpochsAsync(t.Id, ct)).LastOrDefault();
            parts.Add(last is null ? $"#{t.Number} starting" : $"#{t.Number} ep {last.Epoch} {metric} {Report.Short(last.ValueOf(metric))}");
        }

        return parts.Count == 0 ? "-" : string.Join("; ", parts);
    }

    /// <summary>
    /// A read of the store that rides out an outage (PostgreSQL restarted, the network down for a while): said once when
    /// it starts and once when it ends, retried every 2 s meanwhile, as the silos' own writes are. The study goes on; the
    /// process that shows it does not give up on it.
    /// </summary>
    private static async Task<T> Patiently<T>(Func<Task<T>> read, CancellationToken ct)
    {
        var outage = new Outage();
        while (true)
        {
            try
            {
                var result = await read();
                if (outage.Succeeded() is { } lasted)
                {
                    Log.Information("The store is reachable again (after {Seconds:F0} s)", lasted.TotalSeconds);
                }

                return result;
            }
            catch (StoreUnavailableException e)
            {
                // Said at the outage's start only, whatever words the later failures have.
                if (!outage.Ongoing)
                {
                    Log.Warning("The store is unreachable ({Message}); waiting for it to come back", e.Message);
                }

                outage.Failed(e.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
        }
    }

    /// <summary>
    /// Follows the study in the store until it is closed. In a terminal: a live bar, with log lines printed above it
    /// (see <see cref="LiveConsole"/>); otherwise one plain line whenever the counts or the best change (and every 30 s).
    /// </summary>
    private static async Task ShowProgressAsync(ITrialStore store, string study, bool asJson, CancellationToken ct)
    {
        Task<(StateCounts Counts, IReadOnlyList<TrialRecord> Trials, bool Closed)> Poll() => Patiently(async () =>
            (await store.CountStatesAsync(study, ct), await store.GetTrialsAsync(study, ct), await store.GetResultAsync(study, ct) is not null), ct);

        // The study's planned trials (Bayesian search stores them one by one) and its metric, for the best so far.
        var record = await store.GetStudyAsync(study, ct);
        var planned = record?.TrialCount ?? 0;
        (TrialRecord? Best, string Metric) BestOf(IReadOnlyList<TrialRecord> trials) => record is null ? (StudySelection.Best(trials), "val_accuracy") : Report.Best(record, trials);
        string Shown(TrialRecord? best, string metric) => best is null ? "-" : $"trial {best.Number} {metric} {Report.Short(StudySelection.RecordedValue(best, metric))}";

        var interactive = !asJson && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        if (interactive)
        {
            using var live = LiveConsole.Begin();
            await AnsiConsole.Progress().AutoClear(true).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async ctx =>
                {
                    var bar = ctx.AddTask("trials");
                    while (true)
                    {
                        var (c, trials, closed) = await Poll();
                        bar.MaxValue = Math.Max(Math.Max(c.Total, planned), 1);
                        bar.Value = c.Final;
                        var (best, metric) = BestOf(trials);
                        var width = Math.Max(20, AnsiConsole.Profile.Width - 40);
                        var text = $"{c.Completed} done {c.Running} running {c.Pending} pending {(c.Paused > 0 ? $"{c.Paused} paused " : "")}{c.Pruned} pruned {c.Diverged + c.Failed} failed | best {(best is null ? "-" : $"#{best.Number} {Report.Short(StudySelection.RecordedValue(best, metric))}")} | {await Patiently(() => RunningAsync(store, trials, metric, ct), ct)}";
                        bar.Description = Markup.Escape(text.Length > width ? text[..(width - 1)] + "…" : text);
                        if (closed)
                        {
                            bar.Value = bar.MaxValue;
                            return;
                        }

                        await Task.Delay(500, ct);
                    }
                });
            return;
        }

        var lastLine = "";
        var lastPrint = DateTime.MinValue;
        while (true)
        {
            var (c, trials, closed) = await Poll();
            if (closed)
            {
                return;
            }

            var (best, metric) = BestOf(trials);
            // A line when the counts or the best change, and every 30 s otherwise (with the running trials' epochs).
            var line = $"{Report.Counts(c, planned)}; best so far: {Shown(best, metric)}";
            if (line != lastLine || DateTime.UtcNow - lastPrint > TimeSpan.FromSeconds(30))
            {
                Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss} progress] {line}; running: {await Patiently(() => RunningAsync(store, trials, metric, ct), ct)}");
                lastLine = line;
                lastPrint = DateTime.UtcNow;
            }

            await Task.Delay(1000, ct);
        }
    }
}
