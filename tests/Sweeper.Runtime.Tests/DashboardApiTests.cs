using System.Net;
using System.Text.Json;
using Sweeper.Dashboard;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>The JSON API and pages against a real store filled by a real small sweep.</summary>
public sealed class DashboardApiTests : IAsyncLifetime
{
    private readonly Harness _h = new();
    private Core.Trials.ITrialStore _store = null!;

    public async Task InitializeAsync()
    {
        var sweep = _h.Write("tiny.yaml", """
            name: tiny
            method: grid
            model: softmax
            data: {train_size: 600, val_size: 100, test_size: 100}
            parameters:
              learning_rate: {values: [1.0e-7, 5.0e-7, 1.0e-6]}
              reg: {values: [1.0e+3, 1.0e+4]}
              epochs: {value: 2}
              batch_size: {value: 100}
            budget: {max_trials: 6}
            """);
        var run = _h.Run(TimeSpan.FromMinutes(2), "run", sweep, "--store", _h.Store(), "--slots", "2");
        Assert.True(run.Code == 0, run.Stderr);
        _store = await TrialStores.OpenAsync(_h.Store());
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _h.Dispose();
    }

    private async Task<(HttpClient Client, Microsoft.AspNetCore.Builder.WebApplication App)> StartAsync(string? token = null)
    {
        var app = DashboardApp.Build(_store, new DashboardOptions { Url = "http://127.0.0.1:0", Token = token });
        await app.StartAsync();
        return (new HttpClient { BaseAddress = new Uri(app.Urls.First()) }, app);
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task A_program_trials_epochs_show_its_own_metrics_and_null_for_the_built_in_ones_it_did_not_report()
    {
        // A training program reports only what it prints: the built-in fields it did not report are NaN in the record.
        const string Sweep = "name: prog\nmethod: grid\nprogram: train.py\nmetric: {name: loss, goal: minimize}\nparameters:\n  lr: {values: [0.1]}\n";
        await _store.CreateStudyAsync(new Core.Trials.NewStudy("prog", "h", Sweep, Core.Sweeps.SweepJson.Serialize(Core.Sweeps.SweepParser.Parse(Sweep)), "grid",
            [new Core.Trials.NewTrial(0, """{"lr":0.1}""", 1)]));
        var lease = (await _store.ClaimAsync("prog", "w", TimeSpan.FromMinutes(5)))!;
        await _store.ReportEpochAsync(lease, new Core.Trials.EpochRecord(1, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN,
            new Dictionary<string, double> { ["loss"] = 0.75, ["f1"] = double.PositiveInfinity }), "epochs done: 1"u8.ToArray(), TimeSpan.FromMinutes(5));
        var (client, app) = await StartAsync();
        await using (app)
        {
            var response = await client.GetAsync("/api/studies/prog/trials/0");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var epoch = (await Json(response)).GetProperty("epochs")[0];
            Assert.Equal(JsonValueKind.Null, epoch.GetProperty("val_accuracy").ValueKind);
            Assert.Equal(JsonValueKind.Null, epoch.GetProperty("loss").ValueKind);
            Assert.Equal(0.75, epoch.GetProperty("metrics").GetProperty("loss").GetDouble());
            Assert.Equal(JsonValueKind.Null, epoch.GetProperty("metrics").GetProperty("f1").ValueKind);
        }

        // A trial whose value is not a number (stored before such runs were called diverged) is served as null; it
        // made every answer that lists it a 500 with an empty body before, the study list too.
        await _store.FinishAsync(lease, new Core.Trials.TrialFinish(Core.Trials.TrialState.Completed, null, null, 1, null, double.PositiveInfinity));
        (client, app) = await StartAsync();
        await using (app)
        {
            foreach (var path in (string[])["/api/studies", "/api/studies/prog", "/api/studies/prog/trials", "/api/studies/prog/trials?columns=number,value", "/api/studies/prog/trials/0"])
            {
                var response = await client.GetAsync(path);
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {response.StatusCode}");
                var text = await response.Content.ReadAsStringAsync();
                Assert.DoesNotContain("Infinity", text, StringComparison.Ordinal);
            }

            var trial = await Json(await client.GetAsync("/api/studies/prog/trials/0"));
            Assert.Equal(JsonValueKind.Null, trial.GetProperty("trial").GetProperty("value").ValueKind);

            // A program's checkpoint is no image of weights (it was a 500), and a trial is named by its number.
            var weights = await client.GetAsync("/api/studies/prog/trials/0/weights");
            Assert.Equal(HttpStatusCode.NotFound, weights.StatusCode);
            Assert.Contains("holds no weights this dashboard can show", (await Json(weights)).GetProperty("error").GetString(), StringComparison.Ordinal);
            foreach (var path in (string[])["/api/studies/prog/trials/abc", "/api/studies/prog/trials/abc/weights", "/api/studies/prog/trials/99999999999"])
            {
                var bad = await client.GetAsync(path);
                Assert.True(bad.StatusCode == HttpStatusCode.BadRequest, $"{path}: {bad.StatusCode}");
                Assert.EndsWith("is not a trial number (a whole number such as 0 or 17)", (await Json(bad)).GetProperty("error").GetString(), StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Points_of_a_large_study_are_its_best_quarter_and_a_fixed_sample_of_the_rest()
    {
        // 400 finished trials, claimed and finished through the store as workers do.
        const string Sweep = "name: wide\nmethod: random\nmodel: softmax\nparameters:\n  learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}\n  reg: {values: [0, 1, 2, 3]}\nbudget: {max_trials: 400}\n";
        var rng = new Random(5);
        await _store.CreateStudyAsync(new Core.Trials.NewStudy("wide", "h", Sweep, Core.Sweeps.SweepJson.Serialize(Core.Sweeps.SweepParser.Parse(Sweep)), "random",
            [.. Enumerable.Range(0, 400).Select(i => new Core.Trials.NewTrial(i, FormattableString.Invariant($$"""{"learning_rate":{{Math.Pow(10, -5 + (4 * rng.NextDouble()))}},"reg":{{i % 4}}}"""), (ulong)i))]));
        var val = new Dictionary<int, double>();
        while (await _store.ClaimAsync("wide", "w", TimeSpan.FromMinutes(5)) is { } lease)
        {
            val[lease.Number] = Math.Round(rng.NextDouble(), 4);
            await _store.FinishAsync(lease, new Core.Trials.TrialFinish(Core.Trials.TrialState.Completed, val[lease.Number], val[lease.Number], 1, null));
        }

        var (client, app) = await StartAsync();
        await using (app)
        {
            async Task<(JsonElement Json, int[] Numbers)> Points(string query)
            {
                var json = await Json(await client.GetAsync("/api/studies/wide/points?" + query));
                return (json, [.. json.GetProperty("trials").EnumerateArray().Select(t => t.GetProperty("number").GetInt32())]);
            }

            var (all, numbers) = await Points("max=40");
            Assert.Equal((400, true, 10), (all.GetProperty("total").GetInt32(), all.GetProperty("sampled").GetBoolean(), all.GetProperty("best").GetInt32()));
            Assert.InRange(numbers.Length, 25, 40);
            Assert.Equal(numbers.Distinct().Order(), numbers);
            var best = val.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).Take(10).Select(kv => kv.Key);
            Assert.Subset(numbers.ToHashSet(), best.ToHashSet());
            Assert.Equal(numbers, (await Points("max=40")).Numbers); // the same sample every time
            Assert.True(numbers.Max() - numbers.Min() > 300, "the sample should spread over the study");

            var (filtered, some) = await Points("max=40&where=" + Uri.EscapeDataString("reg = 1"));
            Assert.Equal((100, true), (filtered.GetProperty("total").GetInt32(), filtered.GetProperty("sampled").GetBoolean()));
            Assert.All(some, n => Assert.Equal(1, n % 4));

            var (few, everyOne) = await Points("max=200&where=" + Uri.EscapeDataString("reg = 1 or reg = 2"));
            Assert.Equal((200, false), (few.GetProperty("total").GetInt32(), few.GetProperty("sampled").GetBoolean()));
            Assert.Equal(Enumerable.Range(0, 400).Where(n => n % 4 is 1 or 2), everyOne);
        }
    }

    [Fact]
    public async Task Results_command_filters_groups_and_picks_columns_like_the_api()
    {
        var grouped = _h.Run(TimeSpan.FromMinutes(1), "results", "tiny", "--store", _h.Store(), "--where", "reg >= 10000", "--group-by", "learning_rate", "--json");
        Assert.True(grouped.Code == 0, grouped.Stderr);
        var json = JsonDocument.Parse(grouped.Stdout).RootElement;
        Assert.Equal(3, json.GetProperty("matched").GetInt32());
        var rows = json.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal(1, r.GetProperty("trials").GetInt32()));
        var expected = (await _store.GetTrialsAsync("tiny"))
            .Where(t => Core.Sweeps.ParamValue.AsDouble(Core.Sweeps.ParamJson.Deserialize(t.ParametersJson)["reg"]) >= 10000)
            .Select(t => t.ValAccuracy!.Value).OrderDescending().ToArray();
        Assert.Equal(expected, rows.Select(r => r.GetProperty("best_val_accuracy").GetDouble()).ToArray());

        var csv = _h.Run(TimeSpan.FromMinutes(1), "results", "tiny", "--store", _h.Store(), "--columns", "learning_rate,reg,val_accuracy", "--sort", "number", "--top", "2", "--csv");
        Assert.True(csv.Code == 0, csv.Stderr);
        var lines = csv.Stdout.Trim().Split('\n');
        Assert.Equal("learning_rate,reg,val_accuracy", lines[0].Trim());
        Assert.Equal(3, lines.Length);

        var bad = _h.Run(TimeSpan.FromMinutes(1), "results", "tiny", "--store", _h.Store(), "--columns", "reg,lr");
        Assert.Equal(2, bad.Code);
        Assert.Contains("unknown column 'lr'", bad.Stderr);
        Assert.Contains("position 5", bad.Stderr);
    }

    [Fact]
    public async Task Studies_trials_and_epochs_are_served_filtered_sorted_and_paged()
    {
        var (client, app) = await StartAsync();
        await using (app)
        {
            var studies = await Json(await client.GetAsync("/api/studies"));
            var study = studies.EnumerateArray().Single();
            Assert.Equal("tiny", study.GetProperty("name").GetString());
            Assert.Equal(6, study.GetProperty("counts").GetProperty("completed").GetInt32());
            Assert.True(study.GetProperty("closed").GetBoolean());
            Assert.True(study.GetProperty("result").GetProperty("test_accuracy").GetDouble() > 0);

            var page = await Json(await client.GetAsync("/api/studies/tiny/trials?where=" + Uri.EscapeDataString("reg >= 10000 and state = completed") + "&sort=-learning_rate&page=1&page_size=2"));
            Assert.Equal(3, page.GetProperty("total").GetInt32());
            var trials = page.GetProperty("trials").EnumerateArray().ToList();
            Assert.Equal(2, trials.Count);
            Assert.Equal([1e-6, 5e-7], trials.Select(t => t.GetProperty("parameters").GetProperty("learning_rate").GetDouble()));
            var second = await Json(await client.GetAsync("/api/studies/tiny/trials?where=" + Uri.EscapeDataString("reg >= 10000") + "&sort=-learning_rate&page=2&page_size=2"));
            Assert.Equal(1e-7, second.GetProperty("trials")[0].GetProperty("parameters").GetProperty("learning_rate").GetDouble());

            // Columns and groups, as `sweeper results --columns/--group-by`.
            var narrow = await Json(await client.GetAsync("/api/studies/tiny/trials?columns=learning_rate,val_accuracy&sort=number&page_size=1"));
            Assert.Equal(["learning_rate", "val_accuracy"], narrow.GetProperty("trials")[0].EnumerateObject().Select(p => p.Name));
            Assert.Equal(1e-7, narrow.GetProperty("trials")[0].GetProperty("learning_rate").GetDouble());
            var all = (await _store.GetTrialsAsync("tiny")).ToList();
            var grouped = await Json(await client.GetAsync("/api/studies/tiny/trials?group_by=reg&where=" + Uri.EscapeDataString("learning_rate > 2e-7")));
            Assert.Equal(4, grouped.GetProperty("total").GetInt32());
            var groups = grouped.GetProperty("groups").EnumerateArray().ToList();
            Assert.Equal(2, groups.Count);
            foreach (var g in groups)
            {
                var members = all.Where(t => Core.Sweeps.ParamValue.AsDouble(Core.Sweeps.ParamJson.Deserialize(t.ParametersJson)["reg"]) == g.GetProperty("reg").GetDouble()
                    && Core.Sweeps.ParamValue.AsDouble(Core.Sweeps.ParamJson.Deserialize(t.ParametersJson)["learning_rate"]) > 2e-7).ToList();
                Assert.Equal(2, g.GetProperty("trials").GetInt32());
                Assert.Equal(members.Max(t => t.ValAccuracy)!.Value, g.GetProperty("best_val_accuracy").GetDouble(), 9);
                Assert.Equal(members.Average(t => t.ValAccuracy)!.Value, g.GetProperty("mean_val_accuracy").GetDouble(), 9);
            }

            Assert.True(groups[0].GetProperty("best_val_accuracy").GetDouble() >= groups[1].GetProperty("best_val_accuracy").GetDouble());

            var points = await Json(await client.GetAsync("/api/studies/tiny/points?where=" + Uri.EscapeDataString("reg >= 10000")));
            Assert.Equal((3, 3, false), (points.GetProperty("total").GetInt32(), points.GetProperty("trials").GetArrayLength(), points.GetProperty("sampled").GetBoolean()));

            var detail = await Json(await client.GetAsync("/api/studies/tiny/trials/3"));
            Assert.Equal(3, detail.GetProperty("trial").GetProperty("number").GetInt32());
            Assert.Equal(2, detail.GetProperty("epochs").GetArrayLength());
            Assert.True(detail.GetProperty("epochs")[1].GetProperty("val_accuracy").GetDouble() > 0);

            var best = study.GetProperty("result").GetProperty("best_trial_number").GetInt32();
            var weights = await Json(await client.GetAsync($"/api/studies/tiny/trials/{best}/weights"));
            Assert.Equal(10, weights.GetProperty("units").GetInt32());
            var images = weights.GetProperty("images").EnumerateArray().ToList();
            Assert.Equal(Engine.Data.Cifar10.ClassNames, images.Select(i => i.GetProperty("label").GetString()));
            var rgb = Convert.FromBase64String(images[0].GetProperty("rgb").GetString()!);
            Assert.Equal(3072, rgb.Length);
            Assert.Contains((byte)0, rgb); // scaled over its own range: the minimum maps to 0 and the maximum to 255
            Assert.Contains((byte)255, rgb);

            var workers = await Json(await client.GetAsync("/api/workers"));
            Assert.True(workers.GetArrayLength() >= 1);
        }
    }

    [Theory]
    [InlineData("/api/studies/tiny/trials?where=reg%20%3E%3E%201", HttpStatusCode.BadRequest, "position")]
    [InlineData("/api/studies/tiny/trials?where=regularization%20%3E%201", HttpStatusCode.BadRequest, "unknown field 'regularization'")]
    [InlineData("/api/studies/tiny/trials?sort=-nope", HttpStatusCode.BadRequest, "unknown field 'nope'")]
    [InlineData("/api/studies/tiny/trials?page=0", HttpStatusCode.BadRequest, "page must be")]
    [InlineData("/api/studies/tiny/points?max=1", HttpStatusCode.BadRequest, "max must be")]
    [InlineData("/api/studies/tiny/points?where=reg%20%3E", HttpStatusCode.BadRequest, "position")]
    [InlineData("/api/studies/tiny/trials?columns=reg,nope", HttpStatusCode.BadRequest, "unknown column 'nope'")]
    [InlineData("/api/studies/tiny/trials?group_by=x%27%3B%20DROP%20TABLE%20trials", HttpStatusCode.BadRequest, "unknown field")]
    [InlineData("/api/studies/tiny/trials?page_size=100000", HttpStatusCode.BadRequest, "page_size must be")]
    [InlineData("/api/studies/tiny/trials?where=model%20%3D%20%22x%27%3B%20DROP%20TABLE%20trials%3B%20--%22", HttpStatusCode.OK, "\"total\":0")]
    [InlineData("/api/studies/nope", HttpStatusCode.NotFound, "no study named nope")]
    [InlineData("/api/studies/tiny/trials/99", HttpStatusCode.NotFound, "no trial 99")]
    public async Task Bad_queries_and_parameters_get_clear_answers_and_nothing_reaches_sql(string path, HttpStatusCode status, string text)
    {
        var (client, app) = await StartAsync();
        await using (app)
        {
            var response = await client.GetAsync(path);
            Assert.Equal(status, response.StatusCode);
            Assert.Contains(text, await response.Content.ReadAsStringAsync());
            Assert.Equal(6, (await _store.GetTrialsAsync("tiny")).Count);
        }
    }

    [Fact]
    public async Task A_filter_errors_position_in_the_json_is_the_one_its_message_gives()
    {
        var (client, app) = await StartAsync();
        await using (app)
        {
            var response = await client.GetAsync("/api/studies/tiny/trials?where=" + Uri.EscapeDataString("reg >> 1"));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var body = await Json(response);
            // The second '>' is the 6th character.
            Assert.Equal(6, body.GetProperty("position").GetInt32());
            Assert.Contains("at position 6 of", body.GetProperty("error").GetString());
        }
    }

    [Fact]
    public async Task Everything_is_read_only_and_a_token_guards_every_request_when_set()
    {
        var (client, app) = await StartAsync(token: "s3cret");
        await using (app)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/studies")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/studies?token=wrong")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/studies?token=s3cret")).StatusCode);
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "s3cret");
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/studies")).StatusCode);
            Assert.Equal(HttpStatusCode.MethodNotAllowed, (await client.PostAsync("/api/studies", new StringContent("{}"))).StatusCode);
            Assert.Equal(HttpStatusCode.MethodNotAllowed, (await client.DeleteAsync("/api/studies/tiny")).StatusCode);

            // HEAD is answered as its GET without a body (it was 405: the endpoints are GETs), and guarded the same.
            foreach (var path in (string[])["/api/studies", "/", "/api/studies/tiny/trials?sort=-val_accuracy"])
            {
                var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
                Assert.True(head.StatusCode == HttpStatusCode.OK, $"{path}: {head.StatusCode}");
                Assert.Empty(await head.Content.ReadAsByteArrayAsync());
            }

            Assert.Equal(HttpStatusCode.NotFound, (await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/api/studies/nope"))).StatusCode);
            client.DefaultRequestHeaders.Authorization = null;
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/api/studies"))).StatusCode);
        }

        var ex = Assert.Throws<ArgumentException>(() => DashboardApp.Validate(new DashboardOptions { Url = "http://0.0.0.0:5077" }));
        Assert.Contains("token", ex.Message);
        DashboardApp.Validate(new DashboardOptions { Url = "http://0.0.0.0:5077", Token = "t" });
        DashboardApp.Validate(new DashboardOptions { Url = "http://localhost:5077" });
        DashboardApp.Validate(new DashboardOptions { Url = "http://*:5077/", Token = "t" });
        foreach (var bad in new[] { "notaurl", "127.0.0.1:5077", "ftp://127.0.0.1:5077", "http://127.0.0.1:5077/dash" })
        {
            var refused = Assert.Throws<ArgumentException>(() => DashboardApp.Validate(new DashboardOptions { Url = bad }));
            Assert.StartsWith($"--url {bad}: not an address to listen on", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>A store whose database is out of reach: every call fails as the stores fail then.</summary>
    public class UnreachableStore : System.Reflection.DispatchProxy
    {
        protected override object? Invoke(System.Reflection.MethodInfo? targetMethod, object?[]? args) =>
            throw new Core.Trials.StoreUnavailableException("PostgreSQL store unreachable after 6 attempts: Failed to connect to 127.0.0.1:5432", new TimeoutException());
    }

    [Fact]
    public async Task A_store_out_of_reach_is_a_503_that_says_so_not_an_empty_500()
    {
        var store = System.Reflection.DispatchProxy.Create<Core.Trials.ITrialStore, UnreachableStore>();
        await using var app = DashboardApp.Build(store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        foreach (var path in (string[])["/api/studies", "/api/studies/tiny/trials", "/api/studies/tiny/history"])
        {
            var response = await client.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{path}: {response.StatusCode}");
            Assert.StartsWith("the store is unreachable for now: PostgreSQL store unreachable", (await Json(response)).GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/api/studies"))).StatusCode);
    }

    [Fact]
    public async Task The_pages_and_their_scripts_are_served_from_the_program()
    {
        var (client, app) = await StartAsync();
        await using (app)
        {
            Assert.Contains("Sweeper studies", await client.GetStringAsync("/"));
            var page = await client.GetStringAsync("/study/tiny");
            Assert.Contains("parallel coordinates", page);
            Assert.DoesNotContain("http://", page.Replace("http://www.w3.org", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Contains("function scatter", await client.GetStringAsync("/static/app.js"));
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/static/missing.js")).StatusCode);
        }
    }
}
