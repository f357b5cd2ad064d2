using System.Diagnostics;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sweeper.Core.Queries;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Storage;

namespace Sweeper.Bench;

/// <summary>
/// Query latency on a large finished study: N trials (default 100,000) with 20 epochs of metrics each, filled in
/// bulk, then a filtered, sorted, paged query (as the dashboard's table asks) repeated; p50 and p95 in ms.
/// </summary>
public static class Queries
{
    private static readonly string[] _names = ["learning_rate", "reg", "hidden_size", "dropout"];

    public static async Task RunAsync(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var trials = int.Parse(Arg("--trials") ?? "100000", System.Globalization.CultureInfo.InvariantCulture);
        var keep = Arg("--keep"); // a folder to leave the SQLite file in, to look at it afterwards
        var open = args.Contains("--open"); // leave the study open (a sweep still running: PostgreSQL not vacuumed yet)
        var dir = keep ?? Path.Combine(Path.GetTempPath(), "sweeper-qbench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var sqlite = "sqlite:" + Path.Combine(dir, "q.db");
            await FillAsync(sqlite, trials, close: !open);
            await MeasureAsync("sqlite", sqlite, trials, open);
            if (!args.Contains("--no-postgres"))
            {
                var pg = Arg("--postgres") ?? Storage.Tests.PostgresServer.Shared.CreateDatabase();
                await FillAsync(pg, trials, close: !open);
                await MeasureAsync("postgres", pg, trials, open);
            }
        }
        finally
        {
            if (keep is null)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>
    /// Creates study "big" with <paramref name="trials"/> finished trials of 20 epochs each, written in bulk, and closes
    /// it unless <paramref name="close"/> is false.
    /// </summary>
    public static async Task FillAsync(string address, int trials, bool close = true)
    {
        var rng = new Random(1);
        var list = new List<NewTrial>(trials);
        for (var i = 0; i < trials; i++)
        {
            var p = new Dictionary<string, object>
            {
                ["learning_rate"] = Math.Pow(10, -5 + (4 * rng.NextDouble())),
                ["reg"] = Math.Pow(10, -5 + (5 * rng.NextDouble())),
                ["hidden_size"] = (long)(50 * (1 + rng.Next(10))),
                ["dropout"] = Math.Round(rng.NextDouble() * 0.9, 2),
            };
            list.Add(new NewTrial(i, Core.Sweeps.ParamJson.Serialize(p), (ulong)i));
        }

        const string Sweep = "name: big\nmethod: random\nmodel: fc\nparameters:\n  learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}\n  reg: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0}\n  hidden_size: {distribution: int_uniform, min: 50, max: 500, q: 50}\n  dropout: {distribution: uniform, min: 0, max: 0.9}\nbudget: {max_trials: 100000}\n";
        await using (var store = await TrialStores.OpenAsync(address))
        {
            await store.CreateStudyAsync(new NewStudy("big", "h", Sweep, SweepJson.Serialize(SweepParser.Parse(Sweep)), "random", list));
        }

        // Results and 20 epochs per trial written in bulk (the normal path is one transaction per report).
        if (address.StartsWith("sqlite:", StringComparison.Ordinal))
        {
            await using var conn = new SqliteConnection($"Data Source={address[7..]}");
            await conn.OpenAsync();
            await using var tx = conn.BeginTransaction();
            var update = conn.CreateCommand();
            update.CommandText = "UPDATE trials SET state = $s, val_accuracy = $v, train_accuracy = $t, epochs_done = 20, attempts = 1, lease_epoch = 1 WHERE study = 'big' AND number = $n";
            var epoch = conn.CreateCommand();
            epoch.CommandText = "INSERT INTO epochs (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds) VALUES ($id, $e, $l, $t, $v, 0.001, 1)";
            foreach (var (n, state, v) in Results(trials))
            {
                update.Parameters.Clear();
                update.Parameters.AddWithValue("$s", state);
                update.Parameters.AddWithValue("$v", v);
                update.Parameters.AddWithValue("$t", v + 0.05);
                update.Parameters.AddWithValue("$n", n);
                await update.ExecuteNonQueryAsync();
                for (var e = 1; e <= 20; e++)
                {
                    epoch.Parameters.Clear();
                    epoch.Parameters.AddWithValue("$id", n + 1);
                    epoch.Parameters.AddWithValue("$e", e);
                    epoch.Parameters.AddWithValue("$l", 2.3 - (e * 0.05));
                    epoch.Parameters.AddWithValue("$t", v * e / 20);
                    epoch.Parameters.AddWithValue("$v", v * e / 20);
                    await epoch.ExecuteNonQueryAsync();
                }
            }

            await tx.CommitAsync();
        }
        else
        {
            await using var conn = new NpgsqlConnection(TrialStores.PostgresConnectionString(address));
            await conn.OpenAsync();
            await using (var cmd = new NpgsqlCommand("CREATE TEMP TABLE r (number int, state text, v float8)", conn))
            {
                await cmd.ExecuteNonQueryAsync();
            }

            await using (var copy = await conn.BeginBinaryImportAsync("COPY r (number, state, v) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var (n, state, v) in Results(trials))
                {
                    await copy.WriteRowAsync(default, n, state, v);
                }

                await copy.CompleteAsync();
            }

            foreach (var sql in new[]
            {
                "UPDATE trials t SET state = r.state, val_accuracy = r.v, train_accuracy = r.v + 0.05, epochs_done = 20, attempts = 1, lease_epoch = 1 FROM r WHERE t.study = 'big' AND t.number = r.number",
                "INSERT INTO epochs (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds) SELECT t.id, e, 2.3 - e * 0.05, r.v * e / 20, r.v * e / 20, 0.001, 1 FROM trials t JOIN r ON t.study = 'big' AND t.number = r.number CROSS JOIN generate_series(1, 20) e",
                "ANALYZE",
            })
            {
                await using var cmd = new NpgsqlCommand(sql, conn) { CommandTimeout = 600 };
                await cmd.ExecuteNonQueryAsync();
            }
        }

        // Closed as the coordinator closes a finished study (PostgreSQL's store vacuums the trials then).
        if (close)
        {
            await using var store = await TrialStores.OpenAsync(address);
            await store.CloseStudyAsync(new StudyResult("big", "best_val_accuracy", "val_accuracy", null, null, null, null, 0, null, "benchmark"));
        }
    }

    private static IEnumerable<(int Number, string State, double Val)> Results(int trials)
    {
        var rng = new Random(2);
        for (var n = 0; n < trials; n++)
        {
            yield return (n, rng.Next(10) == 0 ? "pruned" : "completed", 0.1 + (0.45 * rng.NextDouble()));
        }
    }

    private static readonly (string Where, string Sort)[] _shapes =
    [
        ("dropout > 0.2 and hidden_size >= 100 and state = completed", "-val_accuracy"),
        ("learning_rate < 0.001 and (reg > 0.0001 or hidden_size = 500) and state != pruned", "-learning_rate,reg"),
    ];

    private static async Task MeasureAsync(string backend, string address, int trials, bool open)
    {
        await using var store = await TrialStores.OpenAsync(address);
        foreach (var (where, sort) in _shapes)
        {
            var query = new TrialQuery(FilterParser.Parse(where, _names), FilterParser.ParseSort(sort, _names), 100, 50);
            var times = new List<double>();
            var total = 0;
            for (var i = 0; i < 43; i++)
            {
                var sw = Stopwatch.StartNew();
                (_, total) = await store.QueryTrialsAsync("big", query with { Offset = 50 * (i % 5) });
                if (i >= 3)
                {
                    times.Add(sw.Elapsed.TotalMilliseconds);
                }
            }

            times.Sort();
            var epochs = Stopwatch.StartNew();
            var curve = await store.GetEpochsAsync(5_000);
            epochs.Stop();
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "trial_query",
                store = backend,
                trials,
                epochs_per_trial = 20,
                study = open ? "open (not vacuumed yet)" : "closed",
                query = $"{where}, sort {sort}, page of 50 with the matching count",
                matched = total,
                p50_ms = Math.Round(Measure.Quantile(times, 0.5), 1),
                p95_ms = Math.Round(Measure.Quantile(times, 0.95), 1),
                target_p95_ms = 50,
                one_trial_curve_ms = Math.Round(epochs.Elapsed.TotalMilliseconds, 1),
                curve_points = curve.Count,
            }));
        }
    }
}
