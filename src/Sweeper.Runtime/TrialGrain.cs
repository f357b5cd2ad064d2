using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>One trial's owner: see <see cref="ITrialGrain"/>.</summary>
[Orleans.Placement.PreferLocalPlacement]
public sealed class TrialGrain(ITrialStore store, TrainingSlots slots, ILocalSiloDetails silo, ILogger<TrialGrain> log) : Grain, ITrialGrain
{
    private Lease? _lease;
    private TimeSpan _leaseDuration;
    private IGrainTimer? _renewal;
    private bool _stoppingRule;

    private IStudyGrain Study(Lease lease) => GrainFactory.GetGrain<IStudyGrain>(lease.Study);

    public async Task<Immutable<byte[]>?> BeginAsync(Lease lease, TimeSpan leaseDuration, bool stoppingRule)
    {
        if (!lease.Owner.StartsWith(SiloSettings.OwnerPrefix(silo.SiloAddress), StringComparison.Ordinal))
        {
            // This activation lives on another silo than the slot that claimed the trial (a stale directory entry):
            // the slot hands the trial back and it is claimed afresh.
            log.LogWarning("Trial {Key}: activation on {Silo} cannot own a lease claimed by {Owner}", this.GetPrimaryKeyString(), silo.SiloAddress, lease.Owner);
            return null;
        }

        _lease = lease;
        _leaseDuration = leaseDuration;
        _stoppingRule = stoppingRule;
        _renewal?.Dispose();
        _renewal = this.RegisterGrainTimer(RenewAsync, new GrainTimerCreationOptions(leaseDuration / 3, leaseDuration / 3) { KeepAlive = true });
        var checkpoint = lease.HasCheckpoint ? await store.GetCheckpointAsync(lease.TrialId) : null;
        if (checkpoint is { } c)
        {
            log.LogInformation("Trial {Trial} (attempt {Attempt}) resumes from its epoch-{Epoch} checkpoint on {Owner}", lease.Number, lease.Attempt, c.Epoch, lease.Owner);
        }

        return new Immutable<byte[]>(checkpoint?.Data ?? []);
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        if (_lease is not { } lease)
        {
            return;
        }

        try
        {
            await store.RenewAsync(lease, _leaseDuration, cancellationToken);
        }
        catch (LeaseLostException e)
        {
            log.LogWarning("Trial {Trial}: {Message}; abandoning it", lease.Number, e.Message);
            Abandon(lease);
        }
        catch (StoreUnavailableException e)
        {
            // Cut off: keep training and keep trying. If the lease expires meanwhile, another silo takes the trial over
            // and fencing rejects this activation's next write.
            log.LogWarning("Trial {Trial}: lease renewal failed: {Message}", lease.Number, e.Message);
        }
    }

    public async Task<EpochVerdict> ReportEpochAsync(EpochRecord metrics, Immutable<byte[]> checkpoint)
    {
        if (_lease is not { } lease)
        {
            return EpochVerdict.Lost;
        }

        try
        {
            await store.ReportEpochAsync(lease, metrics, checkpoint.Value, _leaseDuration);
        }
        catch (LeaseLostException e)
        {
            log.LogWarning("Trial {Trial}: {Message}; abandoning it", lease.Number, e.Message);
            Abandon(lease);
            return EpochVerdict.Lost;
        }
        catch (StoreUnavailableException e)
        {
            log.LogWarning("Trial {Trial}: store unavailable ({Message}); the epoch is kept and reported again", lease.Number, e.Message);
            return EpochVerdict.Retry;
        }

        return _stoppingRule ? await Study(lease).AfterEpochAsync(lease.Number, metrics) : EpochVerdict.Continue;
    }

    public async Task<EpochVerdict> FinishAsync(TrialFinish finish, LastEpoch? last)
    {
        if (_lease is not { } lease)
        {
            return EpochVerdict.Lost;
        }

        var paused = finish.State == TrialState.Paused;
        try
        {
            if (paused)
            {
                if (last is not null)
                {
                    await store.ReportEpochAsync(lease, last.Metrics, last.Checkpoint, _leaseDuration);
                }

                await store.PauseAsync(lease, finish);
            }
            else if (last is not null)
            {
                await store.FinishAfterEpochAsync(lease, last.Metrics, last.Checkpoint, finish);
            }
            else
            {
                await store.FinishAsync(lease, finish);
            }
        }
        catch (LeaseLostException e)
        {
            log.LogWarning("Trial {Trial}: {Message}; its result is not recorded", lease.Number, e.Message);
            Abandon(lease);
            return EpochVerdict.Lost;
        }
        catch (StoreUnavailableException)
        {
            return EpochVerdict.Retry;
        }

        log.LogInformation(paused ? "Trial {Trial} {State} at a rung: val acc {Val:F4} after {Epochs} epochs{Reason}" : "Trial {Trial} {State}: val acc {Val:F4} after {Epochs} epochs{Reason}", lease.Number, finish.State.ToText(), finish.ValAccuracy ?? double.NaN,
            finish.Epochs, finish.Reason is null ? "" : " (" + finish.Reason + ")");
        End(lease);
        return EpochVerdict.Continue;
    }

    public async Task ReleaseAsync(string reason)
    {
        if (_lease is not { } lease)
        {
            return;
        }

        try
        {
            await store.ReleaseAsync(lease, reason);
            log.LogInformation("Trial {Trial} handed back for another slot ({Reason})", lease.Number, reason);
        }
        catch (Exception e) when (e is LeaseLostException or StoreUnavailableException)
        {
            // Either it moved on already, or its lease runs out and it is requeued then.
            log.LogWarning("Trial {Trial}: hand-back not recorded: {Message}", lease.Number, e.Message);
        }

        End(lease);
    }

    private void Abandon(Lease lease)
    {
        slots.Abandon(lease);
        End(lease);
    }

    private void End(Lease lease)
    {
        _renewal?.Dispose();
        _renewal = null;
        _lease = null;
        Study(lease).TrialEndedAsync(lease.Number).Ignore();
        DeactivateOnIdle();
    }
}
