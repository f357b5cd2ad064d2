using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>One trial's owner: see <see cref="ITrialGrain"/>.</summary>
[Orleans.Placement.PreferLocalPlacement]
public sealed class TrialGrain(ITrialStore store, TrainingSlots slots, ILocalSiloDetails silo, SiloSettings settings, TimeProvider clock, ILogger<TrialGrain> log) : Grain, ITrialGrain
{
    private Lease? _lease;
    private IGrainTimer? _renewal;
    private readonly Outage _outage = new();

    private TimeSpan LeaseDuration => settings.Lease;

    private IStudyGrain Study(Lease lease) => GrainFactory.Study(lease.Study);

    public async Task<Immutable<byte[]>?> BeginAsync(Lease lease, DateTimeOffset claimed)
    {
        if (!OnThisSilo(lease))
        {
            // This activation lives on another silo than the slot that claimed the trial (left from an earlier attempt
            // here, or placed here by a call forwarded while it deactivated): the slot hands the trial back and claims
            // again. Unless it still acts for a newer lease here, the activation goes, so that the next claim activates
            // the grain afresh where the claiming slot is; else every claim of any other silo would land here again.
            if (_lease is null || _lease.Token < lease.Token)
            {
                DeactivateOnIdle();
            }

            log.LogWarning("Trial {Trial} (attempt {Attempt}): its grain was activated on {Silo}, which cannot own a lease claimed by {Owner}; the trial is handed back and claimed again", lease.Number, lease.Attempt, silo.SiloAddress, lease.Owner);
            return null;
        }

        Hold(lease, claimed);
        var checkpoint = lease.HasCheckpoint ? await store.GetCheckpointAsync(lease.TrialId) : null;
        if (checkpoint is { } c)
        {
            log.LogInformation("Trial {Trial} (attempt {Attempt}) resumes from its epoch-{Epoch} checkpoint on {Owner}", lease.Number, lease.Attempt, c.Epoch, lease.Owner);
        }

        return new Immutable<byte[]>(checkpoint?.Data ?? []);
    }

    /// <summary>The store did not answer a write of this trial: said once for an outage (the trial trains on and its writes are tried again).</summary>
    private void StoreFailed(Lease lease, StoreUnavailableException e)
    {
        if (_outage.Failed(e.Message))
        {
            log.LogWarning("Trial {Trial}: the store is unreachable ({Message}); the trial trains on, keeps its lease and epochs, and reports them when the store is back", lease.Number, e.Message);
        }
    }

    private void StoreWorked(Lease lease)
    {
        if (_outage.Succeeded() is { } lasted)
        {
            log.LogInformation("Trial {Trial}: the store is reachable again (after {Seconds:F0} s)", lease.Number, lasted.TotalSeconds);
        }
    }

    private bool OnThisSilo(Lease lease) => lease.Owner.StartsWith(SiloSettings.OwnerPrefix(silo.SiloAddress), StringComparison.Ordinal);

    /// <summary>
    /// Acts for <paramref name="lease"/> from now on and renews it every third of a lease, the first time a third of a
    /// lease after <paramref name="since"/> (when its last renewal or claim began; at once if that is past).
    /// </summary>
    private void Hold(Lease lease, DateTimeOffset? since = null)
    {
        _lease = lease;
        _renewal?.Dispose();
        var third = LeaseDuration / 3;
        var due = since is { } start ? start + third - clock.GetUtcNow() : third;
        _renewal = this.RegisterGrainTimer(RenewAsync, new GrainTimerCreationOptions(due > TimeSpan.Zero ? due : TimeSpan.Zero, third) { KeepAlive = true });
    }

