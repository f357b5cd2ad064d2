using System.Net;
using System.Text.Json;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Dashboard;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// The study page's summary endpoints (optimization history, parameter importances, rungs) against a real store whose
/// trials are claimed, reported, paused and finished through the store as workers do; once per store (below).
/// </summary>
public abstract class DashboardChartsTests : IAsyncLifetime
{
    private readonly Harness _h = new();
    private ITrialStore _store = null!;
    private Microsoft.AspNetCore.Builder.WebApplication _app = null!;
    private HttpClient _client = null!;

    /// <summary>The store's address for this run (made in <see cref="InitializeAsync"/>).</summary>
    protected abstract string Address(Harness h);

    /// <summary>Removes what <see cref="Address"/> made, if anything.</summary>
    protected virtual void Drop(string address)
    {
    }

    private string _address = "";

    public async Task InitializeAsync()
    {
        _address = Address(_h);
        _store = await TrialStores.OpenAsync(_address);
        _app = DashboardApp.Build(_store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await _app.StartAsync();
        _client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
        await _store.DisposeAsync();
        Drop(_address);
        _h.Dispose();
    }

    private async Task CreateAsync(string sweepText, IEnumerable<string> parameters)
    {
        var sweep = SweepParser.Parse(sweepText);
        await _store.CreateStudyAsync(new NewStudy(sweep.Name, "h", sweepText, SweepJson.Serialize(sweep), sweep.Method,
            [.. parameters.Select((p, i) => new NewTrial(i, p, (ulong)i))]));
    }

    private async Task<(HttpStatusCode Status, JsonElement Json)> GetAsync(string path)
    {
        using var response = await _client.GetAsync(path);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private static double[] Numbers(JsonElement json, string name) => [.. json.GetProperty(name).EnumerateArray().Select(e => e.GetDouble())];

    /// <summary>A study of <paramref name="n"/> trials with a value each; every 7th is pruned and every 11th fails (no history point).</summary>
    private async Task<Dictionary<int, double>> FinishAllAsync(string study, int n, Func<int, double> value)
    {
        var completed = new Dictionary<int, double>();
        while (await _store.ClaimAsync(study, "w", TimeSpan.FromMinutes(5)) is { } lease)
        {
            var v = value(lease.Number);
            var state = lease.Number % 7 == 3 ? TrialState.Pruned : lease.Number % 11 == 5 ? TrialState.Failed : TrialState.Completed;
            await _store.FinishAsync(lease, new TrialFinish(state, state == TrialState.Failed ? null : v, v, 1, state == TrialState.Completed ? null : "test"));
            if (state == TrialState.Completed)
            {
                completed[lease.Number] = v;
            }
        }

        Assert.Equal(n, (await _store.CountStatesAsync(study)).Final);
        return completed;
    }

    [Fact]
    public async Task History_gives_each_completed_trial_and_the_lowest_so_far_when_the_goal_is_minimize()
    {
        const string Sweep = "name: low\nmethod: random\nmodel: softmax\nmetric: {name: val_accuracy, goal: minimize}\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\nbudget: {max_trials: 300}\n";
        await CreateAsync(Sweep, Enumerable.Range(0, 300).Select(i => FormattableString.Invariant($$"""{"reg":{{i / 300.0}}}""")));
        var (_, before) = await GetAsync("/api/studies/low/history");
        Assert.Equal((0, 0), (before.GetProperty("completed").GetInt32(), before.GetProperty("xs").GetArrayLength()));
        var rng = new Random(3);
        var completed = await FinishAllAsync("low", 300, _ => Math.Round(rng.NextDouble(), 5));

        var (status, all) = await GetAsync("/api/studies/low/history"); // not the answer cached before the trials finished
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(("val_accuracy", "minimize", "number"), (all.GetProperty("metric").GetString(), all.GetProperty("goal").GetString(), all.GetProperty("x").GetString()));
        Assert.Equal(completed.Count, all.GetProperty("completed").GetInt32());
        Assert.False(all.GetProperty("downsampled").GetBoolean());
        var ordered = completed.OrderBy(kv => kv.Key).ToList();
        Assert.Equal(ordered.Select(kv => (double)kv.Key), Numbers(all, "xs"));
        Assert.Equal(ordered.Select(kv => kv.Value), Numbers(all, "ys"));

        // The best-so-far line steps down at every new lowest value, and nowhere else.
        var expected = new List<(double X, double Y)>();
        foreach (var (number, v) in ordered)
        {
            if (expected.Count == 0 || v < expected[^1].Y)
            {
                expected.Add((number, v));
            }
        }

        var bestX = Numbers(all, "best_xs");
        var bestY = Numbers(all, "best_ys");
        Assert.Equal(expected.Select(e => e.X).Append(ordered[^1].Key).Distinct(), bestX);
        Assert.Equal(completed.Values.Min(), bestY[^1]);
        Assert.Equal(expected.Select(e => e.Y), bestY.Take(expected.Count));

        // By finish time: the same trials, in the order they finished (here, the order of their numbers).
        var (_, byTime) = await GetAsync("/api/studies/low/history?x=time");
        var times = Numbers(byTime, "xs");
        Assert.Equal(completed.Count, times.Length);
        Assert.Equal(times.Order(), times);
        Assert.InRange(times[0], DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1);
        Assert.Equal(completed.Values.Min(), Numbers(byTime, "best_ys")[^1]);
    }

    [Fact]
    public async Task History_of_many_trials_is_downsampled_to_max_and_keeps_the_extremes_and_the_exact_best()
    {
        const string Sweep = "name: many\nmethod: random\nmodel: softmax\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\nbudget: {max_trials: 1000}\n";
        await CreateAsync(Sweep, Enumerable.Range(0, 1000).Select(i => FormattableString.Invariant($$"""{"reg":{{i / 1000.0}}}""")));
        var rng = new Random(4);
        var completed = await FinishAllAsync("many", 1000, _ => Math.Round(rng.NextDouble(), 5));

        foreach (var max in new[] { 10, 50, 333 })
        {
            var (_, json) = await GetAsync($"/api/studies/many/history?max={max}");
            Assert.Equal("maximize", json.GetProperty("goal").GetString());
            var ys = Numbers(json, "ys");
            var xs = Numbers(json, "xs");
            Assert.True(json.GetProperty("downsampled").GetBoolean());
            Assert.InRange(ys.Length, max / 2, max);
            Assert.Equal(ys.Length, json.GetProperty("shown").GetInt32());
            Assert.Equal(xs.Order(), xs);
            Assert.All(xs.Zip(ys), p => Assert.Equal(completed[(int)p.First], p.Second)); // real trials, not averages
            Assert.Contains(completed.Values.Max(), ys);
            Assert.Contains(completed.Values.Min(), ys);
            Assert.Equal(completed.Values.Max(), Numbers(json, "best_ys")[^1]);
            Assert.True(Numbers(json, "best_xs").Length <= max);
        }
    }

    [Fact]
    public async Task A_metric_the_trial_records_do_not_keep_gives_empty_charts_that_say_why()
    {
        const string Sweep = "name: loss\nmethod: random\nmodel: softmax\nmetric: {name: train_loss, goal: minimize}\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\nbudget: {max_trials: 10}\n";
        await CreateAsync(Sweep, Enumerable.Range(0, 10).Select(i => FormattableString.Invariant($$"""{"reg":{{i / 10.0}}}""")));
        await FinishAllAsync("loss", 10, n => n / 10.0);
        var (status, history) = await GetAsync("/api/studies/loss/history");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(("train_loss", "minimize", 0), (history.GetProperty("metric").GetString(), history.GetProperty("goal").GetString(), history.GetProperty("xs").GetArrayLength()));
        Assert.Contains("train_loss is not kept in the trials' records", history.GetProperty("note").GetString());
        var (_, importance) = await GetAsync("/api/studies/loss/importance");
        Assert.Empty(importance.GetProperty("parameters").EnumerateArray());
        Assert.Contains("train_loss is not kept in the trials' records", importance.GetProperty("note").GetString());
    }

    [Theory]
    [InlineData("/api/studies/low/history?x=epoch", "x must be number or time")]
    [InlineData("/api/studies/low/history?max=5", "max must be a whole number in [10, 20000]")]
    [InlineData("/api/studies/low/history?max=many", "max must be a whole number")]
    [InlineData("/api/studies/low/history?max=99999999999999", "max must be a whole number")]
    public async Task Bad_history_arguments_are_400_with_a_message(string path, string message)
    {
        await CreateAsync("name: low\nmethod: random\nmodel: softmax\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\nbudget: {max_trials: 1}\n", ["""{"reg":0.5}"""]);
        var (status, json) = await GetAsync(path);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(message, json.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("history")]
    [InlineData("importance")]
    [InlineData("rungs")]
    public async Task An_unknown_study_is_404_with_a_message(string endpoint)
    {
        var (status, json) = await GetAsync($"/api/studies/nothing%20here/{endpoint}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("no study named nothing here", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Importances_rank_the_parameter_the_value_depends_on_first_and_list_fixed_ones_apart()
    {
        const string Sweep = """
            name: imp
            method: random
            model: two_layer
            parameters:
              learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
              reg: {distribution: uniform, min: 0, max: 1}
              update_rule: {values: [sgd, adam, rmsprop]}
              epochs: {value: 3}
            budget: {max_trials: 400}
            """;
        var rng = new Random(8);
        var opts = new[] { "sgd", "adam", "rmsprop" };
        var parameters = Enumerable.Range(0, 400).Select(_ => (Lr: Math.Pow(10, -5 + (4 * rng.NextDouble())), Reg: rng.NextDouble(), Opt: opts[rng.Next(3)])).ToList();
        await CreateAsync(Sweep, parameters.Select(p => FormattableString.Invariant($$"""{"learning_rate":{{p.Lr}},"reg":{{p.Reg}},"update_rule":"{{p.Opt}}","epochs":3}""")));

        // Too few completed trials: an answer that says so, not an error.
        var lease = await _store.ClaimAsync("imp", "w", TimeSpan.FromMinutes(5));
        await _store.FinishAsync(lease!, new TrialFinish(TrialState.Completed, 0.5, 0.5, 3, null));
        var (_, early) = await GetAsync("/api/studies/imp/importance");
        Assert.Empty(early.GetProperty("parameters").EnumerateArray());
        Assert.Contains("at least 8 completed trials", early.GetProperty("note").GetString());

        // The value rises with log10(learning_rate) only (a peak in the middle of its range), whatever reg and the optimizer are.
        await FinishAllAsync("imp", 400, n => Math.Exp(-Math.Pow(Math.Log10(parameters[n].Lr) + 3, 2)));
        var (status, json) = await GetAsync("/api/studies/imp/importance");
        Assert.Equal(HttpStatusCode.OK, status);
        var shares = json.GetProperty("parameters").EnumerateArray().Select(p => (Name: p.GetProperty("name").GetString(), Share: p.GetProperty("importance").GetDouble())).ToList();
        Assert.Equal(["learning_rate", "reg", "update_rule"], shares.Select(s => s.Name).Order());
        Assert.Equal("learning_rate", shares[0].Name);
        Assert.True(shares[0].Share > 0.8, string.Join(", ", shares));
        Assert.Equal(1.0, shares.Sum(s => s.Share), 2);
        Assert.Equal(["epochs", "model"], json.GetProperty("constant").EnumerateArray().Select(e => e.GetString()).Order()); // fixed in the sweep
        Assert.Contains("main-effect variance", json.GetProperty("method").GetString());
        Assert.Equal(json.GetRawText(), (await GetAsync("/api/studies/imp/importance")).Json.GetRawText()); // the same answer again
    }

    [Fact]
    public async Task Rungs_count_the_trials_that_reached_each_rung_and_those_paused_there()
    {
        // Rungs at epochs 1 and 3 (min_iter 1, eta 3), complete at 9.
        const string Sweep = "name: asha\nmethod: random\nmodel: softmax\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\n  epochs: {value: 9}\nearly_terminate: {type: hyperband, min_iter: 1, eta: 3}\nbudget: {max_trials: 12}\n";
        await CreateAsync(Sweep, Enumerable.Range(0, 12).Select(i => FormattableString.Invariant($$"""{"reg":{{i / 12.0}},"epochs":9}""")));
        // Trials 0-5 pause at epoch 1; 6-8 train to 3 and pause; 9-10 complete 9 epochs; 11 stays pending.
        for (var i = 0; i < 11; i++)
        {
            var lease = (await _store.ClaimAsync("asha", "w", TimeSpan.FromMinutes(5)))!;
            var epochs = lease.Number < 6 ? 1 : lease.Number < 9 ? 3 : 9;
            for (var e = 1; e <= epochs; e++)
            {
                await _store.ReportEpochAsync(lease, new EpochRecord(e, 1, 0.5, 0.5, 1e-3, 1), null, TimeSpan.FromMinutes(5));
            }

            if (epochs < 9)
            {
                await _store.PauseAsync(lease, new TrialFinish(TrialState.Paused, 0.5, 0.5, epochs, "paused at a rung"));
            }
            else
            {
                await _store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.5, 0.5, 9, null));
            }
        }

        var (status, json) = await GetAsync("/api/studies/asha/rungs");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("hyperband").GetBoolean());
        Assert.Equal(9, json.GetProperty("complete_at").GetInt32());
        var rungs = json.GetProperty("rungs").EnumerateArray().Select(r => (r.GetProperty("epoch").GetInt32(), r.GetProperty("reached").GetInt32(), r.GetProperty("paused").GetInt32())).ToList();
        Assert.Equal([(1, 11, 6), (3, 5, 3), (9, 2, 0)], rungs);

        // A study without successive halving says so.
        await CreateAsync("name: flat\nmethod: random\nmodel: softmax\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\nbudget: {max_trials: 1}\n", ["""{"reg":0.5}"""]);
        var (_, flat) = await GetAsync("/api/studies/flat/rungs");
        Assert.False(flat.GetProperty("hyperband").GetBoolean());
        Assert.Empty(flat.GetProperty("rungs").EnumerateArray());
    }
}

/// <summary>The chart endpoints on SQLite.</summary>
public sealed class DashboardChartsSqliteTests : DashboardChartsTests
{
    protected override string Address(Harness h) => h.Store();
}

/// <summary>The chart endpoints on PostgreSQL (a database of the tests' shared server).</summary>
public sealed class DashboardChartsPostgresTests : DashboardChartsTests
{
    protected override string Address(Harness h) => Storage.Tests.PostgresServer.Shared.CreateDatabase();

    protected override void Drop(string address) => Storage.Tests.PostgresServer.Shared.DropDatabase(address);
}
