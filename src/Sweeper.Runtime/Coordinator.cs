using Serilog;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>Evaluates the chosen trial once on the test split: (accuracy, examples).</summary>
public delegate (double Accuracy, int Examples) TestEvaluator(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint);

/// <summary>
/// The coordinator of one study: creates it (or finds it, so a second run resumes), requeues trials whose lease
/// expired, and once every trial is final picks the best completed trial by validation accuracy (ties go to the
/// lowest trial number), evaluates its best checkpoint once on the test split and closes the study with that result.
/// The test split is never used to select. Safe to restart at any point.
/// </summary>
public sealed class Coordinator(ITrialStore store, SweepDefinition sweep, TestEvaluator evaluate, ILogger log)
{
    public const string SelectionRule = "highest val_accuracy among completed trials; ties go to the lowest trial number";

    public SweepDefinition Sweep => sweep;

    /// <summary>Wait between checks. Default: 0.5 s.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Creates the study and all its trials in one transaction, or returns the existing study of the same file.</summary>
    public async Task<StudyRecord> EnsureStudyAsync(CancellationToken cancellationToken = default)
    {
        var existing = await store.GetStudyAsync(sweep.Name, cancellationToken);
        if (existing is not null && existing.SweepHash == sweep.SourceHash)
        {
            log.Information("Resuming study {Study} ({Count} trials)", sweep.Name, existing.TrialCount);
            return existing;
        }

        var sampler = SearchSpace.CreateSampler(sweep);
        var count = (int)SearchSpace.TrialCount(sweep);
        var trials = sampler.Propose(sweep, count).Select(t => new NewTrial(t.Number, ParamJson.Serialize(t.Parameters), t.Seed)).ToList();
        var study = await store.CreateStudyAsync(
            new NewStudy(sweep.Name, sweep.SourceHash, sweep.SourceText, sweep.Method, trials, sweep.Budget.MaxConcurrent, sweep.Budget.Retries), cancellationToken);
        log.Information("Created study {Study}: {Count} trials ({Method} search)", sweep.Name, trials.Count, sweep.Method);
        return study;
    }

    /// <summary>Requeues expired leases until every trial is final, then closes the study. Returns its result.</summary>
    public async Task<StudyResult> RunAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                var existing = await store.GetResultAsync(sweep.Name, cancellationToken);
                if (existing is not null)
                {
                    return existing;
                }

                var requeued = await store.RequeueExpiredAsync(sweep.Name, cancellationToken);
                if (requeued > 0)
                {
                    log.Warning("{Count} trial(s) lost their worker (lease expired) and were requeued or failed", requeued);
                }

                var counts = await store.CountStatesAsync(sweep.Name, cancellationToken);
                if (counts.Total > 0 && counts.Final == counts.Total)
                {
                    return await FinishStudyAsync(cancellationToken);
                }
            }
            catch (StoreUnavailableException e)
            {
                log.Warning("Store unavailable ({Message}); the coordinator keeps trying", e.Message);
            }

            await Task.Delay(Poll, cancellationToken);
        }
    }

    /// <summary>Selects the best trial, evaluates it once on the test split and closes the study (only the first close counts).</summary>
    public async Task<StudyResult> FinishStudyAsync(CancellationToken cancellationToken)
    {
        var trials = await store.GetTrialsAsync(sweep.Name, cancellationToken);
        var best = SelectBest(trials);
        StudyResult result;
        if (best is null)
        {
            result = new StudyResult(sweep.Name, SelectionRule, sweep.Metric, null, null, null, null, 0, null, "no trial completed: nothing to evaluate on the test split");
        }
        else
        {
            var checkpoint = await store.GetCheckpointAsync(best.Id, cancellationToken)
                ?? throw new InvalidOperationException($"trial {best.Number} completed without a checkpoint; cannot evaluate it on the test split.");
            log.Information("Best trial {Trial}: val acc {Val:F4}; evaluating it once on the test split", best.Number, best.ValAccuracy);
            var (accuracy, examples) = evaluate(sweep, best, checkpoint.Data);
            result = new StudyResult(sweep.Name, SelectionRule, sweep.Metric, best.Id, best.Number, best.ValAccuracy, accuracy, examples, DateTimeOffset.UtcNow, null);
        }

        if (!await store.CloseStudyAsync(result, cancellationToken))
        {
            // Another coordinator closed it first: its result stands.
            return (await store.GetResultAsync(sweep.Name, cancellationToken))!;
        }

        return result;
    }

    /// <summary>The completed trial with the highest validation accuracy; ties go to the lowest trial number.</summary>
    public static TrialRecord? SelectBest(IEnumerable<TrialRecord> trials) =>
        trials.Where(t => t.State == TrialState.Completed && t.ValAccuracy is not null)
            .OrderByDescending(t => t.ValAccuracy)
            .ThenBy(t => t.Number)
            .FirstOrDefault();
}
