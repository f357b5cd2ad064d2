using System.Net;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Dashboard;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// The dashboard's API in process against a real store, asked a fixed budget of random query strings: every answer is
/// 200, 400 (with a JSON error) or 404, never a 500. The study has a parameter called epochs (also a trial field), a
/// dotted W&amp;B name and text values, so the two namespaces are exercised too. Seeded: every run asks the same.
/// </summary>
public sealed class DashboardApiFuzzTests : IAsyncLifetime
{
    private const int Requests = 1_500;

    private const string Sweep = """
        name: fuzz
        program: train.py
        method: random
        run_cap: 60
        metric: {name: val_accuracy, goal: maximize}
        parameters:
          epochs: {values: [1, 2, 3]}
          optimizer:
            parameters:
              lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
          model: {values: [fc, "two layer"]}
        """;

    private readonly Harness _h = new();
    private ITrialStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = await TrialStores.OpenAsync(_h.Store());
        var sweep = SweepParser.Parse(Sweep, "fuzz.yaml");
        var trials = new RandomSampler().Propose(sweep, 60);
        await _store.CreateStudyAsync(new NewStudy("fuzz", sweep.SourceHash, Sweep, SweepJson.Serialize(sweep), "random",
            [.. trials.Select(t => new NewTrial(t.Number, ParamJson.Serialize(t.Parameters), t.Seed))]));
        var rng = new Random(3);
        for (var i = 0; i < 40 && await _store.ClaimAsync("fuzz", "w", TimeSpan.FromMinutes(5)) is { } lease; i++)
        {
            var state = i % 7 == 0 ? TrialState.Failed : i % 5 == 0 ? TrialState.Pruned : TrialState.Completed;
            await _store.FinishAsync(lease, new TrialFinish(state, rng.NextDouble(), rng.NextDouble(), 1 + (i % 3), state == TrialState.Failed ? "exit code 1" : null));
        }
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _h.Dispose();
    }

    private static readonly string[] _paths =
    [
        "/api/studies", "/api/studies/fuzz", "/api/studies/fuzz/trials", "/api/studies/fuzz/points", "/api/studies/fuzz/trials/3",
        "/api/studies/fuzz/trials/3/weights", "/api/studies/nope/trials", "/api/studies/fuzz/trials/99999", "/api/studies/%ff%fe/trials",
        "/api/studies/fuzz/trials/-1", "/api/nothing",
    ];

    private static readonly string[] _keys = ["where", "sort", "columns", "group_by", "page", "page_size", "max", "token", "", "where[]", "WHERE"];

    private static readonly string[] _values =
    [
        "epochs > 1", "params.epochs = 2", "params.optimizer.lr < 1e-3", "optimizer.lr >= 0", "model = 'two layer'", "state = completed",
        "not (epochs > 1 or val_accuracy < 0.5)", "-val_accuracy,number", "-params.epochs", "params.epochs,epochs,reason,optimizer.lr",
        "model", "params.epochs", "state", "0", "1", "-1", "2147483647", "2147483648", "99999999999999999999", "1e3", "NaN", "Infinity",
        "1e400", "", " ", "%", "%zz", "%00", "%e2%82", "'", "\"", "((((((((((", "))", "and", "or or", "epochs >", "= 3", "params.",
        "params.nope = 1", "val_accuracy > 1e308", "number = 1.5", "seed < -9223372036854775809", "owner = %27w%27", "reason != x",
        new string('(', 300) + "epochs > 1" + new string(')', 300), new string('a', 2000), "epochs%20%3E%201", "%3B DROP TABLE trials",
    ];

    [Fact]
    public async Task Any_query_string_gets_200_400_or_404_and_never_500()
    {
        var app = DashboardApp.Build(_store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        await using (app)
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            var rng = new Core.Rng(77);
            var failures = new List<string>();
            var answers = new Dictionary<HttpStatusCode, int>();
            for (var i = 0; i < Requests && failures.Count < 5; i++)
            {
                var parts = Enumerable.Range(0, 1 + rng.NextInt(3)).Select(_ =>
                {
                    var value = _values[rng.NextInt(_values.Length)];
                    var encoded = rng.NextInt(3) == 0 ? value : Uri.EscapeDataString(value);
                    return $"{_keys[rng.NextInt(_keys.Length)]}={encoded}";
                });
                // Most requests go where the query language is read; the rest anywhere.
                var path = rng.NextInt(5) switch { 0 or 1 => "/api/studies/fuzz/trials", 2 => "/api/studies/fuzz/points", _ => _paths[rng.NextInt(_paths.Length)] };
                var url = path + "?" + string.Join(rng.NextInt(5) == 0 ? "&&" : "&", parts);
                using var response = await client.GetAsync(url);
                var body = await response.Content.ReadAsStringAsync();
                answers[response.StatusCode] = answers.GetValueOrDefault(response.StatusCode) + 1;
                if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.BadRequest or HttpStatusCode.NotFound))
                {
                    failures.Add($"{url[..Math.Min(url.Length, 300)]} -> {(int)response.StatusCode}: {body[..Math.Min(body.Length, 500)]}");
                }
                else if (response.StatusCode == HttpStatusCode.BadRequest && !body.Contains("\"error\"", StringComparison.Ordinal))
                {
                    failures.Add($"{url[..Math.Min(url.Length, 300)]} -> 400 without an error: {body[..Math.Min(body.Length, 300)]}");
                }
            }

            Assert.True(failures.Count == 0, string.Join("\n", failures));

            // The budget reached every kind of answer.
            Assert.True(answers.GetValueOrDefault(HttpStatusCode.OK) > Requests / 10, string.Join(", ", answers));
            Assert.True(answers.GetValueOrDefault(HttpStatusCode.BadRequest) > Requests / 10, string.Join(", ", answers));
        }
    }

    [Theory]
    [InlineData("page=2147483647&page_size=1000")]
    [InlineData("where=" + "%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28%28epochs")]
    [InlineData("where=val_accuracy%20%3E%201e400")]
    public async Task Known_bad_queries_are_400(string query)
    {
        var app = DashboardApp.Build(_store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        await using (app)
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            using var response = await client.GetAsync("/api/studies/fuzz/trials?" + query);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_parameter_called_epochs_and_the_epochs_field_are_told_apart()
    {
        var app = DashboardApp.Build(_store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        await using (app)
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            var json = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync("/api/studies/fuzz/trials?columns=number,epochs,params.epochs&where=params.epochs%20%3D%203&page_size=1000")).RootElement;
            var rows = json.GetProperty("trials").EnumerateArray().ToList();
            var all = await _store.GetTrialsAsync("fuzz");
            Assert.Equal(all.Count(t => (long)ParamJson.Deserialize(t.ParametersJson)["epochs"] == 3), rows.Count);
            Assert.All(rows, r => Assert.Equal(3, r.GetProperty("params.epochs").GetInt64()));
            Assert.Contains(rows, r => r.GetProperty("epochs").GetInt32() != 3);
        }
    }
}
