using System.Globalization;
using System.Text;
using Spectre.Console;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Cli;

/// <summary>
/// Tables, CSV and JSON summaries of a study, shared by run, status, results and validate. Text for a terminal fits its
/// width: numbers are written with a few significant digits, a column that does not fit is left out and named under
/// the table, and no value is ever wrapped. Text for a pipe is plain: a header line and one tab-separated line per row,
/// for grep, sort and cut.
/// </summary>
public static class Report
{
    /// <summary>The gap between two columns of a terminal table.</summary>
    private const string Gap = "  ";

    /// <summary>
    /// The width to render for: null when standard output is not a terminal (a pipe or a file: plain lines); else
    /// $COLUMNS when set, else the console's width (80 when it cannot be read).
    /// </summary>
    public static int? TerminalWidth()
    {
        if (Console.IsOutputRedirected)
        {
            return null;
        }

        if (int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var columns) && columns > 0)
        {
            return columns;
        }

        try
        {
            return Console.WindowWidth > 0 ? Console.WindowWidth : 80;
        }
        catch (IOException)
        {
            return 80;
        }
    }

    /// <summary>
    /// A number for people: whole numbers as they are; others with 4 significant digits, positional between 1e-4 and
    /// 1e6 (0.4512, 1234, 0.0003), else with an exponent (1.5e-05, 2.5e+08); no trailing zeros.
    /// </summary>
    public static string Number(double d)
    {
        if (!double.IsFinite(d))
        {
            return double.IsNaN(d) ? "nan" : d > 0 ? "inf" : "-inf";
        }

        if (d == Math.Floor(d) && Math.Abs(d) < 1e15)
        {
            return d.ToString("0", CultureInfo.InvariantCulture);
        }

        var a = Math.Abs(d);
        if (a >= 1e-4 && a < 1e6)
        {
            var digits = Math.Max(0, 3 - (int)Math.Floor(Math.Log10(a)));
            return Math.Round(d, digits).ToString("0." + new string('#', Math.Max(digits, 1)), CultureInfo.InvariantCulture);
        }

        return d.ToString("0.###e+00", CultureInfo.InvariantCulture);
    }

    /// <summary>A cell of a table: numbers by <see cref="Number"/>, nothing as "-", text on one line.</summary>
    public static string Short(object? v) => v switch
    {
        null => "-",
        double d => Number(d),
        float f => Number(f),
        string s => s.ReplaceLineEndings(" ").Replace('\t', ' '),
        _ => ParamValue.Format(v),
    };

    /// <summary>
    /// The rows as a table. For a terminal (<paramref name="width"/> given) the columns are aligned (numbers to the
    /// right); columns are kept in order while they fit (the first always) and the others are named on a line under the
    /// table, with <paramref name="hint"/> (how to see them). For a pipe (<paramref name="width"/> null) a header line and
    /// tab-separated rows, every column.
    /// </summary>
    public static string Table(IReadOnlyList<IReadOnlyDictionary<string, object?>> rows, IReadOnlyList<string> columns, int? width, string hint = "(--columns chooses; --json and --csv have all)")
    {
        var cells = rows.Select(r => columns.Select(c => Short(r.GetValueOrDefault(c))).ToArray()).ToList();
        var sb = new StringBuilder();
        if (width is not { } w)
        {
            sb.Append(string.Join('\t', columns)).Append('\n');
            foreach (var row in cells)
            {
                sb.Append(string.Join('\t', row)).Append('\n');
            }

            return sb.ToString();
        }

        var widths = columns.Select((c, i) => Math.Max(c.Length, cells.Count == 0 ? 0 : cells.Max(r => r[i].Length))).ToArray();
        var numeric = columns.Select((c, i) => rows.Count > 0 && rows.All(r => r.GetValueOrDefault(c) is null or double or float or long or int or ulong)).ToArray();
        var shown = new List<int>();
        var used = 0;
        for (var i = 0; i < columns.Count; i++)
        {
            var need = widths[i] + (shown.Count == 0 ? 0 : Gap.Length);
            if (shown.Count > 0 && used + need > w)
            {
                break;
            }

            shown.Add(i);
            used += need;
        }

        string Line(Func<int, string> cell) => string.Join(Gap, shown.Select(i => numeric[i] ? cell(i).PadLeft(widths[i]) : cell(i).PadRight(widths[i]))).TrimEnd();
        sb.Append(Line(i => columns[i])).Append('\n');
        sb.Append(Line(i => new string('-', widths[i]))).Append('\n');
        foreach (var row in cells)
        {
            sb.Append(Line(i => row[i])).Append('\n');
        }

        var hidden = Enumerable.Range(0, columns.Count).Where(i => !shown.Contains(i)).Select(i => columns[i]).ToList();
        if (hidden.Count > 0)
        {
            sb.Append(Wrap([$"not shown ({w} columns):", .. hidden.Select((h, k) => k < hidden.Count - 1 ? h + "," : h), .. hint.Split(' ')], w, "")).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>Words joined by spaces into lines of at most <paramref name="width"/> (one line when null), never breaking a word; later lines indented.</summary>
    public static string Wrap(IEnumerable<string> words, int? width, string indent)
    {
        if (width is not { } w)
        {
            return string.Join(' ', words);
        }

        var lines = new List<StringBuilder> { new() };
        foreach (var word in words)
        {
            var line = lines[^1];
            if (line.Length > 0 && line.Length + 1 + word.Length > w)
            {
                lines.Add(line = new StringBuilder(indent));
            }

            if (line.Length > 0 && line.ToString() != indent)
            {
                line.Append(' ');
            }

            line.Append(word);
        }

        return string.Join('\n', lines);
    }

    /// <summary>The trials' parameters as name=value words (numbers short), for <see cref="Wrap"/>.</summary>
    public static IEnumerable<string> ParamWords(TrialRecord t) => ParamJson.Deserialize(t.ParametersJson).Select(kv => $"{kv.Key}={Short(kv.Value)}");

    public static string Params(TrialRecord t) => string.Join(" ", ParamJson.Deserialize(t.ParametersJson).Select(kv => $"{kv.Key}={Short(kv.Value)}"));

    public static IEnumerable<TrialRecord> ByValAccuracy(IEnumerable<TrialRecord> trials) =>
        trials.OrderByDescending(t => t.ValAccuracy ?? double.NegativeInfinity).ThenBy(t => t.Number);

    /// <summary>
    /// The trials, best validation accuracy first, as a table for this terminal (or plain lines for a pipe), to be written
    /// as it is (a console renderable would wrap a pipe's long lines at 80 columns): one column
    /// per field and per parameter (a parameter named like a field as params.NAME), then the reason of failed trials.
    /// </summary>
    public static string TrialTable(IEnumerable<TrialRecord> trials, int? top = null)
    {
        var chosen = ByValAccuracy(trials).Take(top ?? int.MaxValue).ToList();
        var rows = chosen.Select(t =>
        {
            // The row of `results`, less what a summary table need not show; the reason only of trials that failed.
            var row = Runtime.TrialJson.Fields(t);
            row.Remove("seed");
            row.Remove("owner");
            if (t.Reason is null || t.State is not (TrialState.Failed or TrialState.Diverged))
            {
                row.Remove("reason");
            }

            return (IReadOnlyDictionary<string, object?>)row;
        }).ToList();
        var columns = rows.SelectMany(r => r.Keys).Distinct().OrderBy(c => c == "reason" ? 1 : 0).ToList();
        return Table(rows, columns, TerminalWidth(), "(sweeper results STUDY --columns shows them)").TrimEnd('\n') + "\n";
    }

    public static string Acc(double? v) => v is { } x && !double.IsNaN(x) ? x.ToString("F4", CultureInfo.InvariantCulture) : "-";

    /// <summary>
    /// Every count, and how many of the study's trials are final: of <paramref name="planned"/> when it is more than
    /// the trials stored (Bayesian search adds its trials one by one, so the rows are not the whole study).
    /// </summary>
    public static string Counts(StateCounts c, int planned = 0) =>
        $"{c.Completed} completed, {c.Running} running, {c.Pending} pending, " + (c.Paused > 0 ? $"{c.Paused} paused at a rung, " : "") +
        $"{c.Pruned} pruned, {c.Diverged} diverged, {c.Failed} failed ({c.Final}/{Math.Max(c.Total, planned)} final)";

    /// <summary>The counts that are not zero, shortest first in meaning: "12 completed, 3 running, 1 failed (13/16 final)" (see <see cref="Counts"/>).</summary>
    public static string ShortCounts(StateCounts c, int planned = 0)
    {
        var parts = new (int N, string What)[] { (c.Completed, "completed"), (c.Running, "running"), (c.Pending, "pending"), (c.Paused, "paused"), (c.Pruned, "pruned"), (c.Diverged, "diverged"), (c.Failed, "failed") }
            .Where(p => p.N > 0).Select(p => $"{p.N} {p.What}").ToList();
        return (parts.Count == 0 ? "no trials" : string.Join(", ", parts)) + $" ({c.Final}/{Math.Max(c.Total, planned)} final)";
    }

    /// <summary>
    /// The best trial so far by the sweep's metric and goal (or by validation accuracy when the study's definition cannot
    /// be read); with the metric it went by.
    /// </summary>
    public static (TrialRecord? Best, string Metric) Best(StudyRecord study, IReadOnlyList<TrialRecord> trials)
    {
        try
        {
            // Every trial's record holds its value of the sweep's metric (val_accuracy, train_accuracy, else its value).
            var sweep = SweepJson.Of(study);
            return (StudySelection.Best(trials, sweep), sweep.Metric);
        }
        catch (Exception e) when (e is SweepFileException or InvalidDataException)
        {
            // A study whose definition cannot be read is still summarized, by validation accuracy.
        }

        return (StudySelection.Best(trials), "val_accuracy");
    }

    public static object Summary(StudyRecord study, StateCounts counts, IReadOnlyList<TrialRecord> trials, StudyResult? result)
    {
        var best = result?.BestTrialId is { } id ? trials.FirstOrDefault(t => t.Id == id) : Best(study, trials).Best;
        return new
        {
            study = study.Name,
            closed = study.Closed,
            counts = new { pending = counts.Pending, running = counts.Running, paused = counts.Paused, completed = counts.Completed, pruned = counts.Pruned, diverged = counts.Diverged, failed = counts.Failed, total = counts.Total },
            best_trial = best is null ? null : new
            {
                number = best.Number,
                parameters = ParamJson.Deserialize(best.ParametersJson),
                val_accuracy = best.ValAccuracy,
                train_accuracy = best.TrainAccuracy,
                epochs = best.EpochsDone,
            },
            val_accuracy = best?.ValAccuracy,
            test_accuracy = result?.TestAccuracy,
            test_examples = result?.TestExamples,
            test_evaluated_at = result?.TestEvaluatedAt,
            selection_rule = result?.SelectionRule ?? StudySelection.Rule,
            metric = result?.Metric ?? "val_accuracy",
            note = result?.Note,
        };
    }

    /// <summary>A trial as named fields: its columns (number, state, val_accuracy, ...) and its parameters.</summary>
    public static string Cell(object? v) => v switch
    {
        null => "",
        double d => d.ToString("G6", CultureInfo.InvariantCulture),
        _ => ParamValue.Format(v),
    };

    public static string ColumnCsv(IReadOnlyList<Dictionary<string, object?>> rows, IReadOnlyList<string> columns)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", columns.Select(Quote)));
        foreach (var row in rows)
        {
            sb.AppendLine(string.Join(",", columns.Select(c => Quote(row.GetValueOrDefault(c) is double d ? d.ToString("R", CultureInfo.InvariantCulture) : Cell(row.GetValueOrDefault(c))))));
        }

        return sb.ToString();
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