    /// <summary>
    /// Whether this activation acts for <paramref name="lease"/>: the one it holds, or, when it holds none, the slot's
    /// lease taken up again. Orleans deactivates a grain whose directory entry lived on a silo that died; the slot's
    /// next call activates it afresh, without the lease in memory. The store stays the judge: a lease that moved on in
    /// the meantime is refused by the next fenced write.
    /// </summary>
    private bool Acts(Lease lease)
    {
        if (_lease is { } held)
        {
            return held.TrialId == lease.TrialId && held.Token == lease.Token;
        }

        if (!OnThisSilo(lease))
        {
            DeactivateOnIdle(); // holds nothing, for a slot of another silo: see BeginAsync
            return false;
        }

        log.LogInformation("Trial {Trial}: its grain was activated afresh on {Silo} mid-trial; it takes up its slot's lease (token {Token}) again", lease.Number, silo.SiloAddress, lease.Token);
        Hold(lease);
        return true;
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        if (_lease is not { } lease)
        {
            return;
        }

        try
        {
            await store.RenewAsync(lease, LeaseDuration, cancellationToken);
            StoreWorked(lease);
        }
        catch (LeaseLostException e)
        {
            log.LogWarning("The {Message}; abandoning it", e.Message);
            Abandon(lease);
        }
        catch (StoreUnavailableException e)
        {
            // Cut off: keep training and keep trying. If the lease expires meanwhile, another silo takes the trial over
            // and fencing rejects this activation's next write.
            StoreFailed(lease, e);
        }
    }

    public async Task<EpochVerdict> ReportEpochAsync(Lease lease, EpochRecord metrics, Immutable<byte[]> checkpoint, bool askStudy)
    {
        if (!Acts(lease))
        {
            return EpochVerdict.Lost;
        }

        try
        {
            await store.ReportEpochAsync(lease, metrics, checkpoint.Value, LeaseDuration);
            StoreWorked(lease);
        }
        catch (LeaseLostException e)
        {
            log.LogWarning("The {Message}; abandoning it", e.Message);
            Abandon(lease);
            return EpochVerdict.Lost;
        }
        catch (StoreUnavailableException e)
        {
            StoreFailed(lease, e);
            return EpochVerdict.Retry;
        }

        return askStudy ? await Study(lease).AfterEpochAsync(lease.Number, metrics) : EpochVerdict.Continue;
    }

    public async Task<EpochVerdict> FinishAsync(Lease lease, TrialFinish finish, LastEpoch? last)
    {
        if (!Acts(lease))
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
                    await store.ReportEpochAsync(lease, last.Metrics, last.Checkpoint, LeaseDuration);
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
            log.LogWarning("The {Message}; its result is not recorded", e.Message);
            Abandon(lease);
            return EpochVerdict.Lost;
        }
        catch (StoreUnavailableException e)
        {
            StoreFailed(lease, e);
            return EpochVerdict.Retry;
        }

        StoreWorked(lease);

        // A program's trial may report no validation accuracy: then its metric's value, if any.
        var score = finish.ValAccuracy is { } val ? $"val acc {val:F4}"
            : finish.Value is { } value ? "value " + value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture) : "no value";
        log.LogInformation(paused ? "Trial {Trial} {State} at a rung: {Score} after {Epochs} epochs{Reason}" : "Trial {Trial} {State}: {Score} after {Epochs} epochs{Reason}", lease.Number, finish.State.ToText(), score,
            finish.Epochs, finish.Reason is null ? "" : " (" + finish.Reason + ")");
        End(lease);
        return EpochVerdict.Continue;
    }

    public async Task<bool> HoldAsync(Lease lease)
    {
        if (_lease is { } held)
        {
            return held.TrialId == lease.TrialId && held.Token == lease.Token;
        }

        if (!OnThisSilo(lease))
        {
            DeactivateOnIdle(); // holds nothing, for a slot of another silo: see BeginAsync
            return false;
        }

        try
        {
            // Renewed first: a lease that ended meanwhile (the trial finished, or moved on) is not taken up again.
            await store.RenewAsync(lease, LeaseDuration);
        }
        catch (LeaseLostException)
        {
            return false;
        }
        catch (StoreUnavailableException e)
        {
            StoreFailed(lease, e);
            return true; // asked again at the next keep-alive
        }

        log.LogInformation("Trial {Trial}: its grain was activated afresh on {Silo} mid-epoch; it takes up its slot's lease (token {Token}) again", lease.Number, silo.SiloAddress, lease.Token);
        Hold(lease);
        return true;
    }

    public async Task ReleaseAsync(Lease lease, string reason)
    {
        if (!Acts(lease))
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
