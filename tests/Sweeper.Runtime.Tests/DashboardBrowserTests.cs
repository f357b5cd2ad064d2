using System.Text.Json;
using Microsoft.Playwright;
using Sweeper.Dashboard;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download), while
/// a real sweep runs. Chromium is installed by scripts/setup.sh; without it the test fails saying so.
/// </summary>
public class DashboardBrowserTests
{
    [Fact]
    public async Task The_study_page_shows_a_running_sweep_sorts_filters_and_draws_curves()
    {
        Assert.True(File.Exists(HeadlessChromium.Executable), $"{HeadlessChromium.Executable} is missing: scripts/setup.sh installs Debian's chromium package for the browser tests.");
        using var h = new Harness();
        var sweep = h.Write("live.yaml", """
            name: live
            method: grid
            model: two_layer
            data: {train_size: 8000, val_size: 300, test_size: 300}
            parameters:
              hidden_size: {values: [30, 60]}
              learning_rate: {values: [3.0e-4, 1.0e-3, 3.0e-3]}
              reg: {values: [1.0e-3, 1.0e-1]}
              epochs: {value: 15}
              batch_size: {value: 100}
            budget: {max_trials: 12}
            early_terminate: {type: none}
            """);
        using var run = h.Start("run", sweep, "--store", h.Store(), "--slots", "1");
        var dbPath = Path.Combine(h.Dir, "store.db");
        for (var i = 0; i < 200 && !File.Exists(dbPath); i++)
        {
            await Task.Delay(50);
        }

        await using var store = await TrialStores.OpenAsync(h.Store());
        await using var app = DashboardApp.Build(store, new DashboardOptions { Url = "http://127.0.0.1:0" });
        await app.StartAsync();
        var baseUrl = app.Urls.First();
        // Screenshots go to $SWEEPER_SCREENSHOTS when set (to look at them), else into the scratch folder.
        var shots = Environment.GetEnvironmentVariable("SWEEPER_SCREENSHOTS") is { Length: > 0 } keep ? keep : Path.Combine(h.Dir, "shots");
        Directory.CreateDirectory(shots);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await HeadlessChromium.LaunchAsync(playwright);
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 1400 } });

        // The list of studies links to the study.
        await page.GotoAsync(baseUrl);
        // Only the navigation's commit is awaited, watched from before the click: the page's own polling (every 2 s)
        // keeps the network busy, and WaitForURLAsync after the click, when the navigation had already committed,
        // waited for a load event it could miss (a 30 s timeout in CI).
        var arrived = page.WaitForURLAsync("**/study/live", new PageWaitForURLOptions { WaitUntil = WaitUntilState.Commit });
        await page.Locator("#studies a", new PageLocatorOptions { HasText = "live" }).ClickAsync();
        await arrived;

        // Trials of the running sweep appear in the table as they complete.
        await page.WaitForFunctionAsync("document.querySelectorAll('#trials tbody tr').length >= 12", null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        await page.WaitForFunctionAsync("[...document.querySelectorAll('#trials tbody tr td:nth-child(2)')].filter(td => td.textContent === 'completed').length >= 2", null,
            new PageWaitForFunctionOptions { Timeout = 90_000 });
        Assert.False(run.Process.HasExited && run.Process.ExitCode != 0, run.Stderr);
        int Completed(IReadOnlyList<string> states) => states.Count(s => s == "completed");
        var early = await page.Locator("#trials tbody tr td:nth-child(2)").AllTextContentsAsync();
        Assert.Contains(early, s => s is "pending" or "running"); // the sweep is still running

        // The open page follows the sweep without a reload.
        await page.WaitForFunctionAsync($"[...document.querySelectorAll('#trials tbody tr td:nth-child(2)')].filter(td => td.textContent === 'completed').length > {Completed(early)}",
            null, new PageWaitForFunctionOptions { Timeout = 90_000 });

        // Sort by number ascending (one click sorts descending, the next ascending).
        await page.Locator("#trials th[data-field=number]").ClickAsync();
        await page.WaitForFunctionAsync("document.querySelector('#trials tbody tr td').textContent === '11'");
        await page.Locator("#trials th[data-field=number]").ClickAsync();
        await page.WaitForFunctionAsync("document.querySelector('#trials tbody tr td').textContent === '0'");
        var numbers = await page.Locator("#trials tbody tr td:first-child").AllTextContentsAsync();
        Assert.Equal(Enumerable.Range(0, 12).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), numbers);

        // Filter: only completed trials with the larger hidden size.
        await page.FillAsync("#where", "state = completed and hidden_size >= 60");
        await page.ClickAsync("#apply");
        await page.WaitForFunctionAsync("[...document.querySelectorAll('#trials tbody tr td:nth-child(2)')].every(td => td.textContent === 'completed')");
        var states = await page.Locator("#trials tbody tr td:nth-child(2)").AllTextContentsAsync();
        Assert.All(states, s => Assert.Equal("completed", s));

        // A bad filter shows where it is wrong.
        await page.FillAsync("#where", "hiden_size > 3");
        await page.ClickAsync("#apply");
        await page.WaitForFunctionAsync("document.getElementById('query-error').textContent.includes('position 1')");
        await page.FillAsync("#where", "state = completed");
        await page.ClickAsync("#apply");
        await page.WaitForFunctionAsync("document.getElementById('query-error').textContent === ''");

        // Select a trial: its learning curves are drawn.
        await page.Locator("#trials tbody tr").First.ClickAsync();
        await page.WaitForFunctionAsync("document.querySelectorAll('#trials tbody tr.selected').length === 1");
        foreach (var canvas in new[] { "loss", "accuracy", "scatter", "parallel" })
        {
            await page.WaitForFunctionAsync($$"""
                (() => { const c = document.getElementById('{{canvas}}'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let coloured = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0 && !(d[i] > 240 && d[i + 1] > 240 && d[i + 2] > 240)) coloured++; } return coloured > 300; })()
                """, null, new PageWaitForFunctionOptions { Timeout = 20_000 });
        }

        // The best trial's first-layer weights are drawn as 32x32 images, one per hidden unit.
        await page.WaitForFunctionAsync("document.querySelectorAll('#weights canvas.weight').length >= 20", null, new PageWaitForFunctionOptions { Timeout = 20_000 });

        // The optimization history is drawn (dots and the best-so-far line), by trial number and, toggled, by finish time.
        await page.WaitForFunctionAsync("+(document.getElementById('history').dataset.drawn || 0) >= 2", null, new PageWaitForFunctionOptions { Timeout = 20_000 });
        await AssertPaintedAsync(page, "history");
        await page.ClickAsync("#history-x");
        await page.WaitForFunctionAsync("document.getElementById('history-x').textContent === 'by trial number' && document.getElementById('history-note').textContent.includes('completed trials')");
        Assert.True(int.Parse(await page.GetAttributeAsync("#history", "data-drawn") ?? "0", System.Globalization.CultureInfo.InvariantCulture) >= 2);

        // No two column headers of the trial table read alike: the parameter epochs is params.epochs beside the trial's "epochs done".
        var headers = (await page.Locator("#trials thead tr:last-child th").AllTextContentsAsync()).Select(t => t.Replace("\u2193", "").Replace("\u2191", "").Trim()).ToList();
        Assert.Equal(headers.Count, headers.Distinct().Count());
        Assert.Contains("epochs done", headers);
        Assert.Contains("params.epochs", headers);
        Assert.Equal(["trial", "parameters"], await page.Locator("#trials thead tr.groups th").AllTextContentsAsync());

        // Parallel-coordinates axis labels never overlap, at this width and in a narrow window (where they no longer fit in one row).
        await AssertLabelsApartAsync(page);
        await page.SetViewportSizeAsync(440, 1400);
        await page.WaitForFunctionAsync("document.getElementById('parallel').clientWidth < 420 && JSON.parse(document.getElementById('parallel').dataset.labels || '[]').some(b => b.y > 100)",
            null, new PageWaitForFunctionOptions { Timeout = 20_000 });
        await AssertLabelsApartAsync(page);
        await page.SetViewportSizeAsync(1280, 1400);

        // The worst case: many long names on a narrow chart are shortened, and still no two labels meet.
        var crowded = await page.EvaluateAsync<JsonElement>("""
            (() => { const c = document.createElement('canvas'); c.style.cssText = 'width:360px;height:200px'; document.body.appendChild(c);
              const { g, w, h } = prepare(c); const axes = ['learning_rate', 'reg', 'hidden_size', 'dropout', 'weight_scale', 'batch_size', 'lr_decay', 'momentum', 'normalization', 'val_accuracy'];
              const x = i => 30 + i * (w - 60) / (axes.length - 1); const boxes = axisLabels(g, axes, x, w, h); c.remove(); return boxes; })()
            """);
        var crowdedBoxes = crowded.EnumerateArray().Select(b => (Text: b.GetProperty("text").GetString()!, X: b.GetProperty("x").GetDouble(), Y: b.GetProperty("y").GetDouble(), W: b.GetProperty("w").GetDouble())).ToList();
        Assert.Equal(10, crowdedBoxes.Count);
        Assert.Contains(crowdedBoxes, b => b.Text.EndsWith('\u2026'));
        Assert.All(crowdedBoxes, b => Assert.True(b.X >= 0 && b.X + b.W <= 360.5 && b.Text.Length > 1, $"label '{b.Text}' at {b.X}+{b.W}"));
        foreach (var row in crowdedBoxes.GroupBy(b => b.Y))
        {
            var ordered = row.OrderBy(b => b.X).ToList();
            Assert.All(ordered.Zip(ordered.Skip(1)), p => Assert.True(p.First.X + p.First.W <= p.Second.X, $"'{p.First.Text}' runs into '{p.Second.Text}'"));
        }

        // Successive halving is not used by this study: no rungs card.
        Assert.True(await page.Locator("#rungs-card").IsHiddenAsync());

        // Parameter importances once 8 trials have completed: a bar per varied parameter, the method named.
        // (learning_rate moves validation accuracy most in this grid, so some parameter has a share above 0.)
        await page.WaitForFunctionAsync("+(document.getElementById('importance').dataset.drawn || 0) >= 1 && +(document.getElementById('importance').dataset.top || 0) > 0", null,
            new PageWaitForFunctionOptions { Timeout = 240_000 });
        await AssertPaintedAsync(page, "importance");
        Assert.Contains("main-effect variance", await page.TextContentAsync("#importance-note"));

        var shot = Path.Combine(shots, "study.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        using (var file = File.OpenRead(shot))
        {
            var png = Engine.Data.Png.Decode(file, shot);
            var distinct = new HashSet<int>();
            for (var i = 0; i < png.Pixels.Length; i += png.Channels * 7)
            {
                distinct.Add(png.Pixels[i] << 16 | png.Pixels[i + 1] << 8 | png.Pixels[i + 2]);
            }

            Assert.True(distinct.Count > 50, $"the screenshot looks blank ({distinct.Count} colours)");
        }

        // A hyperband study (written straight into the store): its rungs, with three trials paused at the first.
        const string Asha = "name: asha\nmethod: random\nmodel: softmax\nparameters:\n  reg: {distribution: uniform, min: 0, max: 1}\n  epochs: {value: 9}\nearly_terminate: {type: hyperband, min_iter: 1, eta: 3}\nbudget: {max_trials: 4}\n";
        var ashaSweep = Core.Sweeps.SweepParser.Parse(Asha);
        await store.CreateStudyAsync(new Core.Trials.NewStudy("asha", "h", Asha, Core.Sweeps.SweepJson.Serialize(ashaSweep), "random",
            [.. Enumerable.Range(0, 4).Select(i => new Core.Trials.NewTrial(i, FormattableString.Invariant($$"""{"reg":{{i / 4.0}},"epochs":9}"""), (ulong)i))]));
        for (var i = 0; i < 3; i++)
        {
            var lease = (await store.ClaimAsync("asha", "w", TimeSpan.FromMinutes(5)))!;
            await store.ReportEpochAsync(lease, new Core.Trials.EpochRecord(1, 1, 0.5, 0.5, 1e-3, 1), null, TimeSpan.FromMinutes(5));
            await store.PauseAsync(lease, new Core.Trials.TrialFinish(Core.Trials.TrialState.Paused, 0.5, 0.5, 1, "paused at a rung"));
        }

        await page.GotoAsync(baseUrl + "/study/asha", new PageGotoOptions { WaitUntil = WaitUntilState.Commit });
        await page.WaitForFunctionAsync("!document.getElementById('rungs-card').hidden && document.querySelectorAll('#rungs tbody tr').length === 3", null, new PageWaitForFunctionOptions { Timeout = 20_000 });
        Assert.Equal(["1", "3", "3"], (await page.Locator("#rungs tbody tr[data-epoch='1'] td").AllTextContentsAsync()).Take(3));
        Assert.Equal(["3", "0", "0"], (await page.Locator("#rungs tbody tr[data-epoch='3'] td").AllTextContentsAsync()).Take(3));
        Assert.Contains("3 paused", await page.TextContentAsync("#summary"));

        await app.StopAsync();
    }

    /// <summary>Waits until the canvas has more than 300 pixels that are neither transparent nor near-white.</summary>
    private static Task AssertPaintedAsync(IPage page, string canvas) => page.WaitForFunctionAsync($$"""
        (() => { const c = document.getElementById('{{canvas}}'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let coloured = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0 && !(d[i] > 240 && d[i + 1] > 240 && d[i + 2] > 240)) coloured++; } return coloured > 300; })()
        """, null, new PageWaitForFunctionOptions { Timeout = 20_000 });

    /// <summary>The parallel-coordinates chart's axis labels (boxes the page records as it draws them) lie inside the canvas and no two intersect.</summary>
    private static async Task AssertLabelsApartAsync(IPage page)
    {
        var json = await page.GetAttributeAsync("#parallel", "data-labels");
        var width = await page.EvaluateAsync<double>("document.getElementById('parallel').clientWidth");
        var boxes = JsonDocument.Parse(json!).RootElement.EnumerateArray()
            .Select(b => (Text: b.GetProperty("text").GetString()!, X: b.GetProperty("x").GetDouble(), Y: b.GetProperty("y").GetDouble(), W: b.GetProperty("w").GetDouble(), H: b.GetProperty("h").GetDouble())).ToList();
        Assert.True(boxes.Count >= 6, $"{boxes.Count} axis labels"); // model, hidden_size, learning_rate, reg, epochs, batch_size, val_accuracy
        Assert.All(boxes, b => Assert.True(b.Text.Length > 0 && b.X >= 0 && b.X + b.W <= width + 0.5, $"label '{b.Text}' at {b.X}+{b.W} outside 0..{width}"));
        for (var i = 0; i < boxes.Count; i++)
        {
            for (var j = i + 1; j < boxes.Count; j++)
            {
                var (a, b) = (boxes[i], boxes[j]);
                var apart = a.X + a.W <= b.X || b.X + b.W <= a.X || a.Y + a.H <= b.Y || b.Y + b.H <= a.Y;
                Assert.True(apart, $"axis labels '{a.Text}' and '{b.Text}' overlap");
            }
        }
    }
}

