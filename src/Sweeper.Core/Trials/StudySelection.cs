namespace Sweeper.Core.Trials;

/// <summary>
/// How a study picks its one model for the test split: by the sweep's metric and goal (val_accuracy, maximize, by
/// default), never by test accuracy.
/// </summary>
public static class StudySelection
{
    public const string Rule = "highest val_accuracy among completed trials; ties go to the lowest trial number";

    /// <summary>The rule for a metric and goal, in words (stored with the study's result).</summary>
    public static string RuleFor(string metric, string goal) =>
        metric == "val_accuracy" && goal == "maximize" ? Rule : $"{(goal == "minimize" ? "lowest" : "highest")} {metric} among completed trials; ties go to the lowest trial number";

    /// <summary>
    /// The value of <paramref name="metric"/> (the trial's sweep's metric) a trial's record holds: its val_accuracy or
    /// train_accuracy field for those two, else its <see cref="TrialRecord.Value"/> (the final value of the sweep's
    /// metric that its finish recorded: train_loss, or whatever a program reports); null when it has none.
    /// </summary>
    public static double? RecordedValue(TrialRecord trial, string metric) => RecordField(metric, trial.ValAccuracy, trial.TrainAccuracy, trial.Value);

    /// <summary>
    /// A trial's value of <paramref name="metric"/> from the fields its record keeps: <paramref name="valAccuracy"/> or
    /// <paramref name="trainAccuracy"/> for those two metrics, else <paramref name="otherwise"/> (its stored value).
    /// </summary>
    public static double? RecordField(string metric, double? valAccuracy, double? trainAccuracy, double? otherwise) => metric switch
    {
        "val_accuracy" => valAccuracy,
        "train_accuracy" => trainAccuracy,
        _ => otherwise,
    };

    /// <summary>The completed trial with the highest validation accuracy; ties go to the lowest trial number. Null when none completed.</summary>
    public static TrialRecord? Best(IEnumerable<TrialRecord> trials) => Best(trials, "val_accuracy", "maximize");

    /// <summary>
    /// The completed trial with the best value of <paramref name="metric"/> (lowest for goal minimize, highest for
    /// maximize); ties go to the lowest trial number. A trial's value is its record's (<see cref="RecordedValue"/>) or,
    /// when the record has none (a trial stored before its value was), <paramref name="valueOf"/>'s; trials without a
    /// finite value are not candidates. Null when none is.
    /// </summary>
    public static TrialRecord? Best(IEnumerable<TrialRecord> trials, string metric, string goal, Func<TrialRecord, double?>? valueOf = null)
    {
        var candidates = trials.Where(t => t.State == TrialState.Completed)
            .Select(t => (Trial: t, Value: RecordedValue(t, metric) ?? valueOf?.Invoke(t)))
            .Where(x => x.Value is { } v && double.IsFinite(v));
        var ordered = goal == "minimize" ? candidates.OrderBy(x => x.Value) : candidates.OrderByDescending(x => x.Value);
        return ordered.ThenBy(x => x.Trial.Number).Select(x => x.Trial).FirstOrDefault();
    }

    /// <summary>The best trial by the sweep's metric and goal (see <see cref="Best(IEnumerable{TrialRecord}, string, string, Func{TrialRecord, double?}?)"/>).</summary>
    public static TrialRecord? Best(IEnumerable<TrialRecord> trials, Sweeps.SweepDefinition sweep, Func<TrialRecord, double?>? valueOf = null) =>
        Best(trials, sweep.Metric, sweep.Goal, valueOf);
}
