using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Sweeper.Core.Queries;
using Sweeper.Core.Search;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;

namespace Sweeper.Dashboard;

/// <summary>
/// The study page's summary charts, each a compact GET endpoint of numbers: the optimization history
/// (<c>/api/studies/{s}/history</c>), parameter importances (<c>/importance</c>) and successive halving's rungs
/// (<c>/rungs</c>). What they read from the store is cached per study and kept while the study's state counts stay the
/// same (a finished trial's value never changes afterwards), so a large, settled study is read once, not on every poll.
/// </summary>
public sealed class Charts
{
    /// <summary>Trials the importances are computed from at most (a fixed sample of the completed ones beyond that).</summary>
    public const int ImportanceRows = 2_000;

    /// <summary>Completed trials from which a running study's history is re-read at most every 10 s rather than at every change.</summary>
    public const int LargeStudy = 5_000;

    /// <summary>Fewest completed trials with a value before importances are computed.</summary>
    public const int ImportanceMinTrials = 8;

    /// <summary>How importances are computed, in words (shown on the page).</summary>
    public const string ImportanceMethod =
        "fANOVA-like main-effect variance: a random forest of 32 regression trees predicts the metric from the parameters (numbers as they are, " +
        "log-scaled ones as logs, categories as ordered categories), and each parameter's share is the variance of the forest's partial dependence on it; " +
        "seeded, from at most 2,000 completed trials";

    private readonly ITrialStore _store;
    private readonly JsonSerializerOptions _json;
    private readonly ConcurrentDictionary<string, Cached<HistoryData>> _history = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Cached<object>> _importance = new(StringComparer.Ordinal);

    private Charts(ITrialStore store, JsonSerializerOptions json) => (_store, _json) = (store, json);

