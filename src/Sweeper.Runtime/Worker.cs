using System.Collections.Concurrent;
using Serilog;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Engine.Training;

namespace Sweeper.Runtime;

/// <summary>A claimed trial with everything needed to train it.</summary>
public sealed record TrialAssignment(Lease Lease, SweepDefinition Sweep, IReadOnlyDictionary<string, object> Parameters);

/// <summary>How a trial run ended, as the worker records it.</summary>
public sealed record TrialRunResult(TrialState State, double? ValAccuracy, double? TrainAccuracy, int Epochs, string? Reason);

/// <summary>
/// Trains one trial. <paramref name="onEpoch"/> is called after every epoch with its metrics and a checkpoint taken
/// right then; it returns false to stop the trial (the stopping rule pruned it) and throws to abandon it.
/// </summary>
public interface ITrialRunner
{
    TrialRunResult Run(TrialAssignment trial, byte[]? checkpoint, Func<EpochMetrics, Func<byte[]>, bool> onEpoch, CancellationToken cancellationToken);
}

/// <summary>Trains trials with the Solver on CIFAR-10.</summary>
public sealed class SolverTrialRunner(TrialTrainer trainer) : ITrialRunner
{
    public TrialRunResult Run(TrialAssignment trial, byte[]? checkpoint, Func<EpochMetrics, Func<byte[]>, bool> onEpoch, CancellationToken cancellationToken)
    {
        var solver = trainer.CreateSolver(trial.Sweep, trial.Parameters, trial.Lease.Seed, checkpoint);
        byte[] Checkpoint()
        {
            var stream = new MemoryStream();
            solver.SaveCheckpoint(stream);
            return stream.ToArray();
        }

        var result = solver.Train(m => onEpoch(m, Checkpoint), cancellationToken: cancellationToken);
        var state = result.Outcome switch
        {
            TrainingOutcome.Completed => TrialState.Completed,
            TrainingOutcome.Diverged => TrialState.Diverged,
            _ => TrialState.Pruned,
        };
        return new TrialRunResult(state, result.BestEpoch > 0 ? result.BestValAccuracy : null, result.BestEpoch > 0 ? result.TrainAccuracy : null, result.Epochs, result.Reason);
    }
}

/// <summary>Worker settings. Defaults suit a cluster; tests shorten the lease.</summary>
public sealed record WorkerOptions
{
    /// <summary>Unique name of this worker. Default: host-pid-random.</summary>
    public string Id { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..4]}";

    /// <summary>Only this study's trials; null takes trials of any open study. Default: null.</summary>
    public string? Study { get; init; }

    /// <summary>How long a claim lasts without renewal. Default: 30 s; renewed every third of it.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Wait between claims when there is nothing to do. Default: 0.5 s.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Exit once every trial of the study is final (or the study is closed). Default: false (wait for work).</summary>
    public bool ExitWhenDone { get; init; }

    /// <summary>Stop after this many trials (benchmarks). Default: no limit.</summary>
    public int? MaxTrials { get; init; }
}

/// <summary>
/// The worker loop: claim a trial, train it (resuming from its checkpoint), report every epoch with a checkpoint,
/// ask the stopping rule, finish it, take the next. A lease lost to fencing abandons the trial and goes on; a
/// shutdown releases the trial so another worker resumes it at once.
/// </summary>
public sealed class Worker(ITrialStore store, ITrialRunner runner, WorkerOptions options, ILogger log)
{
    private readonly ConcurrentDictionary<string, SweepDefinition> _sweeps = new();

    public WorkerOptions Options => options;

