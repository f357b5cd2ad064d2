using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>The one JSON shape of a trial, for `sweeper results --json` and the dashboard's API.</summary>
public static class TrialJson
{
    public static object Of(TrialRecord t) => new
    {
        number = t.Number,
        state = t.State.ToText(),
        val_accuracy = t.ValAccuracy,
        train_accuracy = t.TrainAccuracy,
        value = t.Value,
        epochs = t.EpochsDone,
        attempts = t.Attempts,
        seed = t.Seed,
        parameters = ParamJson.Deserialize(t.ParametersJson),
        reason = t.Reason,
        owner = t.Owner,
        started_at = t.StartedAt,
        finished_at = t.FinishedAt,
    };

    /// <summary>
    /// A trial as one flat row: its fields, then its parameters (a parameter named like a trial field as params.NAME), then
    /// the reason (the columns of `results`).
    /// </summary>
    public static Dictionary<string, object?> Fields(TrialRecord t)
    {
        var row = new Dictionary<string, object?>
        {
            ["number"] = t.Number,
            ["state"] = t.State.ToText(),
            ["val_accuracy"] = t.ValAccuracy,
            ["train_accuracy"] = t.TrainAccuracy,
            ["epochs"] = t.EpochsDone,
            ["attempts"] = t.Attempts,
            ["seed"] = t.Seed,
            ["owner"] = t.Owner,
        };

        // The trial's value of the sweep's metric, as a column of its own where it is not one of the two above (a
        // program's loss, train_loss): the table shows no copy of val_accuracy.
        if (t.Value is { } value && value != t.ValAccuracy && value != t.TrainAccuracy)
        {
            row["value"] = value;
        }

        foreach (var (k, v) in ParamJson.Deserialize(t.ParametersJson))
        {
            row[Core.Queries.FilterParser.ParameterColumn(k)] = v;
        }

        row["reason"] = t.Reason;
        return row;
    }

    /// <summary>A group of `results --group-by` as a flat row, the value under the field's name.</summary>
    public static Dictionary<string, object?> Fields(Core.Queries.TrialGroup g, string field) => new()
    {
        [field] = g.Value,
        ["trials"] = g.Trials,
        ["completed"] = g.Completed,
        ["best_val_accuracy"] = g.BestValAccuracy,
        ["mean_val_accuracy"] = g.MeanValAccuracy,
    };
}
