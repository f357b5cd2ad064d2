namespace Sweeper.Core.Trials;

/// <summary>Answers one question: stop this trial after this epoch?</summary>
public interface IStoppingRule
{
    /// <param name="epoch">The 1-based epoch just finished.</param>
    /// <param name="value">The trial's validation accuracy after it.</param>
    /// <param name="completedValuesAtEpoch">Validation accuracies of completed trials at the same epoch.</param>
    bool ShouldStop(int epoch, double value, IReadOnlyList<double> completedValuesAtEpoch);
}

/// <summary>The stopping rule a sweep file's <c>early_terminate</c> asks for.</summary>
public static class StoppingRules
{
    /// <summary>Whether a trial's epochs are put to the study's coordinator: the median rule and successive halving judge them.</summary>
    public static bool AsksAfterEachEpoch(Sweeps.EarlyTerminate? settings) => settings is { Type: "median" or "hyperband" };

    public static IStoppingRule For(Sweeps.EarlyTerminate? settings) =>
        settings is { Type: "median" } et ? new MedianStoppingRule(et.WarmupEpochs, et.MinTrials) : new NoStopping();
}

/// <summary>Never stops a trial.</summary>
public sealed class NoStopping : IStoppingRule
{
    public bool ShouldStop(int epoch, double value, IReadOnlyList<double> completedValuesAtEpoch) => false;
}

/// <summary>
/// The median stopping rule (Golovin et al. 2017, as in Optuna's MedianPruner): after <paramref name="warmupEpochs"/>
/// epochs, stop a trial whose validation accuracy at epoch k is below the median of the completed trials' at epoch k,
/// once at least <paramref name="minTrials"/> completed trials reached epoch k.
/// </summary>
public sealed class MedianStoppingRule(int warmupEpochs, int minTrials) : IStoppingRule
{
    public bool ShouldStop(int epoch, double value, IReadOnlyList<double> completedValuesAtEpoch)
    {
        if (epoch <= warmupEpochs || completedValuesAtEpoch.Count < minTrials)
        {
            return false;
        }

        return value < Median(completedValuesAtEpoch);
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