    /// <summary>Trials this worker finished (any final state).</summary>
    public int Finished { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var lastBeat = DateTime.MinValue;
        log.Information("Worker {Worker} started (study {Study}, lease {Lease} s)", options.Id, options.Study ?? "any", options.Lease.TotalSeconds);
        while (!cancellationToken.IsCancellationRequested && (options.MaxTrials is null || Finished < options.MaxTrials))
        {
            if (DateTime.UtcNow - lastBeat > TimeSpan.FromSeconds(5))
            {
                await UntilStoredAsync(() => store.HeartbeatWorkerAsync(options.Id, Environment.MachineName, Environment.ProcessId, null, cancellationToken), cancellationToken);
                lastBeat = DateTime.UtcNow;
            }

            Lease? lease;
            try
            {
                lease = await store.ClaimAsync(options.Study, options.Id, options.Lease, cancellationToken);
            }
            catch (StoreUnavailableException e)
            {
                log.Warning("Store unavailable ({Message}); trying again", e.Message);
                await Task.Delay(options.Poll * 4, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                continue;
            }

            if (lease is null)
            {
                if (options.ExitWhenDone && options.Study is not null && await StudyDoneAsync(options.Study, cancellationToken))
                {
                    break;
                }

                await Task.Delay(options.Poll, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                continue;
            }

            // A worker's current trial is the running trial it owns; no extra write per trial.
            await RunTrialAsync(lease, cancellationToken);
        }

        log.Information("Worker {Worker} stops after {Count} trials", options.Id, Finished);
    }

    private async Task<bool> StudyDoneAsync(string study, CancellationToken cancellationToken)
    {
        var record = await store.GetStudyAsync(study, cancellationToken);
        if (record is null || record.Closed)
        {
            return true;
        }

        var counts = await store.CountStatesAsync(study, cancellationToken);
        return counts.Final == counts.Total;
    }

    private async Task RunTrialAsync(Lease lease, CancellationToken shutdown)
    {
        using var trialCts = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        var lost = false;
        var heartbeat = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(options.Lease / 3);
            try
            {
                while (await timer.WaitForNextTickAsync(trialCts.Token))
                {
                    try
                    {
                        await store.RenewAsync(lease, options.Lease, trialCts.Token);
                    }
                    catch (StoreUnavailableException e)
                    {
                        // Cut off: keep training and keep trying. If the lease expires meanwhile, another worker
                        // takes the trial over and fencing rejects our next write.
                        log.Warning("Trial {Trial}: lease renewal failed: {Message}", lease.Number, e.Message);
                    }
                }
            }
            catch (LeaseLostException e)
            {
                lost = true;
                log.Warning("Trial {Trial}: {Message}; abandoning it", lease.Number, e.Message);
                await trialCts.CancelAsync();
            }
            catch (OperationCanceledException)
            {
            }
        });

        try
        {
            var sweep = _sweeps.GetOrAdd(lease.Study, name => SweepParser.Parse(store.GetStudyAsync(name).GetAwaiter().GetResult()!.SweepText, name));
            var parameters = ParamJson.Deserialize(lease.ParametersJson);
            var checkpoint = lease.HasCheckpoint ? await store.GetCheckpointAsync(lease.TrialId, shutdown) : null;
            IStoppingRule rule = sweep.EarlyTerminate is { Type: "median" } et ? new MedianStoppingRule(et.WarmupEpochs, et.MinTrials) : new NoStopping();
            if (checkpoint is not null)
            {
                log.Information("Trial {Trial} (attempt {Attempt}) resumes from its epoch-{Epoch} checkpoint", lease.Number, lease.Attempt, checkpoint.Value.Epoch);
            }

            var result = await Task.Run(
                () => runner.Run(new TrialAssignment(lease, sweep, parameters), checkpoint?.Data, (m, takeCheckpoint) =>
                {
                    var record = new EpochRecord(lease.TrialId, m.Epoch, m.Loss, m.TrainAccuracy, m.ValAccuracy, m.LearningRate, m.Seconds);
                    var checkpointBytes = takeCheckpoint();
                    UntilStoredAsync(() => store.ReportEpochAsync(lease, record, checkpointBytes, options.Lease, CancellationToken.None), trialCts.Token).GetAwaiter().GetResult();
                    if (rule is NoStopping)
                    {
                        return true;
                    }

                    try
                    {
                        var others = store.GetCompletedValuesAtEpochAsync(lease.Study, m.Epoch, CancellationToken.None).GetAwaiter().GetResult();
                        return !rule.ShouldStop(m.Epoch, m.ValAccuracy, others);
                    }
                    catch (StoreUnavailableException)
                    {
                        return true; // no data to judge by: keep training
                    }
                }, trialCts.Token),
                CancellationToken.None);
            await trialCts.CancelAsync();
            await heartbeat;
            await UntilStoredAsync(() => store.FinishAsync(lease, new TrialFinish(result.State, result.ValAccuracy, result.TrainAccuracy, result.Epochs, result.Reason), CancellationToken.None), shutdown);
            Finished++;
            log.Information("Trial {Trial} {State}: val acc {Val:F4} after {Epochs} epochs{Reason}", lease.Number, result.State.ToText(), result.ValAccuracy ?? double.NaN,
                result.Epochs, result.Reason is null ? "" : " (" + result.Reason + ")");
        }
        catch (LeaseLostException e)
        {
            log.Warning("Trial {Trial}: {Message}; moving on", lease.Number, e.Message);
        }
        catch (OperationCanceledException) when (lost)
        {
            // Fenced out while training: the trial belongs to another worker now.
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            await TryAsync(() => store.ReleaseAsync(lease, "worker shut down", CancellationToken.None));
            log.Information("Trial {Trial} released for another worker (shutdown)", lease.Number);
        }
        catch (StoreUnavailableException e)
        {
            // The store, not the trial, failed: leave the trial to its lease (it is taken over from its checkpoint).
            log.Warning("Trial {Trial}: store unavailable ({Message}); leaving it to expire and be taken over", lease.Number, e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.Error(e, "Trial {Trial} failed", lease.Number);
            await TryAsync(() => store.FinishAsync(lease, new TrialFinish(TrialState.Failed, null, null, 0, $"{e.GetType().Name}: {e.Message}"), CancellationToken.None));
            Finished++;
        }
        finally
        {
            await trialCts.CancelAsync();
            await heartbeat;
        }
    }

    /// <summary>
    /// Repeats a write while the store is unreachable (its own retries spent), so a finished result or a report is
    /// never dropped; stops on success, on fencing (<see cref="LeaseLostException"/>) or on cancellation.
    /// </summary>
    private async Task UntilStoredAsync(Func<Task> write, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                await write();
                return;
            }
            catch (StoreUnavailableException e)
            {
                log.Warning("Store unavailable ({Message}); keeping the result and trying again in {Delay} s", e.Message, delay.TotalSeconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 2));
            }
        }
    }

    private async Task TryAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (LeaseLostException e)
        {
            log.Warning("{Message}", e.Message);
        }
    }
}