    /// <summary>Maps the endpoints onto <paramref name="app"/>.</summary>
    public static void Map(WebApplication app, ITrialStore store, JsonSerializerOptions json)
    {
        var charts = new Charts(store, json);
        app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(() => charts.WarmAsync(app.Lifetime.ApplicationStopping)));
        app.MapGet("/api/studies/{study}/history", (string study, HttpRequest request, CancellationToken ct) => charts.HistoryAsync(study, request, ct));
        app.MapGet("/api/studies/{study}/importance", (string study, CancellationToken ct) => charts.ImportanceAsync(study, ct));
        app.MapGet("/api/studies/{study}/rungs", (string study, CancellationToken ct) => charts.RungsAsync(study, ct));
    }

    /// <summary>
    /// Fills the caches of the closed studies (newest first, at most 20) once the dashboard has started, so that the
    /// first visit of a finished study's page does not pay for reading its history and fitting its importances. A closed
    /// study never changes, so what is computed here stays right; open ones are computed on their first request.
    /// </summary>
    private async Task WarmAsync(CancellationToken ct)
    {
        try
        {
            foreach (var record in (await _store.ListStudiesAsync(ct)).Where(s => s.Closed).OrderByDescending(s => s.CreatedAt).Take(20))
            {
                var counts = await _store.CountStatesAsync(record.Name, ct);
                var sweep = SweepJson.Of(record);
                await _history.GetOrAdd(record.Name, _ => new Cached<HistoryData>()).GetAsync(counts, (_, _) => true,
                    () => ReadHistoryAsync(record.Name, sweep.Metric, CancellationToken.None));
                await _importance.GetOrAdd(record.Name, _ => new Cached<object>()).GetAsync(counts, (_, _) => true,
                    () => ComputeImportanceAsync(record, counts, CancellationToken.None));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or StoreUnavailableException or InvalidDataException or System.Text.Json.JsonException)
        {
            // Only a head start: any study not warmed is computed on its first request.
        }
    }

    /// <summary>
    /// Each completed trial's value of the study's metric and the best value so far (lowest for goal minimize), by trial
    /// number (<c>x=number</c>, the default) or by finish time (<c>x=time</c>, milliseconds since 1970). Past <c>max</c>
    /// trials (default 1,000, at most 20,000) the trials are downsampled: the x range is cut into max/2 runs of equal
    /// counts, and each run keeps its lowest and highest value, so the cloud keeps its outline and extremes. The
    /// best-so-far line is computed over every trial and keeps every point where it improves (thinned to max as well).
    /// </summary>
    private async Task<IResult> HistoryAsync(string study, HttpRequest request, CancellationToken ct)
    {
        var xMode = request.Query["x"].ToString() is { Length: > 0 } given ? given : "number";
        if (xMode is not ("number" or "time"))
        {
            return Error(400, $"x must be number or time (got '{xMode}')");
        }

        if (!DashboardApp.TryInt(request, "max", 1_000, 10, 20_000, out var max, out var problem))
        {
            return Error(400, problem!);
        }

        var record = await _store.GetStudyAsync(study, ct);
        if (record is null)
        {
            return Error(404, $"no study named {study}");
        }

        var sweep = SweepJson.Of(record);
        var counts = await _store.CountStatesAsync(study, ct);
        // A large study that is still running is re-read at most every 10 s (the page polls every 2 s).
        var data = await _history.GetOrAdd(study, _ => new Cached<HistoryData>()).GetAsync(counts,
            (old, age) => old.Completed >= LargeStudy && age < TimeSpan.FromSeconds(10), () => ReadHistoryAsync(study, sweep.Metric, CancellationToken.None));
        var byTime = xMode == "time";
        var order = byTime ? data.ByTime : null;
        var n = byTime ? order!.Length : data.Values.Length;
        double X(int i) => byTime ? data.FinishedMs[order![i]] : data.Numbers[i];
        double Y(int i) => byTime ? data.Values[order![i]] : data.Values[i];

        // The best-so-far line, over every trial: a point wherever it improves, and one at the end.
        var minimize = sweep.Goal == "minimize";
        var bestIdx = new List<int>();
        var best = double.NaN;
        for (var i = 0; i < n; i++)
        {
            var y = Y(i);
            if (double.IsNaN(best) || (minimize ? y < best : y > best))
            {
                best = y;
                bestIdx.Add(i);
            }
        }

        if (n > 0 && bestIdx[^1] != n - 1)
        {
            bestIdx.Add(n - 1);
        }

        bestIdx = Thin(bestIdx, max);
        var shown = Downsample(n, max, Y);
        return Json(new
        {
            metric = sweep.Metric,
            goal = minimize ? "minimize" : "maximize",
            x = xMode,
            completed = data.Values.Length,
            without_finish_time = data.Values.Length - data.ByTime.Length,
            shown = shown.Count,
            downsampled = shown.Count < n,
            note = data.Note ?? (byTime && data.ByTime.Length < data.Values.Length
                ? $"{data.Values.Length - data.ByTime.Length} completed trials have no finish time and are left out by time"
                : null),
            xs = shown.Select(X),
            ys = shown.Select(Y),
            best_xs = bestIdx.Select(X),
            // The step line's value at each of its points: the best so far there (the value itself, or the previous best at the final point).
            best_ys = BestValues(bestIdx, Y, minimize),
        });
    }

    private static List<double> BestValues(List<int> idx, Func<int, double> y, bool minimize)
    {
        var list = new List<double>(idx.Count);
        foreach (var i in idx)
        {
            var v = y(i);
            list.Add(list.Count == 0 ? v : minimize ? Math.Min(list[^1], v) : Math.Max(list[^1], v));
        }

        return list;
    }

    /// <summary>At most <paramref name="max"/> of the indices: the first, the last and evenly spaced ones between.</summary>
    private static List<int> Thin(List<int> idx, int max)
    {
        if (idx.Count <= max)
        {
            return idx;
        }

        var kept = new List<int>(max);
        for (var k = 0; k < max; k++)
        {
            kept.Add(idx[(int)Math.Round(k * (idx.Count - 1) / (double)(max - 1))]);
        }

        return [.. kept.Distinct()];
    }

    /// <summary>All of 0..n-1 when n &lt;= max; else, of max/2 runs of equal size, each run's lowest and highest value (in x order).</summary>
    public static List<int> Downsample(int n, int max, Func<int, double> y)
    {
        if (n <= max)
        {
            return [.. Enumerable.Range(0, n)];
        }

        var runs = max / 2;
        var kept = new List<int>(max);
        for (var r = 0; r < runs; r++)
        {
            int from = (int)((long)r * n / runs), to = (int)((long)(r + 1) * n / runs);
            int lo = from, hi = from;
            for (var i = from + 1; i < to; i++)
            {
                if (y(i) < y(lo))
                {
                    lo = i;
                }

                if (y(i) > y(hi))
                {
                    hi = i;
                }
            }

            kept.Add(Math.Min(lo, hi));
            if (hi != lo)
            {
                kept.Add(Math.Max(lo, hi));
            }
        }

        return kept;
    }

    private async Task<HistoryData> ReadHistoryAsync(string study, string metric, CancellationToken ct)
    {
        var completed = (await _store.QueryTrialsAsync(study, new TrialQuery(new Comparison("state", "=", "completed", 0), [new SortKey("number", false)], CountMatches: false), ct)).Trials;
        var numbers = new List<double>(completed.Count);
        var finished = new List<double>(completed.Count);
        var values = new List<double>(completed.Count);
        foreach (var t in completed)
        {
            if (StudySelection.RecordedValue(t, metric) is { } v && double.IsFinite(v))
            {
                numbers.Add(t.Number);
                finished.Add(t.FinishedAt is { } at ? at.ToUnixTimeMilliseconds() : double.NaN);
                values.Add(v);
            }
        }

        // By finish time: the trials that have one (a store filled in bulk may lack it), oldest first.
        var byTime = Enumerable.Range(0, values.Count).Where(i => !double.IsNaN(finished[i])).OrderBy(i => finished[i]).ThenBy(i => numbers[i]).ToArray();
        var note = completed.Count > 0 && values.Count == 0 ? NotRecorded(metric) : null;
        return new HistoryData([.. numbers], [.. finished], [.. values], byTime, note);
    }

    private static string NotRecorded(string metric) =>
        $"the study's metric {metric} is not kept in the trials' records (only val_accuracy and train_accuracy are), so there is nothing to draw";

    /// <summary>
    /// The share of importance of each parameter that varies among the completed trials (see
    /// <see cref="ImportanceMethod"/> and <see cref="Importance"/>), best first; parameters that do not vary are listed apart.
    /// Recomputed when the number of completed trials changes, except that past 200 trials it waits until 2% more have
    /// completed (or a minute has passed): a few trials more do not move the answer, and a forest costs a moment.
    /// </summary>
    private async Task<IResult> ImportanceAsync(string study, CancellationToken ct)
    {
        var record = await _store.GetStudyAsync(study, ct);
        if (record is null)
        {
            return Error(404, $"no study named {study}");
        }

        var counts = await _store.CountStatesAsync(study, ct);
        var answer = await _importance.GetOrAdd(study, _ => new Cached<object>()).GetAsync(counts,
            (old, age) => age < TimeSpan.FromMinutes(1) && (old.Completed == counts.Completed || (old.Completed >= 200 && Math.Abs(counts.Completed - old.Completed) < old.Completed / 50)),
            () => ComputeImportanceAsync(record, counts, CancellationToken.None));
        return Json(answer);
    }

    private async Task<object> ComputeImportanceAsync(StudyRecord record, StateCounts counts, CancellationToken ct)
    {
        var sweep = SweepJson.Of(record);
        var query = new TrialQuery(new Comparison("state", "=", "completed", 0), [new SortKey("number", false)], 0, ImportanceRows,
            counts.Completed > ImportanceRows ? Math.Min(1, 1.1 * ImportanceRows / counts.Completed) : null, CountMatches: false);
        var read = (await _store.QueryTrialsAsync(record.Name, query, ct)).Trials;
        var trials = read
            .Select(t => (Parameters: ParamJson.Deserialize(t.ParametersJson), Value: StudySelection.RecordedValue(t, sweep.Metric)))
            .Where(t => t.Value is { } v && double.IsFinite(v)).ToList();
        var names = sweep.ParameterNames;
        var varying = names.Where(n => trials.Select(t => t.Parameters.TryGetValue(n, out var v) ? ParamJson.Serialize(new Dictionary<string, object> { [n] = v }) : "").Distinct().Skip(1).Any()).ToList();
        var constant = names.Except(varying).ToList();
        if (trials.Count < ImportanceMinTrials || varying.Count == 0)
        {
            return new
            {
                method = ImportanceMethod,
                metric = sweep.Metric,
                trials = trials.Count,
                parameters = Array.Empty<object>(),
                constant,
                note = read.Count > 0 && trials.Count == 0 ? NotRecorded(sweep.Metric)
                    : varying.Count == 0 && trials.Count >= ImportanceMinTrials ? "no parameter varies among the completed trials"
                    : $"importances need at least {ImportanceMinTrials} completed trials with a value of {sweep.Metric} ({trials.Count} so far)",
            };
        }

        var logScaled = sweep.Parameters.Concat(sweep.Conditions.SelectMany(c => c.Parameters))
            .Where(p => p.Value is Distribution d && d.Kind.Contains("log", StringComparison.Ordinal)).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        var features = Importance.Encode(varying, [.. trials.Select(t => t.Parameters)], logScaled);
        var shares = Importance.Of(features, [.. trials.Select(t => t.Value!.Value)], new ImportanceOptions { MaxRows = ImportanceRows, Seed = sweep.Seed });
        return new
        {
            method = ImportanceMethod,
            metric = sweep.Metric,
            trials = trials.Count,
            parameters = varying.Select((n, i) => new { name = n, importance = Math.Round(shares[i], 4) }).OrderByDescending(p => p.importance).ThenBy(p => p.name, StringComparer.Ordinal),
            constant,
            note = shares.All(x => x == 0) ? "no parameter shows an effect on the trials so far" : null,
        };
    }

    /// <summary>
    /// Successive halving's rungs (studies with <c>early_terminate: hyperband</c>): for each rung epoch, and for the
    /// epoch a trial completes at, how many trials have reached it (done at least that many epochs) and how many are
    /// paused there now. Other studies answer <c>hyperband: false</c>.
    /// </summary>
    private async Task<IResult> RungsAsync(string study, CancellationToken ct)
    {
        var record = await _store.GetStudyAsync(study, ct);
        if (record is null)
        {
            return Error(404, $"no study named {study}");
        }

        var sweep = SweepJson.Of(record);
        if (sweep.EarlyTerminate is not { Type: EarlyTerminate.Hyperband } et)
        {
            return Json(new { hyperband = false, eta = (double?)null, complete_at = (int?)null, rungs = Array.Empty<object>() });
        }

        var schedule = new HyperbandSettings(et.MinIter, et.MaxIter, et.Eta, et.S).Schedule(StudySearch.TrialEpochs(sweep));
        var paused = new Dictionary<int, int>();
        var pausedGroups = await _store.GroupTrialsAsync(study, new TrialQuery(new Comparison("state", "=", "paused", 0), [], 0, 10_000), "epochs", ct);
        foreach (var g in pausedGroups)
        {
            // A trial pauses at a rung, after that rung's epoch; one paused elsewhere counts at the rung below it.
            var epochs = g.Value is null ? 0 : (int)ParamValue.AsDouble(g.Value);
            var rung = schedule.Rungs.LastOrDefault(r => r <= epochs);
            paused[rung] = paused.GetValueOrDefault(rung) + g.Trials;
        }

        var rungs = new List<object>();
        foreach (var epoch in schedule.Rungs.Append(schedule.CompleteAt))
        {
            var reached = (await _store.QueryTrialsAsync(study, new TrialQuery(new Comparison("epochs", ">=", (double)epoch, 0), [], 0, 0), ct)).Total;
            rungs.Add(new { epoch, reached, paused = paused.GetValueOrDefault(epoch), complete = epoch == schedule.CompleteAt });
        }

        return Json(new { hyperband = true, eta = (double?)schedule.Eta, complete_at = (int?)schedule.CompleteAt, rungs });
    }

    private IResult Json(object value) => Results.Json(value, _json);

    private IResult Error(int status, string message) => Results.Json(new { error = message }, _json, statusCode: status);

    /// <summary>A study's completed trials as the history draws them: by number, with finish times, and their order by finish time.</summary>
    private sealed record HistoryData(double[] Numbers, double[] FinishedMs, double[] Values, int[] ByTime, string? Note);

    /// <summary>
    /// One study's computed answer and the state counts it was computed at. A request with other counts recomputes it
    /// unless <c>fresh</c> (given the old counts and the answer's age) says the old answer still serves; concurrent
    /// requests share one computation (which is therefore not cancelled with the request that started it).
    /// </summary>
    private sealed class Cached<T>
        where T : class
    {
        private readonly Lock _lock = new();
        private (StateCounts Counts, DateTime At, Task<T> Value)? _entry;

        public async Task<T> GetAsync(StateCounts counts, Func<StateCounts, TimeSpan, bool> fresh, Func<Task<T>> compute)
        {
            Task<T> task;
            lock (_lock)
            {
                var entry = _entry;
                var usable = entry is { } e && !e.Value.IsFaulted && !e.Value.IsCanceled &&
                    (e.Counts == counts || !e.Value.IsCompleted || fresh(e.Counts, DateTime.UtcNow - e.At)); // one read in flight at a time
                if (!usable)
                {
                    entry = (counts, DateTime.UtcNow, compute());
                    _entry = entry;
                }

                task = entry!.Value.Value;
            }

            return await task;
        }
    }
}
