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
        epochs = t.EpochsDone,
        attempts = t.Attempts,
        seed = t.Seed,
        parameters = ParamJson.Deserialize(t.ParametersJson),
        reason = t.Reason,
        owner = t.Owner,
        started_at = t.StartedAt,
        finished_at = t.FinishedAt,
    };
}
