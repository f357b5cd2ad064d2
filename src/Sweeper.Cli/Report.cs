using System.Globalization;
using System.Text;
using Spectre.Console;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Cli;

/// <summary>Tables, CSV and JSON summaries of a study, shared by run, status and results.</summary>
public static class Report
{
    public static string Params(TrialRecord t) => string.Join(" ", ParamJson.Deserialize(t.ParametersJson).Select(kv => $"{kv.Key}={Short(kv.Value)}"));

    private static string Short(object v) => v is double d ? d.ToString("G3", CultureInfo.InvariantCulture).Replace("E-0", "e-").Replace("E+0", "e+").Replace("E", "e") : ParamValue.Format(v);

    public static IEnumerable<TrialRecord> ByValAccuracy(IEnumerable<TrialRecord> trials) =>
        trials.OrderByDescending(t => t.ValAccuracy ?? double.NegativeInfinity).ThenBy(t => t.Number);

    public static Table TrialTable(IEnumerable<TrialRecord> trials, int? top = null)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var c in new[] { "#", "state", "val acc", "train acc", "epochs", "attempts", "parameters" })
        {
            table.AddColumn(c);
        }

        foreach (var t in ByValAccuracy(trials).Take(top ?? int.MaxValue))
        {
            table.AddRow(t.Number.ToString(CultureInfo.InvariantCulture), t.State.ToText(), Acc(t.ValAccuracy), Acc(t.TrainAccuracy), t.EpochsDone.ToString(CultureInfo.InvariantCulture),
                t.Attempts.ToString(CultureInfo.InvariantCulture), Markup.Escape(Params(t) + (t.Reason is { } r && t.State is TrialState.Failed or TrialState.Diverged ? $"  [{r}]" : "")));
        }

        return table;
    }

    public static string Acc(double? v) => v is { } x ? x.ToString("F4", CultureInfo.InvariantCulture) : "-";

    public static string Counts(StateCounts c) =>
        $"{c.Completed} completed, {c.Running} running, {c.Pending} pending, {c.Pruned} pruned, {c.Diverged} diverged, {c.Failed} failed ({c.Final}/{c.Total} final)";

    public static object Summary(StudyRecord study, StateCounts counts, IReadOnlyList<TrialRecord> trials, StudyResult? result)
    {
        var best = result?.BestTrialId is { } id ? trials.FirstOrDefault(t => t.Id == id) : StudySelection.Best(trials);
        return new
        {
            study = study.Name,
            closed = study.Closed,
            counts = new { pending = counts.Pending, running = counts.Running, completed = counts.Completed, pruned = counts.Pruned, diverged = counts.Diverged, failed = counts.Failed, total = counts.Total },
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

    /// <summary>A table of the chosen columns (all fields when none are chosen).</summary>
    public static Table ColumnTable(IReadOnlyList<Dictionary<string, object?>> rows, IReadOnlyList<string> columns)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var c in columns)
        {
            table.AddColumn(Markup.Escape(c));
        }

        foreach (var row in rows)
        {
            table.AddRow(columns.Select(c => Markup.Escape(Cell(row.GetValueOrDefault(c)))).ToArray());
        }

        return table;
    }

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
