using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>
/// Every silo's housekeeping, so that no single process's absence stalls a sweep: when Orleans' membership declares a
/// silo dead, the leases of its slots expire at once (its trials resume elsewhere from their last checkpoint instead of
/// waiting out a 30 s lease); every <see cref="SiloSettings.Tick"/> it calls each served study's grain (requeue,
/// close); every 5 s it records this silo's slots in the store for <c>sweeper status</c> and the dashboard. Any number
/// of silos do this at once: each step is idempotent.
/// </summary>
public sealed class ClusterWatcher(
    IClusterMembershipService membership, IGrainFactory grains, ILocalSiloDetails silo, ITrialStore store, StudyDirectory studies, TrainingSlots slots,
    SiloSettings settings, TimeProvider clock, ILogger<ClusterWatcher> log) : BackgroundService
{
    private readonly HashSet<SiloAddress> _handled = [];

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.WhenAll(WatchMembershipAsync(stoppingToken), TickAsync(stoppingToken));

    /// <summary>
    /// The silo stops of its own accord (Ctrl-C, SIGTERM, its sweep done): it says so in the store, so that
    /// <c>sweeper status</c> shows it <c>stopped</c>, not dead, even once a new silo has taken its address and port. A
    /// silo declared dead never gets here (<see cref="SiloDeathHandler"/> ends the process at once). With the store out of
    /// reach the mark is skipped; the silo is then told apart by its membership row alone.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        patience.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await store.MarkWorkerStoppedAsync(silo.SiloAddress.ToParsableString(), patience.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogDebug("The clean stop was not recorded: {Message}", e.Message);
        }
    }

    private async Task WatchMembershipAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
            {
                foreach (var member in snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead && !m.SiloAddress.Equals(silo.SiloAddress)))
                {
                    if (_handled.Contains(member.SiloAddress))
                    {
                        continue;
                    }

                    var expired = await UntilDoneAsync(() => store.ExpireLeasesOfOwnerAsync(SiloSettings.OwnerPrefix(member.SiloAddress), stoppingToken), stoppingToken);
                    _handled.Add(member.SiloAddress);
                    if (expired > 0)
                    {
                        // Only the first silo to expire the dead one's leases finds any: one event per death.
                        log.LogWarning("Silo {Silo} was declared dead: its {Count} trial(s) go back to pending and resume from their last checkpoint", member.SiloAddress, expired);
                        foreach (var study in await studies.OpenAsync(stoppingToken))
                        {
                            await store.AddEventAsync(study, null, "silo_dead", $"silo {member.SiloAddress.ToParsableString()} declared dead by the cluster; the leases of its {expired} trial(s) expired at once", stoppingToken);
                        }

                        await TickStudiesAsync(stoppingToken);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task TickAsync(CancellationToken stoppingToken)
    {
        var lastBeat = DateTimeOffset.MinValue;
        var outage = new Outage(clock);
        using var timer = new PeriodicTimer(settings.Tick, clock);
        try
        {
            do
            {
                try
                {
                    if (clock.GetUtcNow() - lastBeat > TimeSpan.FromSeconds(5))
                    {
                        await store.HeartbeatWorkerAsync(silo.SiloAddress.ToParsableString(), Environment.MachineName, Environment.ProcessId, null, slots.Count, stoppingToken);
                        lastBeat = clock.GetUtcNow();
                    }

                    await TickStudiesAsync(stoppingToken);
                    if (outage.Succeeded() is { } lasted)
                    {
                        log.LogInformation("Housekeeping works again (after {Seconds:F0} s)", lasted.TotalSeconds);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
                {
                    // Said once for a run of the same failure (a store outage would otherwise repeat it every tick).
                    if (outage.Failed(e.Message))
                    {
                        log.LogWarning("Housekeeping skipped: {Message}; retried every {Tick:F0} s (said again when it works)", e.Message, settings.Tick.TotalSeconds);
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task TickStudiesAsync(CancellationToken stoppingToken)
    {
        foreach (var study in await studies.OpenAsync(stoppingToken))
        {
            await grains.Study(study).TickAsync();
        }
    }

    /// <summary>Runs <paramref name="action"/> until the store answers it, trying again each second; the outage is said once, and its end.</summary>
    private async Task<T> UntilDoneAsync<T>(Func<Task<T>> action, CancellationToken stoppingToken)
    {
        var outage = new Outage(clock);
        while (true)
        {
            try
            {
                var done = await action();
                if (outage.Succeeded() is { } lasted)
                {
                    log.LogInformation("The store is reachable again (after {Seconds:F0} s): the dead silo's trials are taken back now", lasted.TotalSeconds);
                }

                return done;
            }
            catch (StoreUnavailableException e)
            {
                if (outage.Failed(e.Message))
                {
                    log.LogWarning("A silo was declared dead, and the store is unreachable ({Message}); its trials are taken back once the store answers (tried each second)", e.Message);
                }

                await Task.Delay(TimeSpan.FromSeconds(1), clock, stoppingToken);
            }
        }
    }
}
