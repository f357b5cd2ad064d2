using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Serilog;
using Spectre.Console;
using Sweeper.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Cli;

/// <summary>run, worker, coordinator, validate, status and results.</summary>
public static partial class SweepCommands
{
    private static readonly JsonSerializerOptions _json = new() { WriteIndented = false, Converters = { new NonFiniteAsNull() } };

    /// <summary>validate --json: messages quote keys and values, so they are written readably (it is never inlined in HTML).</summary>
    private static readonly JsonSerializerOptions _readableJson = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Converters = { new NonFiniteAsNull() } };

    private static Option<string?> StoreOption() => new("--store")
    {
        Description = "Trial store address: sqlite:PATH (the embedded store, one machine), postgres://USER[:PASSWORD]@HOST[:PORT]/DB (a cluster; "
            + "the password may come from $SWEEPER_STORE_PASSWORD or $PGPASSWORD instead), or a Npgsql connection string (Host=...;Database=...). "
            + $"Default: $SWEEPER_STORE, else {TrialStores.DefaultAddress} (under the current folder).",
    };

    private static string? StoreAddress(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) ?? Environment.GetEnvironmentVariable("SWEEPER_STORE");

    /// <summary>sqlite: paths are made absolute so that worker processes open the same file wherever they start.</summary>
    private static string AbsoluteStore(string? address)
    {
        address ??= TrialStores.DefaultAddress;
        return SqliteFile(address) is { } file ? "sqlite:" + Path.GetFullPath(file) : address;
    }

    /// <summary>
    /// The file a <c>sqlite:PATH</c> address names, or null for any other address and for <c>sqlite:</c> with no path
    /// (left to <see cref="TrialStores"/>, which names the address and the form it expects).
    /// </summary>
    private static string? SqliteFile(string address) =>
        address.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) && address.Length > "sqlite:".Length ? address["sqlite:".Length..] : null;

    public static IEnumerable<Command> Create()
    {
        yield return Validate();
        yield return Run();
        yield return WorkerCommand();
        yield return CoordinatorCommand();
        yield return Status();
        yield return Results();
        yield return DashboardCommand();
    }

    private static Command DashboardCommand()
    {
        var store = StoreOption();
        var url = new Option<string>("--url") { Description = "Address to listen on. Binding anything but loopback requires --token.", DefaultValueFactory = _ => "http://127.0.0.1:5077" };
        var token = new Option<string?>("--token") { Description = "Access token every request must carry (Authorization: Bearer, or ?token=). Default: $SWEEPER_DASHBOARD_TOKEN." };
        var command = new Command("dashboard", "Serve the read-only JSON API (/api/...) and the live web pages over the store.") { store, url, token };
        command.SetAction(async (parse, ct) =>
        {
            var options = new Dashboard.DashboardOptions
            {
                Url = parse.GetValue(url)!,
                Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("SWEEPER_DASHBOARD_TOKEN"),
            };
            try
            {
                Dashboard.DashboardApp.Validate(options);
            }
            catch (ArgumentException e)
            {
                Log.Error("{Message}", e.Message);
                return 2;
            }

            // It only reads: a store that does not exist yet (a mistyped path) is an error, not a new empty store.
            await using var trialStore = await OpenExistingAsync(StoreAddress(parse, store), ct);
            if (trialStore is null)
            {
                return 1;
            }

            await using var app = Dashboard.DashboardApp.Build(trialStore, options);
            try
            {
                await app.StartAsync(ct);
            }
            catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse } || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException($"--url {options.Url}: that port is in use on this machine (another dashboard, or another program, listens there); give another, e.g. --url http://127.0.0.1:5078, or port 0 for a free one");
            }
            Log.Information("Dashboard on {Urls}{Token}", string.Join(", ", app.Urls), options.Token is null ? "" : " (token required)");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }

            await app.StopAsync(CancellationToken.None);
            return 0;
        });
        return command;
    }

    private static SweepDefinition? ParseSweep(FileInfo file)
    {
        try
        {
            return SweepParser.ParseFile(file.FullName == Path.GetFullPath(file.ToString()) ? file.ToString() : file.FullName);
        }
        catch (SweepFileException e)
        {
            foreach (var error in e.Errors)
            {
                Console.Error.WriteLine($"error: {error}");
            }

            return null;
        }
    }

    private static Command Validate()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML)." };
        var show = new Option<int>("--show") { Description = "How many parameter sets to print.", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print JSON: {file, ok, errors: [{line, column, key, message}], warnings: [...], trials, method, ...}." };
        var command = new Command("validate", "Check a sweep file: every error at once (file:line:column: key: problem), its warnings, its number of trials and the first parameter sets. Runs nothing.")
        {
            file, show, json,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(show) < 0)
            {
                Console.Error.WriteLine($"error: --show must be 0 or more (got {parse.GetValue(show)})");
                return 2;
            }

            var given = parse.GetValue(file)!;
            var path = given.FullName == Path.GetFullPath(given.ToString()) ? given.ToString() : given.FullName;
            SweepDefinition sweep;
            try
            {
                sweep = SweepParser.ParseFile(path);
            }
            catch (SweepFileException e)
            {
                if (parse.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(new { file = path, ok = false, errors = e.Errors.Select(Issue), warnings = Array.Empty<object>() }, _readableJson));
                }
                else
                {
                    foreach (var error in e.Errors)
                    {
                        Console.Error.WriteLine($"error: {error}");
                    }

                    Console.Error.WriteLine($"{e.Errors.Count} error{(e.Errors.Count == 1 ? "" : "s")} in {path}");
                }

                return 2;
            }

            // A program that cannot start here fails every trial one by one: said now (a warning, since a cluster's
            // workers may have what this machine lacks).
            sweep = sweep with { Warnings = [.. sweep.Warnings, .. ProgramTrialRunner.StartProblems(sweep, path).Select(p => new SweepFileIssue(path, 0, 0, p.Key, p.Message))] };
            var count = SearchSpace.TrialCount(sweep);

            // bayes (TPE) starts with random draws (its startup trials), so the first sets are shown as random ones.
            var sampler = sweep.Method == "bayes" ? new RandomSampler() : SearchSpace.CreateSampler(sweep);
            var first = sampler.Propose(sweep, (int)Math.Min(Math.Max(parse.GetValue(show), 0), count));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    file = path,
                    ok = true,
                    errors = Array.Empty<object>(),
                    warnings = sweep.Warnings.Select(Issue),
                    name = sweep.Name,
                    method = sweep.Method,
                    trials = count,
                    metric = sweep.Metric,
                    goal = sweep.Goal,
                    early_terminate = sweep.EarlyTerminate?.Type ?? "none",
                    bands = sweep.EarlyTerminate?.Bands(upTo: 10_000),
                    engine = sweep.Engine,
                    device = sweep.Device,
                    program = sweep.Program?.Program,
                    command = sweep.Program?.Command,
                    parameters = sweep.ParameterNames,
                    first = first.Select(t => new { number = t.Number, parameters = t.Parameters }),
                }, _readableJson));
                return 0;
            }

            var width = Report.TerminalWidth();
            Console.WriteLine($"{path}: study '{sweep.Name}', {sweep.Method} search, {count} trials");
            Console.WriteLine($"  metric: {sweep.Metric} ({sweep.Goal}); early stopping: {Stopping(sweep.EarlyTerminate)}");
            if (sweep.Program is { } program)
            {
                Console.WriteLine(Report.Wrap(["  program:", program.Program + ";", "command:", .. program.Command], width, "    "));
            }
            else
            {
                Console.WriteLine($"  engine: {sweep.Engine} on {sweep.Device}");
            }

            foreach (var warning in sweep.Warnings)
            {
                Console.WriteLine($"warning: {warning}");
            }

            var rows = first.Select(t => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?>(t.Parameters.Select(kv => KeyValuePair.Create(kv.Key, (object?)kv.Value))) { ["trial"] = t.Number }).ToList();
            if (rows.Count > 0)
            {
                Console.WriteLine(sweep.Method == "bayes" ? "first trials (random draws, as bayes starts):" : "first trials:");
                Console.Write(Report.Table(rows, ["trial", .. sweep.ParameterNames.Where(n => rows.Any(r => r.ContainsKey(n)))], width, "(validate --json has all)"));
            }

            return 0;
        });
        return command;
    }

    private static object Issue(SweepFileIssue i) => new { line = i.Line, column = i.Column, key = i.Key, message = i.Message };

    private static string Stopping(EarlyTerminate? et) => et switch
    {
        { Type: EarlyTerminate.Median } m => $"median (warm-up {m.WarmupEpochs}, min {m.MinTrials} trials)",
        { Type: EarlyTerminate.Hyperband } h => $"hyperband (eta {Report.Number(h.Eta)}{(h.Strict ? ", strict" : "")}, bands at epochs {string.Join(", ", h.Bands(upTo: 1000).Take(8))}{(h.Bands(upTo: 1000).Count > 8 ? ", ..." : "")})",
        _ => "off",
    };

    private static (TrialRecord? Best, string Metric) BestOf(StudyRecord record, IReadOnlyList<TrialRecord> trials) => Report.Best(record, trials);

    private static Command WorkerCommand()
    {
        var store = StoreOption();
        var study = new Option<string?>("--study") { Description = "Only this study's trials. Default: every open study, oldest first." };
        var exit = new Option<bool>("--exit-when-done") { Description = "Exit (status 0) once --study is closed; waits for it to be created first." };
        var wait = new Option<double>("--wait-for-study") { Description = "With --exit-when-done: how long to wait for --study to be created before failing (status 1), in seconds.", DefaultValueFactory = _ => 600 };
        var slots = SlotsOption(Environment.ProcessorCount, "Training slots of this silo (trials trained at once). Default: one per core.");
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder. Default: $SWEEPER_DATA, then the cache, then a download." };
        var cluster = new SiloFlags(defaultPort: 11111);
        var command = new Command("worker", "Run a silo that joins the store's cluster and trains trials in its slots until stopped (it goes on serving after a study closes, unless --exit-when-done). Exits 75 when the cluster declared it dead (it was cut off or frozen): restart it.") { store, study, exit, wait, slots, data };
        cluster.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var name = parse.GetValue(study);
            if (parse.GetValue(exit) && name is null)
            {
                Console.Error.WriteLine("error: --exit-when-done needs --study");
                return 2;
            }

            if (!(parse.GetValue(wait) is >= 0 and <= 7 * 86_400))
            {
                Console.Error.WriteLine($"error: --wait-for-study must be between 0 and 604800 seconds (a week; got {parse.GetValue(wait).ToString(System.Globalization.CultureInfo.InvariantCulture)})");
                return 2;
            }

            if (parse.GetResult(wait) is { Implicit: false } && !parse.GetValue(exit))
            {
                Console.Error.WriteLine("error: --wait-for-study only applies with --exit-when-done (a worker without it serves until stopped)");
                return 2;
            }

            if (!SiloFlags.SlotsValid(parse.GetValue(slots)))
            {
                return 2;
            }

            if (cluster.Settings(parse) is not { } flags)
            {
                return 2;
            }

            var settings = flags with { Slots = parse.GetValue(slots), Study = name };
            if (!EngineReady())
            {
                return 1;
            }

            var dir = await DataCommand.ResolveOrDownloadAsync(parse.GetValue(data)?.FullName, ct);
            var address = AbsoluteStore(StoreAddress(parse, store));
            await using var trialStore = await TrialStores.OpenAsync(address, cancellationToken: ct, say: m => Log.Information("{Message}", m), forWriting: true);
            using var trainer = new TrialTrainer(dir);
            using var silo = SweeperSilo.Build(trialStore, new SolverTrialRunner(trainer), settings, Log.Logger);
            try
            {
                await StartSiloAsync(silo, ct);
                Log.Information("Store {Store}; data {Data}", TrialStores.Redact(address), dir);
                if (parse.GetValue(exit))
                {
                    if (!await WaitForStudyAsync(trialStore, name!, TimeSpan.FromSeconds(parse.GetValue(wait)), ct))
                    {
                        await StopSiloAsync(silo);
                        return 1;
                    }

                    while (await ClosedAsync(trialStore, name!, ct) is not true)
                    {
                        await Task.Delay(1000, ct);
                    }

                    Log.Information("Study {Study} is closed; this worker leaves", name);
                }
                else
                {
                    if (name is not null && await trialStore.GetStudyAsync(name, ct) is null)
                    {
                        // Said once: its slots wait for it quietly (a misspelled --study would wait for ever).
                        Log.Information("Study {Study} does not exist yet; this worker waits for it (start it with `sweeper coordinator FILE`, or check --study)", name);
                    }

                    await Task.Delay(Timeout.Infinite, ct);
                }
            }
            catch (OperationCanceledException)
            {
                Log.Information("Stopping: the slots hand their trials back");
            }

            await StopSiloAsync(silo);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// The training engine can run here (OpenBLAS found); logs which kernel it runs and why (it decides speed and
    /// bit-reproducibility), or else what to install. Checked before a silo offers slots.
    /// </summary>
    private static bool EngineReady()
    {
        try
        {
            Engine.Kernels.Blas.EnsureLoaded();
            Log.Information("Native engine: {Blas}", Engine.Kernels.Blas.Describe());
            return true;
        }
        catch (Engine.Kernels.BlasUnavailableException e)
        {
            Log.Error("{Message}", e.Message);
            return false;
        }
    }

    /// <summary>
    /// Whether the study is closed, or null while the store cannot be reached: a worker cut off from the store keeps
    /// its silo up (Orleans' membership decides whether it was declared dead, and then it exits for its supervisor).
    /// </summary>
    private static async Task<bool?> ClosedAsync(ITrialStore store, string study, CancellationToken ct)
    {
        try
        {
            return await store.GetResultAsync(study, ct) is not null;
        }
        catch (StoreUnavailableException e)
        {
            Log.Warning("Cannot tell whether study {Study} is closed: {Message}; asking again", study, e.Message);
            return null;
        }
    }

    /// <summary>Waits until <paramref name="study"/> exists in the store; false (with a clear error) once <paramref name="patience"/> has passed.</summary>
    private static async Task<bool> WaitForStudyAsync(ITrialStore store, string study, TimeSpan patience, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + patience;
        var said = false;
        while (await store.GetStudyAsync(study, ct) is null)
        {
            if (DateTime.UtcNow > deadline)
            {
                Log.Error("No study named {Study} appeared in the store within {Seconds:F0} s; start it with `sweeper coordinator FILE` (or check --study)", study, patience.TotalSeconds);
                return false;
            }

            if (!said)
            {
                Log.Information("Waiting for study {Study} to be created (up to {Seconds:F0} s)", study, patience.TotalSeconds);
                said = true;
            }

            await Task.Delay(1000, ct);
        }

        return true;
    }

    private static Command CoordinatorCommand()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML)." };
        var store = StoreOption();
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder (for the final test evaluation, if it runs in this silo)." };
        var stay = new Option<bool>("--stay") { Description = "Keep running after the study closes (for a Kubernetes Deployment, which restarts exited containers)." };
        var cluster = new SiloFlags(defaultPort: 11111);
        var command = new Command("coordinator", "Start (or resume) a study on the store's cluster: a silo without training slots that opens the study's coordinator grain and waits for the result.")
        {
            file, store, data, stay,
        };
        cluster.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var sweep = ParseSweep(parse.GetValue(file)!);
            if (sweep is null)
            {
                return 2;
            }

            if (cluster.Settings(parse) is not { } flags)
            {
                return 2;
            }

            var settings = flags with { Slots = 0, GpuSlots = 0 };
            var address = AbsoluteStore(StoreAddress(parse, store));
            await using var trialStore = await TrialStores.OpenAsync(address, cancellationToken: ct, say: m => Log.Information("{Message}", m), forWriting: true);
            var dataDir = parse.GetValue(data)?.FullName ?? sweep.Data.Path;
            using var trainer = new LazyTrainer(dataDir, ct);
            using var silo = SweeperSilo.Build(trialStore, trainer, settings, Log.Logger);
            try
            {
                await StartSiloAsync(silo, ct);
                Log.Information("Store {Store}; this coordinator trains nothing: the workers' slots train the study's trials", TrialStores.Redact(address));
                await OpenStudyAsync(silo, sweep, parse.GetValue(file)!.ToString());
                using var hint = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var noWorkers = HintWithoutWorkersAsync(trialStore, hint.Token);
                // The study's progress as `run` shows it (its coordinator grain lives on any silo, and logs there).
                await ShowProgressAsync(trialStore, sweep.Name, asJson: false, ct);
                await hint.CancelAsync();
                await noWorkers;
                StudyResult? result;
                while ((result = await Patiently(() => trialStore.GetResultAsync(sweep.Name, ct), ct)) is null)
                {
                    await Task.Delay(1000, ct);
                }

                // A program's study is chosen by its own metric and has no test accuracy: its note says so.
                Console.WriteLine($"Study {sweep.Name} closed: " + (result.TestAccuracy is null && result.Note is not null ? result.Note
                    : $"best trial {result.BestTrialNumber?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}, val acc {Report.Acc(result.ValAccuracy)}, test acc {Report.Acc(result.TestAccuracy)}"));
                if (parse.GetValue(stay))
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                else if (NoneCompleted(sweep.Name, result))
                {
                    await StopSiloAsync(silo);
                    return 1;
                }
            }
            catch (StudyConflictException e)
            {
                Log.Error("{Message}", e.Message);
                await StopSiloAsync(silo);
                return 2;
            }
            catch (OperationCanceledException)
            {
                Log.Warning("Stopping: the study goes on on the workers; run the same command again to follow it, or see `sweeper status`.");
                await StopSiloAsync(silo);
                return 130;
            }

            await StopSiloAsync(silo);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Says once if, 10 s after the coordinator opened its study, no silo with training slots is alive in the cluster:
    /// the study then waits for workers, which a user who started only the coordinator may not expect.
    /// </summary>
    private static async Task HintWithoutWorkersAsync(ITrialStore store, CancellationToken ct)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(10), ct);
            if (!(await ClusterView.SilosAsync(store, cancellationToken: ct)).Any(s => s.Alive && s.Slots > 0))
            {
                Log.Warning("No silo with training slots is alive in this cluster: the study waits for workers (start `sweeper worker --store ...` where trials should train)");
            }
        }
        catch (Exception e) when (e is OperationCanceledException or StoreUnavailableException)
        {
        }
    }

    /// <summary>A runner for a silo without slots: it only evaluates a chosen trial, loading the data the first time.</summary>
    private sealed class LazyTrainer(string? dataDir, CancellationToken ct) : ITrialRunner, IDisposable
    {
        private TrialTrainer? _trainer;

        public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null) =>
            throw new InvalidOperationException("a coordinator silo has no training slots.");

        public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint)
        {
            _trainer ??= new TrialTrainer(DataCommand.ResolveOrDownloadAsync(dataDir, ct).GetAwaiter().GetResult());
            return new SolverTrialRunner(_trainer).EvaluateOnTest(sweep, trial, checkpoint);
        }

        public void Dispose() => _trainer?.Dispose();
    }

    private static Command Status()
    {
        var study = new Argument<string?>("study") { Description = "A study name; all studies when omitted.", Arity = ArgumentArity.ZeroOrOne };
        var store = StoreOption();
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var command = new Command("status", "Show studies, their trials by state, the best so far and the running trials.") { study, store, json };
        command.SetAction(async (parse, ct) =>
        {
            await using var trialStore = await OpenExistingAsync(StoreAddress(parse, store), ct);
            if (trialStore is null)
            {
                return 1;
            }

            var names = parse.GetValue(study) is { } one ? [one] : (await trialStore.ListStudiesAsync(ct)).Select(s => s.Name).ToList();
            if (names.Count == 0 && !parse.GetValue(json))
            {
                Console.WriteLine("studies: none yet (start one with `sweeper run FILE`, or `sweeper coordinator FILE` on a cluster)");
            }

            var summaries = new List<object>();
            foreach (var name in names)
            {
                var record = await trialStore.GetStudyAsync(name, ct);
                if (record is null)
                {
                    Log.Error("No study named {Study} in the store", name);
                    return 1;
                }

                var trials = await trialStore.GetTrialsAsync(name, ct);
                var counts = await trialStore.CountStatesAsync(name, ct);
                var result = await trialStore.GetResultAsync(name, ct);
                summaries.Add(Report.Summary(record, counts, trials, result));
                if (!parse.GetValue(json))
                {
                    // One short line per fact, so that nothing wraps in a terminal and each line greps on its own.
                    var (best, metric) = BestOf(record, trials);
                    Console.WriteLine($"{name}: {(record.Closed ? "closed" : "open")}, {record.Method} search");
                    Console.WriteLine($"  trials: {Report.ShortCounts(counts, record.TrialCount)}");
                    Console.WriteLine("  best so far: " + (best is null ? "-" : $"trial {best.Number}, {metric} {Report.Short(StudySelection.RecordedValue(best, metric))}")
                        + (result?.TestAccuracy is { } t ? $", test accuracy {Report.Acc(t)}" : ""));
                    foreach (var r in trials.Where(t => t.State == TrialState.Running))
                    {
                        Console.WriteLine($"  running: trial {r.Number}, epoch {r.EpochsDone}, attempt {r.Attempts}, on {r.Owner}");
                    }
                }
            }

            var silos = await ClusterView.SilosAsync(trialStore, cancellationToken: ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    studies = summaries,
                    silos = silos.Select(w => new { address = w.Address, host = w.Host, state = w.State, slots = w.Slots, busy = w.Busy, last_heartbeat = w.LastAlive }),
                }, _json));
                return 0;
            }

            Console.WriteLine(silos.Count == 0 ? "silos: none has joined this store's cluster yet" : $"silos: {silos.Count(w => w.Alive)} alive, {silos.Count(w => !w.Alive)} not");
            // The silos that are gone stay listed for an hour (until their entries are cleaned up): the text shows the
            // latest few of them, so that a cluster restarted many times still shows its live silos at a glance.
            var gone = silos.Where(w => !w.Alive).OrderByDescending(w => w.LastAlive).ToList();
            var shown = silos.Where(w => w.Alive).Concat(gone.Take(StatusGoneShown)).ToList();
            foreach (var w in shown)
            {
                var ago = (DateTimeOffset.UtcNow - w.LastAlive).TotalSeconds;
                Console.WriteLine($"  {w.Address} on {w.Host}: {w.State}, {w.Busy}/{w.Slots} slots busy, last heartbeat {ago:F0} s ago");
            }

            if (gone.Count > StatusGoneShown)
            {
                Console.WriteLine($"  ... and {gone.Count - StatusGoneShown} more that stopped or died earlier (--json lists every silo)");
            }

            return 0;
        });
        return command;
    }

    /// <summary>How many silos that are gone <c>status</c> lists in text, the latest first.</summary>
    private const int StatusGoneShown = 5;

    private static Command Results()
    {
        var study = new Argument<string>("study") { Description = "The study name." };
        var store = StoreOption();
        var json = new Option<bool>("--json") { Description = "Print JSON: the summary and the trials (or groups)." };
        var csv = new Option<bool>("--csv") { Description = "Print CSV: one row per trial (or group)." };
        var top = new Option<int?>("--top") { Description = "Only the first N trials after sorting." };
        var where = new Option<string?>("--where") { Description = "Filter, e.g. \"dropout > 0 and hidden_size >= 100 and state = completed\" (and, or, not, parentheses; =, !=, <, <=, >, >=)." };
        var sort = new Option<string?>("--sort") { Description = "Sort keys, '-' for descending. Default: -val_accuracy (a study judged by another metric, such as a program's loss: by its value, best first), then number." };
        var groupBy = new Option<string?>("--group-by") { Description = "Group the matching trials by a field: count, completed, best and mean val_accuracy per value." };
        var columns = new Option<string?>("--columns") { Description = "Columns to show, e.g. learning_rate,reg,val_accuracy,train_accuracy." };
        var command = new Command("results", "The trials of a study, filtered, sorted and grouped, and the best trial with its test accuracy.")
        {
            study, store, json, csv, top, where, sort, groupBy, columns,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(top) is < 1)
            {
                Console.Error.WriteLine($"error: --top must be at least 1 (got {parse.GetValue(top)})");
                return 2;
            }

            if (parse.GetValue(json) && parse.GetValue(csv))
            {
                Console.Error.WriteLine("error: --json and --csv are two output formats; give one");
                return 2;
            }

            await using var trialStore = await OpenExistingAsync(StoreAddress(parse, store), ct);
            if (trialStore is null)
            {
                return 1;
            }

            var name = parse.GetValue(study)!;
            var record = await trialStore.GetStudyAsync(name, ct);
            if (record is null)
            {
                Log.Error("No study named {Study} in the store", name);
                return 1;
            }

            var definition = SweepJson.Of(record);
            var parameterNames = definition.ParameterNames;
            // A study judged by another metric than the accuracies (a program's loss) is shown and sorted by its value.
            var byValue = definition.Metric is not ("val_accuracy" or "train_accuracy");
            var defaultSort = !byValue ? "-val_accuracy" : definition.Goal == "minimize" ? "value" : "-value";
            Core.Queries.TrialQuery query;
            IReadOnlyList<string>? chosen = null;
            string? group = null;
            try
            {
                query = new Core.Queries.TrialQuery(
                    Core.Queries.FilterParser.Parse(parse.GetValue(where), parameterNames),
                    Core.Queries.FilterParser.ParseSort(parse.GetValue(sort) ?? defaultSort, parameterNames),
                    0,
                    parse.GetValue(top));
                if (parse.GetValue(columns) is { } list)
                {
                    chosen = Core.Queries.FilterParser.ParseColumns(list, parameterNames);
                }

                if (parse.GetValue(groupBy) is { } g)
                {
                    group = Core.Queries.FilterParser.ParseField(g, parameterNames);
                }
            }
            catch (Core.Queries.QueryException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }

            List<Dictionary<string, object?>> rows;
            int total;
            if (group is not null)
            {
                // Grouped in the store: every matching trial counts, only the groups come back.
                rows = [.. (await trialStore.GroupTrialsAsync(name, query, group, ct)).Select(g => TrialJson.Fields(g, group))];
                total = (await trialStore.QueryTrialsAsync(name, query with { Limit = 0 }, ct)).Total;
                chosen = [group, "trials", "completed", "best_val_accuracy", "mean_val_accuracy"];
            }
            else
            {
                var (matched, count) = await trialStore.QueryTrialsAsync(name, query, ct);
                rows = [.. matched.Select(TrialJson.Fields)];
                total = count;
                IReadOnlyList<string> scores = !byValue ? ["val_accuracy", "train_accuracy"]
                    : ["value", .. ((string[])["val_accuracy", "train_accuracy"]).Where(c => rows.Any(r => r.GetValueOrDefault(c) is not null))];
                chosen ??= ["number", "state", .. scores, "epochs", .. parameterNames.Select(Core.Queries.FilterParser.ParameterColumn).Where(c => rows.Any(r => r.ContainsKey(c)))];
            }

            if (parse.GetValue(csv))
            {
                Console.Write(Report.ColumnCsv(rows, chosen));
                return 0;
            }

            var everyTrial = await trialStore.GetTrialsAsync(name, ct);
            var result = await trialStore.GetResultAsync(name, ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    summary = Report.Summary(record, await trialStore.CountStatesAsync(name, ct), everyTrial, result),
                    matched = total,
                    rows = rows.Select(r => chosen.ToDictionary(c => c, c => r.GetValueOrDefault(c))),
                }, _json));
                return 0;
            }

            var width = Report.TerminalWidth();
            Console.Write(Report.Table([.. rows.Select(r => (IReadOnlyDictionary<string, object?>)r)], chosen, width));

            // In a pipe the rows alone go to standard output (for grep, sort and cut); the summary goes to standard error.
            var footer = width is null ? Console.Error : Console.Out;
            footer.WriteLine($"{total} matching trial(s)" + (group is not null ? $" in {rows.Count} group(s) by {group}" + (parse.GetValue(top) is { } n && rows.Count == n ? $" (the best {n})" : "") : ""));
            PrintBest(footer, result, everyTrial, record, width);
            return 0;
        });
        return command;
    }

    private static async Task<ITrialStore?> OpenExistingAsync(string? address, CancellationToken ct)
    {
        var full = AbsoluteStore(address);
        if (SqliteFile(full) is { } file && !File.Exists(file))
        {
            if (Directory.Exists(file))
            {
                Log.Error("{Path} is a folder, not a store file; give the file, e.g. sqlite:{Example}", file, Path.Combine(file, "sweeper.db"));
            }
            else
            {
                Log.Error("No store at {Path}; run a sweep first or give --store", file);
            }

            return null;
        }

        // A quick query says where it connects only when that takes a while (a slow or unreachable server).
        string? connecting = null;
        var opening = TrialStores.OpenAsync(full, cancellationToken: ct, say: m => connecting = m);
        if (await Task.WhenAny(opening, Task.Delay(TimeSpan.FromSeconds(1), ct)) != opening && connecting is not null)
        {
            Log.Information("{Message}", connecting);
        }

        return await opening;
    }

    private static void PrintBest(StudyResult? result, IReadOnlyList<TrialRecord> trials) => PrintBest(Console.Out, result, trials, null, Report.TerminalWidth());

    /// <summary>The chosen (or best so far) trial in short lines: its figures, its parameters wrapped between values, the rule.</summary>
    private static void PrintBest(TextWriter output, StudyResult? result, IReadOnlyList<TrialRecord> trials, StudyRecord? record, int? width)
    {
        if (result?.BestTrialNumber is { } n)
        {
            var best = trials.First(t => t.Number == n);
            if (result.TestAccuracy is null && result.Note is not null)
            {
                // A program's trial: chosen by the program's metric, never tested here.
                output.WriteLine($"Best trial {n}: {result.Metric} {Report.Short(StudySelection.RecordedValue(best, result.Metric))}");
                output.WriteLine(Report.Wrap(["  note:", .. result.Note.Split(' ')], width, "    "));
            }
            else
            {
                output.WriteLine($"Best trial {n}: val accuracy {Report.Acc(result.ValAccuracy)}, test accuracy {Report.Acc(result.TestAccuracy)}");
                output.WriteLine($"  tested once on {result.TestExamples} test images at {result.TestEvaluatedAt:u}");
            }

            output.WriteLine(Report.Wrap(["  parameters:", .. Report.ParamWords(best)], width, "    "));
            output.WriteLine(Report.Wrap(["  selection:", .. result.SelectionRule.Split(' ')], width, "    "));
        }
        else if (result is not null)
        {
            output.WriteLine(result.Note);
        }
        else
        {
            var (best, metric) = record is null ? (StudySelection.Best(trials), "val_accuracy") : BestOf(record, trials);
            output.WriteLine(best is null ? "No trial has completed yet." : $"Best so far: trial {best.Number}, {metric} {Report.Short(StudySelection.RecordedValue(best, metric))}");
            if (best is not null)
            {
                output.WriteLine("  (the study is still open; no test evaluation yet)");
                output.WriteLine(Report.Wrap(["  parameters:", .. Report.ParamWords(best)], width, "    "));
            }
        }
    }
}
