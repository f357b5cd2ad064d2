namespace Sweeper.Core.Trials;

/// <summary>How a study picks its one model for the test split: by validation accuracy only, never by test accuracy.</summary>
public static class StudySelection
{
    public const string Rule = "highest val_accuracy among completed trials; ties go to the lowest trial number";

    /// <summary>The completed trial with the highest validation accuracy; ties go to the lowest trial number. Null when none completed.</summary>
    public static TrialRecord? Best(IEnumerable<TrialRecord> trials) =>
        trials.Where(t => t.State == TrialState.Completed && t.ValAccuracy is not null)
            .OrderByDescending(t => t.ValAccuracy)
            .ThenBy(t => t.Number)
            .FirstOrDefault();
}
