using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sweeper.Core.Queries;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Runtime;

namespace Sweeper.Dashboard;

/// <summary>Dashboard settings.</summary>
public sealed record DashboardOptions
{
    /// <summary>Address to listen on. Default: http://127.0.0.1:5077 (loopback only).</summary>
    public string Url { get; init; } = "http://127.0.0.1:5077";

    /// <summary>Required on every request (Authorization: Bearer, or ?token=) when set; mandatory for a non-loopback address.</summary>
    public string? Token { get; init; }

    /// <summary>Largest page of trials the API returns. Default: 1,000.</summary>
    public int MaxPageSize { get; init; } = 1_000;
}

/// <summary>
/// The read-only JSON API under /api/ and the web pages (plain files shipped inside the program; nothing is
/// fetched from any other site). Every endpoint is a GET.
/// </summary>
public static class DashboardApp
{
    private static readonly JsonSerializerOptions _json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // readable errors; served as JSON, never inlined in HTML
        Converters = { new Sweeper.Core.NonFiniteAsNull() }, // a stored inf or NaN (from before it was refused, or an extra metric) is null, not a failed answer
    };

    /// <summary>Throws when a non-loopback address is asked for without a token.</summary>
    public static void Validate(DashboardOptions options)
    {
        if (!Uri.TryCreate(options.Url.Replace("*", "0.0.0.0", StringComparison.Ordinal).Replace("+", "0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/" || uri.Query.Length > 0)
        {
            throw new ArgumentException($"--url {options.Url}: not an address to listen on; give http://HOST:PORT, e.g. http://127.0.0.1:5077.");
        }

        var loopback = uri.Host == "localhost" || (IPAddress.TryParse(uri.Host, out var ip) && IPAddress.IsLoopback(ip));
        if (!loopback && string.IsNullOrEmpty(options.Token))
        {
            throw new ArgumentException($"the dashboard binds to {uri.Host}, which is not loopback: give an access token (--token or $SWEEPER_DASHBOARD_TOKEN); every request must then carry it.");
        }
    }

    public static WebApplication Build(ITrialStore store, DashboardOptions options)
    {
        Validate(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(options.Url);
        builder.Services.AddSingleton(store);
        var app = builder.Build();

        if (!string.IsNullOrEmpty(options.Token))
        {
            app.Use(async (context, next) =>
            {
                var header = context.Request.Headers.Authorization.ToString();
                var given = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : context.Request.Query["token"].ToString();
                if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                        System.Text.Encoding.UTF8.GetBytes(given), System.Text.Encoding.UTF8.GetBytes(options.Token)))
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    await context.Response.WriteAsJsonAsync(new { error = "missing or wrong access token" });
                    return;
                }

                await next();
            });
        }

        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                await context.Response.WriteAsJsonAsync(new { error = "the dashboard is read-only" });
                return;
            }

            Stream? body = null;
            if (HttpMethods.IsHead(context.Request.Method))
            {
                // Answered as the GET it asks about, without the body (monitors and link checkers ask with HEAD; the
                // endpoints are GETs, so routing said 405).
                context.Request.Method = HttpMethods.Get;
                body = context.Response.Body;
                context.Response.Body = Stream.Null;
            }

            try
            {
                await next();
            }
            catch (StoreUnavailableException e) when (!context.Response.HasStarted)
            {
                // The database restarting or out of reach: a 503 that says so (it was a 500 with an empty body); the
                // page asks again on its next refresh.
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                await context.Response.WriteAsJsonAsync(new { error = "the store is unreachable for now: " + e.Message });
            }
            finally
            {
                if (body is not null)
                {
                    context.Response.Body = body;
                }
            }
        });

        // Routing after the checks above (by default it comes first), so that a HEAD request is routed as its GET.
        app.UseRouting();

        app.MapGet("/api/studies", async (CancellationToken ct) =>
        {
            var list = new List<object>();
            foreach (var s in await store.ListStudiesAsync(ct))
            {
                list.Add(await StudyJsonAsync(store, s, ct));
            }

            return Json(list);
        });
        app.MapGet("/api/studies/{study}", async (string study, CancellationToken ct) =>
            await store.GetStudyAsync(study, ct) is { } s ? Json(await StudyJsonAsync(store, s, ct)) : NotFound($"no study named {study}"));
        app.MapGet("/api/studies/{study}/trials", async (string study, HttpRequest request, CancellationToken ct) =>
        {
            var record = await store.GetStudyAsync(study, ct);
            if (record is null)
            {
                return NotFound($"no study named {study}");
            }

            var names = ParameterNames(record);
            if (!TryInt(request, "page", 1, 1, int.MaxValue, out var page, out var problem) ||
                !TryInt(request, "page_size", 50, 1, options.MaxPageSize, out var size, out problem))
            {
                return BadRequest(problem!, null);
            }

            if ((page - 1L) * size > int.MaxValue)
            {
                return BadRequest($"page {page} of {size} trials starts past the last trial a study can have", null);
            }

            TrialQuery query;
            IReadOnlyList<string>? columns = null;
            string? group = null;
            try
            {
                query = new TrialQuery(FilterParser.Parse(request.Query["where"], names), FilterParser.ParseSort(request.Query["sort"].ToString() is { Length: > 0 } s ? s : "-val_accuracy", names),
                    (page - 1) * size, size);
                if (request.Query["columns"].ToString() is { Length: > 0 } c)
                {
                    columns = FilterParser.ParseColumns(c, names);
                }

                if (request.Query["group_by"].ToString() is { Length: > 0 } g)
                {
                    group = FilterParser.ParseField(g, names);
                }
            }
            catch (QueryException e)
            {
                return BadRequest(e.Message, e.Position + 1);
            }

            if (group is not null)
            {
                // The same grouping as `sweeper results --group-by`, done by the store; pages count groups.
                var groups = await store.GroupTrialsAsync(study, query, group, ct);
                var matched = (await store.QueryTrialsAsync(study, query with { Limit = 0 }, ct)).Total;
                return Json(new { total = matched, page, page_size = size, group_by = group, groups = groups.Select(x => Runtime.TrialJson.Fields(x, group)) });
            }

            var (trials, total) = await store.QueryTrialsAsync(study, query, ct);
            return Json(new
            {
                total,
                page,
                page_size = size,
                parameters = names,
                trials = columns is null ? trials.Select(TrialJson) : trials.Select(t => Runtime.TrialJson.Fields(t) is var row ? columns.ToDictionary(k => k, k => row.GetValueOrDefault(k)) : null),
            });
        });
        app.MapGet("/api/studies/{study}/points", async (string study, HttpRequest request, CancellationToken ct) =>
        {
            // The trials the charts draw: all that match when they are few; otherwise the best quarter of `max` by
            // validation accuracy plus a fixed pseudo-random sample of the rest, and the answer says so.
            var record = await store.GetStudyAsync(study, ct);
            if (record is null)
            {
                return NotFound($"no study named {study}");
            }

            if (!TryInt(request, "max", 2000, 10, options.MaxPageSize * 10, out var max, out var problem))
            {
                return BadRequest(problem!, null);
            }

            var names = ParameterNames(record);
            FilterNode? filter;
            try
            {
                filter = FilterParser.Parse(request.Query["where"], names);
            }
            catch (QueryException e)
            {
                return BadRequest(e.Message, e.Position + 1);
            }

            // Counted first (from the covering index), so that a large study's points are not read twice.
            var total = (await store.QueryTrialsAsync(study, new TrialQuery(filter, [], 0, 0), ct)).Total;
            var byNumber = new List<SortKey> { new("number", false) };
            IReadOnlyList<TrialRecord> shown;
            var best = 0;
            if (total <= max)
            {
                shown = (await store.QueryTrialsAsync(study, new TrialQuery(filter, byNumber, 0, max, CountMatches: false), ct)).Trials;
            }
            else
            {
                best = max / 4;
                // The total is known: neither of these needs to count again.
                var top = (await store.QueryTrialsAsync(study, new TrialQuery(filter, [new SortKey("val_accuracy", true)], 0, best, CountMatches: false), ct)).Trials;
                var sample = (await store.QueryTrialsAsync(study, new TrialQuery(filter, byNumber, 0, max - best, (max - best) / (double)total, CountMatches: false), ct)).Trials;
                shown = [.. top.Concat(sample).DistinctBy(t => t.Number).OrderBy(t => t.Number)];
            }

            return Json(new
            {
                total,
                shown = shown.Count,
                sampled = total > max,
                best,
                trials = shown.Select(t => new { number = t.Number, state = t.State.ToText(), val_accuracy = t.ValAccuracy, train_accuracy = t.TrainAccuracy, parameters = Core.Sweeps.ParamJson.Deserialize(t.ParametersJson) }),
            });
        });
        app.MapGet("/api/studies/{study}/trials/{number:int}", async (string study, int number, CancellationToken ct) =>
        {
            var trial = (await store.QueryTrialsAsync(study, new TrialQuery(new Comparison("number", "=", (double)number, 0), [], 0, 1), ct)).Trials.FirstOrDefault();
            if (trial is null)
            {
                return NotFound($"no trial {number} in study {study}");
            }

            var epochs = await store.GetEpochsAsync(trial.Id, ct);
            return Json(new
            {
                trial = TrialJson(trial),
                // A built-in metric a training program did not report is NaN in the record, and null here (as every
                // number that is not finite: NonFiniteAsNull); its own metrics come as they are.
                epochs = epochs.Select(e => new { e.Epoch, e.Loss, e.TrainAccuracy, e.ValAccuracy, e.LearningRate, e.Seconds, e.Metrics }),
            });
        });
        app.MapGet("/api/studies/{study}/trials/{number:int}/weights", async (string study, int number, HttpRequest request, CancellationToken ct) =>
        {
            if (!TryInt(request, "max", 16, 1, 256, out var max, out var problem))
            {
                return BadRequest(problem!, null);
            }

            var trial = (await store.QueryTrialsAsync(study, new TrialQuery(new Comparison("number", "=", (double)number, 0), [], 0, 1), ct)).Trials.FirstOrDefault();
            if (trial is null)
            {
                return NotFound($"no trial {number} in study {study}");
            }

            var checkpoint = await store.GetCheckpointAsync(trial.Id, ct);
            if (checkpoint is null)
            {
                return NotFound($"trial {number} has no checkpoint yet");
            }

            try
            {
                return Json(Weights.FirstLayer(checkpoint.Value.Data, ParamJson.Deserialize(trial.ParametersJson), max));
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException or ArgumentException or FormatException or NotSupportedException)
            {
                // A training program's checkpoint only marks its epochs (its model lives in the program); a checkpoint
                // of another make is no image of weights either. Not a failed request.
                return NotFound($"trial {number}'s checkpoint holds no weights this dashboard can show (a training program keeps its model itself)");
            }
        });
        // The cluster's silos: address, slots, busy slots, last "I am alive", alive or dead, and what each trains now.
        app.MapGet("/api/workers", async (CancellationToken ct) => Json((await ClusterView.SilosAsync(store, cancellationToken: ct)).Select(w => new
        {
            id = w.Address,
            w.Host,
            w.Name,
            w.State,
            w.Alive,
            w.Slots,
            w.Busy,
            started_at = w.StartedAt,
            last_heartbeat = w.LastAlive,
            trials = w.Trials.Select(t => new { t.Study, t.Number, t.Epochs }),
        })));
        Charts.Map(app, store, _json);
        // A trial named by something else than its number (the routes above take whole numbers only).
        static IResult NotATrialNumber(string number) => BadRequest($"'{number}' is not a trial number (a whole number such as 0 or 17)", null);
        app.MapGet("/api/studies/{study}/trials/{number}/{**rest}", NotATrialNumber);
        app.MapGet("/api/studies/{study}/trials/{number}", NotATrialNumber);
        app.MapGet("/api/{**rest}", (string rest) => NotFound($"no endpoint /api/{rest}"));

        app.MapGet("/", () => Page("index.html"));
        app.MapGet("/study/{study}", (string study) => Page("study.html"));
        app.MapGet("/static/{file}", (string file) => Page(file));
        return app;
    }

    private static IResult Json(object value) => Results.Json(value, _json);

    private static IResult NotFound(string message) => Results.Json(new { error = message }, _json, statusCode: StatusCodes.Status404NotFound);

    /// <summary>A 400 with the problem in words and, for a filter or sort, the character it is at (counted from 1, as in the message).</summary>
    private static IResult BadRequest(string message, int? position) => Results.Json(new { error = message, position }, _json, statusCode: StatusCodes.Status400BadRequest);

    /// <summary>The whole-number query parameter <paramref name="name"/> within [min, max] (absent: <paramref name="fallback"/>); false with the problem in words otherwise.</summary>
    internal static bool TryInt(HttpRequest request, string name, int fallback, int min, int max, out int value, out string? problem)
    {
        problem = null;
        var text = request.Query[name].ToString();
        if (text.Length == 0)
        {
            value = fallback;
            return true;
        }

        if (!int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            problem = $"{name} must be a whole number in [{min}, {max}] (got '{text}')";
            return false;
        }

        return true;
    }

    /// <summary>The study's parameter names in the sweep's order, from its stored definition (no YAML is parsed).</summary>
    public static IReadOnlyList<string> ParameterNames(StudyRecord study) => SweepJson.Of(study).ParameterNames;

    private static async Task<object> StudyJsonAsync(ITrialStore store, StudyRecord s, CancellationToken ct)
    {
        var counts = await store.CountStatesAsync(s.Name, ct);
        var result = await store.GetResultAsync(s.Name, ct);
        var best = (await store.QueryTrialsAsync(s.Name, new TrialQuery(new Comparison("state", "=", "completed", 0), [new SortKey("val_accuracy", true)], 0, 1, CountMatches: false), ct)).Trials.FirstOrDefault();
        return new
        {
            name = s.Name,
            method = s.Method,
            created_at = s.CreatedAt,
            closed = s.Closed,
            parameters = ParameterNames(s),
            // What each parameter is called in filters, sorts and columns (params.NAME where a trial field has the name).
            parameter_columns = ParameterNames(s).Select(FilterParser.ParameterColumn),
            counts = new { pending = counts.Pending, running = counts.Running, paused = counts.Paused, completed = counts.Completed, pruned = counts.Pruned, diverged = counts.Diverged, failed = counts.Failed, total = counts.Total },
            best_trial = best is null ? null : TrialJson(best),
            result,
        };
    }

    private static object TrialJson(TrialRecord t) => Runtime.TrialJson.Of(t);

    private static IResult Page(string file)
    {
        var stream = typeof(DashboardApp).Assembly.GetManifestResourceStream("wwwroot/" + file);
        if (stream is null)
        {
            return Results.NotFound();
        }

        var type = Path.GetExtension(file) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            _ => "application/octet-stream",
        };
        return Results.Stream(stream, type);
    }
}
