using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Serilog;
using Spectre.Console;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;
using Sweeper.Storage;

namespace Sweeper.Cli;

/// <summary>run, worker, coordinator, validate, status and results.</summary>
public static partial class SweepCommands
{
    private static readonly JsonSerializerOptions _json = new() { WriteIndented = false };

    private static Option<string?> StoreOption() => new("--store")
    {
        Description = $"Trial store address: sqlite:PATH. Default: $SWEEPER_STORE, else {TrialStores.DefaultAddress} (under the current folder).",
    };

    private static string? StoreAddress(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) ?? Environment.GetEnvironmentVariable("SWEEPER_STORE");

    /// <summary>sqlite: paths are made absolute so that worker processes open the same file wherever they start.</summary>
    private static string AbsoluteStore(string? address)
    {
        address ??= TrialStores.DefaultAddress;
        return address.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) ? "sqlite:" + Path.GetFullPath(address["sqlite:".Length..]) : address;
    }

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

            await using var trialStore = await TrialStores.OpenAsync(AbsoluteStore(StoreAddress(parse, store)), cancellationToken: ct);
            await using var app = Dashboard.DashboardApp.Build(trialStore, options);
            await app.StartAsync(ct);
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
            Console.Error.WriteLine($"error: {e.Message}");
            return null;
        }
    }

    private static Command Validate()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML)." };
        var show = new Option<int>("--show") { Description = "How many parameter sets to print.", DefaultValueFactory = _ => 5 };
        var command = new Command("validate", "Check a sweep file and print its number of trials and the first parameter sets, without running anything.") { file, show };
        command.SetAction(parse =>
        {
            var sweep = ParseSweep(parse.GetValue(file)!);
            if (sweep is null)
            {
                return 2;
            }

            var count = SearchSpace.TrialCount(sweep);
            Console.WriteLine($"{parse.GetValue(file)}: study '{sweep.Name}', {sweep.Method} search, {count} trials, metric {sweep.Metric} ({sweep.Goal}), " +
                $"early stopping {(sweep.EarlyTerminate is { Type: "median" } e ? $"median (warm-up {e.WarmupEpochs}, min {e.MinTrials} trials)" : "off")}");
            foreach (var t in SearchSpace.CreateSampler(sweep).Propose(sweep, Math.Min(parse.GetValue(show), (int)count)))
            {
                Console.WriteLine($"  trial {t.Number}: {string.Join(" ", t.Parameters.Select(kv => $"{kv.Key}={ParamValue.Format(kv.Value)}"))}");
            }

            return 0;
        });
        return command;
    }

    private static Command WorkerCommand()
    {
        var store = StoreOption();
        var study = new Option<string?>("--study") { Description = "Only this study's trials. Default: any open study." };
        var exit = new Option<bool>("--exit-when-done") { Description = "Exit once every trial of --study is final." };
        var lease = new Option<double>("--lease-seconds") { Description = "Lease length; renewed every third of it.", DefaultValueFactory = _ => 30 };
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder. Default: $SWEEPER_DATA, then the cache, then a download." };
        var command = new Command("worker", "Claim trials from the store and train them, one at a time, until stopped.") { store, study, exit, lease, data };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(exit) && parse.GetValue(study) is null)
            {
                Log.Error("--exit-when-done needs --study");
                return 2;
            }

            var dir = await DataCommand.ResolveOrDownloadAsync(parse.GetValue(data)?.FullName, ct);
            await using var trialStore = await TrialStores.OpenAsync(StoreAddress(parse, store), cancellationToken: ct);
            using var trainer = new TrialTrainer(dir);
            var worker = new Worker(trialStore, new SolverTrialRunner(trainer), new WorkerOptions
            {
                Study = parse.GetValue(study),
                ExitWhenDone = parse.GetValue(exit),
                Lease = TimeSpan.FromSeconds(parse.GetValue(lease)),
            }, Log.Logger);
            try
            {
                await worker.RunAsync(ct);
            }
            catch (OperationCanceledException)
            {
            }

            return 0;
        });
        return command;
    }

    private static Command CoordinatorCommand()
    {
        var file = new Argument<FileInfo>("file") { Description = "The sweep definition file (YAML)." };
        var store = StoreOption();
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder (for the final test evaluation)." };
        var stay = new Option<bool>("--stay") { Description = "Keep running after the study closes (for a Kubernetes Deployment, which restarts exited containers)." };
        var command = new Command("coordinator", "Create the study (or resume it), requeue lost trials, and close it with the best trial's test accuracy. Workers run elsewhere.") { file, store, data, stay };
        command.SetAction(async (parse, ct) =>
        {
            var sweep = ParseSweep(parse.GetValue(file)!);
            if (sweep is null)
            {
                return 2;
            }

            await using var trialStore = await TrialStores.OpenAsync(StoreAddress(parse, store), cancellationToken: ct);
            var dataDir = parse.GetValue(data)?.FullName ?? sweep.Data.Path;
            var coordinator = new Coordinator(trialStore, sweep, LazyEvaluator(dataDir, ct), Log.Logger);
            await coordinator.EnsureStudyAsync(ct);
            try
            {
                var result = await coordinator.RunAsync(ct);
                Console.WriteLine($"study {sweep.Name} closed: best trial {result.BestTrialNumber?.ToString() ?? "-"}, val acc {Report.Acc(result.ValAccuracy)}, test acc {Report.Acc(result.TestAccuracy)}");
                if (parse.GetValue(stay))
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }

                return 0;
            }
            catch (OperationCanceledException)
            {
                return 130;
            }
        });
        return command;
    }

    private static TestEvaluator LazyEvaluator(string? dataDir, CancellationToken ct) => (sweep, trial, checkpoint) =>
    {
        var dir = DataCommand.ResolveOrDownloadAsync(dataDir, ct).GetAwaiter().GetResult();
        using var trainer = new TrialTrainer(dir);
        return trainer.EvaluateOnTest(sweep, ParamJson.Deserialize(trial.ParametersJson), trial.Seed, checkpoint);
    };

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
                    var best = Coordinator.SelectBest(trials);
                    Console.WriteLine($"{name}: {(record.Closed ? "closed" : "open")}; {Report.Counts(counts)}; best so far: " +
                        (best is null ? "-" : $"trial {best.Number} val acc {Report.Acc(best.ValAccuracy)}") + (result?.TestAccuracy is { } t ? $"; test acc {Report.Acc(t)}" : ""));
                    foreach (var r in trials.Where(t => t.State == TrialState.Running))
                    {
                        Console.WriteLine($"  running: trial {r.Number} on {r.Owner}, epoch {r.EpochsDone}, attempt {r.Attempts}");
                    }
                }
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(summaries, _json));
            }

            return 0;
        });
        return command;
    }

    private static Command Results()
    {
        var study = new Argument<string>("study") { Description = "The study name." };
        var store = StoreOption();
        var json = new Option<bool>("--json") { Description = "Print JSON: the summary and the trials (or groups)." };
        var csv = new Option<bool>("--csv") { Description = "Print CSV: one row per trial (or group)." };
        var top = new Option<int?>("--top") { Description = "Only the first N trials after sorting." };
        var where = new Option<string?>("--where") { Description = "Filter, e.g. \"dropout > 0 and hidden_size >= 100 and state = completed\" (and, or, not, parentheses; =, !=, <, <=, >, >=)." };
        var sort = new Option<string?>("--sort") { Description = "Sort keys, '-' for descending. Default: -val_accuracy,number." };
        var groupBy = new Option<string?>("--group-by") { Description = "Group the matching trials by a field: count, completed, best and mean val_accuracy per value." };
        var columns = new Option<string?>("--columns") { Description = "Columns to show, e.g. learning_rate,reg,val_accuracy,train_accuracy." };
        var command = new Command("results", "The trials of a study, filtered, sorted and grouped, and the best trial with its test accuracy.")
        {
            study, store, json, csv, top, where, sort, groupBy, columns,
        };
        command.SetAction(async (parse, ct) =>
        {
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

            var sweep = SweepParser.Parse(record.SweepText, name);
            var parameterNames = sweep.Parameters.Keys.Concat(sweep.Conditions.SelectMany(c => c.Parameters.Keys)).Distinct().ToList();
            Core.Queries.TrialQuery query;
            IReadOnlyList<string>? chosen = null;
            string? group = null;
            try
            {
                query = new Core.Queries.TrialQuery(
                    Core.Queries.FilterParser.Parse(parse.GetValue(where), parameterNames),
                    Core.Queries.FilterParser.ParseSort(parse.GetValue(sort) ?? "-val_accuracy", parameterNames),
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
                chosen ??= ["number", "state", "val_accuracy", "train_accuracy", "epochs", .. parameterNames.Where(p => rows.Any(r => r.ContainsKey(p)))];
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

            AnsiConsole.Write(Report.ColumnTable(rows, chosen));
            Console.WriteLine($"{total} matching trial(s)" + (group is not null ? $" in {rows.Count} group(s) by {group}" + (parse.GetValue(top) is { } n && rows.Count == n ? $" (the best {n})" : "") : ""));
            PrintBest(result, everyTrial);
            return 0;
        });
        return command;
    }

    private static async Task<ITrialStore?> OpenExistingAsync(string? address, CancellationToken ct)
    {
        var full = AbsoluteStore(address);
        if (full.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) && !File.Exists(full["sqlite:".Length..]))
        {
            Log.Error("No store at {Path}; run a sweep first or give --store", full["sqlite:".Length..]);
            return null;
        }

        return await TrialStores.OpenAsync(full, cancellationToken: ct);
    }

    private static void PrintBest(StudyResult? result, IReadOnlyList<TrialRecord> trials)
    {
        if (result?.BestTrialNumber is { } n)
        {
            var best = trials.First(t => t.Number == n);
            Console.WriteLine($"Best trial {n}: val acc {Report.Acc(result.ValAccuracy)}, test acc {Report.Acc(result.TestAccuracy)} ({result.TestExamples} test images, evaluated once at {result.TestEvaluatedAt:u})");
            Console.WriteLine($"  {Report.Params(best)}");
            Console.WriteLine($"  selection: {result.SelectionRule}");
        }
        else if (result is not null)
        {
            Console.WriteLine(result.Note);
        }
        else
        {
            var best = Coordinator.SelectBest(trials);
            Console.WriteLine(best is null ? "No trial has completed yet." : $"Best so far: trial {best.Number}, val acc {Report.Acc(best.ValAccuracy)} (the study is still open; no test evaluation yet)");
        }
    }
}
