using System.Diagnostics;
using System.Text.Json;
using Microsoft.Playwright;
using Sweeper.Dashboard;
using Sweeper.Storage;

namespace Sweeper.Bench;

/// <summary>
/// How soon the study page of a large study is usable: a study of N trials (default 100,000) with 20 epochs each,
/// the dashboard in this process, Debian's Chromium headless (Playwright, no download). Each load opens the page in a
/// fresh browser context (no cache) and waits until the trial table's first page and the scatter and parallel
/// coordinates charts, the optimization history and the parameter importances are drawn (and the rungs card has
/// loaded); the time is the page's own clock from navigation start (performance.now()).
/// </summary>
public static class PageLoad
{
    public static async Task RunAsync(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var trials = int.Parse(Arg("--trials") ?? "100000", System.Globalization.CultureInfo.InvariantCulture);
        var loads = int.Parse(Arg("--loads") ?? "10", System.Globalization.CultureInfo.InvariantCulture);
        if (!File.Exists(Runtime.Tests.HeadlessChromium.Executable))
        {
            throw new InvalidOperationException($"{Runtime.Tests.HeadlessChromium.Executable} is missing: scripts/setup.sh installs Debian's chromium package.");
        }

        var dir = Path.Combine(Path.GetTempPath(), "sweeper-pagebench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var sqlite = "sqlite:" + Path.Combine(dir, "q.db");
            await Queries.FillAsync(sqlite, trials);
            await MeasureAsync("sqlite", sqlite, trials, loads);
            if (!args.Contains("--no-postgres"))
            {
                var pg = Arg("--postgres") ?? Storage.Tests.PostgresServer.Shared.CreateDatabase();
                await Queries.FillAsync(pg, trials);
                await MeasureAsync("postgres", pg, trials, loads);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task MeasureAsync(string backend, string address, int trials, int loads)
    {
        await using var store = await TrialStores.OpenAsync(address);
        await using var app = DashboardApp.Build(store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        var url = app.Urls.First() + "/study/big";
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await Runtime.Tests.HeadlessChromium.LaunchAsync(playwright);
        var times = new List<double>();
        var first = 0.0;
        int drawn = 0, rows = 0, historyPoints = 0, importanceBars = 0;
        for (var i = 0; i <= loads; i++)
        {
            await using var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } });
            var page = await context.NewPageAsync();
            var wall = Stopwatch.StartNew();
            await page.GotoAsync(url, new PageGotoOptions { WaitUntil = WaitUntilState.Commit });
            await page.WaitForFunctionAsync(
                "() => document.querySelector('#trials').dataset.total && document.querySelector('#scatter').dataset.drawn && document.querySelector('#parallel').dataset.drawn" +
                " && document.querySelector('#history').dataset.drawn && document.querySelector('#importance').dataset.drawn && document.querySelector('#rungs-card').dataset.loaded",
                null, new PageWaitForFunctionOptions { Timeout = 60_000, PollingInterval = 5 });
            var ms = await page.EvaluateAsync<double>("() => performance.now()");
            wall.Stop();
            drawn = int.Parse(await page.GetAttributeAsync("#scatter", "data-drawn") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            historyPoints = int.Parse(await page.GetAttributeAsync("#history", "data-drawn") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            importanceBars = int.Parse(await page.GetAttributeAsync("#importance", "data-drawn") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            rows = await page.Locator("#trials tbody tr").CountAsync();
            if (i > 0)
            {
                times.Add(ms); // every load is a fresh browser context; the first also warms the server (JIT), so it is reported apart
            }
            else
            {
                first = ms;
            }
        }

        times.Sort();
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "study_page_load",
            store = backend,
            trials,
            epochs_per_trial = 20,
            loads,
            table_rows = rows,
            first_load_ms = Math.Round(first, 0),
            scatter_points = drawn,
            history_points = historyPoints,
            importance_bars = importanceBars,
            p50_ms = Math.Round(Measure.Quantile(times, 0.5), 0),
            p95_ms = Math.Round(Measure.Quantile(times, 0.95), 0),
            max_ms = Math.Round(times[^1], 0),
            target_ms = 1000,
        }));
    }
}
