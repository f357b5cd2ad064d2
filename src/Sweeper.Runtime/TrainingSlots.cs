using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>
/// A silo's training slots: one dedicated thread each (never the .NET thread pool or a grain scheduler), so a silo
/// never trains more trials at once than it has slots. A free slot asks the study grains for work; the trial's grain
/// is activated on this silo (<see cref="Orleans.Placement.PreferLocalPlacementAttribute"/>: the call comes from here)
/// and owns the lease, while the slot's thread trains and reports each epoch back through it. When the silo stops,
/// each slot hands its trial back so that another silo resumes it from its last checkpoint at once.
/// </summary>
public sealed class TrainingSlots(
    IGrainFactory grains, ILocalSiloDetails silo, ITrialStore store, ITrialRunner runner, StudyDirectory studies, SiloSettings settings, TimeProvider clock, ILogger<TrainingSlots> log)
    : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Thread> _threads = [];
    private readonly ConcurrentDictionary<long, RunningTrial> _running = new();
    private readonly ConcurrentDictionary<string, SweepDefinition> _sweeps = new();
    private readonly ConcurrentDictionary<long, Task> _storing = new();
    private int _busy;
    private int _finished;

    /// <summary>Slots training a trial now.</summary>
    public int Busy => Volatile.Read(ref _busy);

    /// <summary>Trials this silo's slots finished (any final state).</summary>
    public int Finished => Volatile.Read(ref _finished);

    /// <summary>Slots of both kinds: CPU slots, then GPU slots.</summary>
    public int Count => settings.Slots + settings.GpuSlots;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        for (var i = 0; i < Count; i++)
        {
            var owner = SiloSettings.OwnerPrefix(silo.SiloAddress) + "slot" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var device = i < settings.Slots ? "cpu" : "cuda";
            var thread = new Thread(() => Loop(owner, device)) { IsBackground = true, Name = $"training-slot-{i}-{device}" };
            _threads.Add(thread);
            thread.Start();
        }

        if (Count > 0)
        {
            log.LogInformation("Silo {Silo}: {Slots} CPU and {GpuSlots} GPU training slot(s), serving {Study}", silo.SiloAddress, settings.Slots, settings.GpuSlots,
                settings.Study ?? "every open study");
        }

        return Task.CompletedTask;
    }

    /// <summary>Stops the slots: each hands its trial back (or is abandoned when <paramref name="cancellationToken"/> fires first).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        foreach (var thread in _threads)
        {
            await Task.Run(() => thread.Join(), CancellationToken.None).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        // Outcomes still on their way to the store (see PipelinesOutcome).
        await Task.WhenAll(_storing.Values).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>
    /// Stops training the trial of <paramref name="lease"/> (its lease was lost): called by its grain. Only a run under
    /// that very lease stops: the grain of an earlier claim (one handed back, whose grain still renews) finds its lease
    /// lost once this slot has claimed the trial again, and must not stop the newer run (seen in a probe: each such
    /// abandon stopped the newer run, which was handed back and claimed again, 129 times in 45 s).
    /// </summary>
    public void Abandon(Lease lease)
    {
        if (_running.TryGetValue(lease.TrialId, out var running) && running.Token == lease.Token)
        {
            running.Lost = true;
            running.Cancellation.Cancel();
        }
    }

    private void Loop(string owner, string device)
    {
        BatchScheduling.ApplyToCurrentThread();
        var stopping = _stopping.Token;
        // Not disposed: outcomes still being stored when the slot's thread ends give their places back to it.
        var outcomes = new SemaphoreSlim(OutcomesInFlight, OutcomesInFlight);
        while (!stopping.IsCancellationRequested)
        {
            Lease? lease;
            var asked = clock.GetUtcNow(); // no later than the lease's start (see ITrialGrain.BeginAsync)
            try
            {
                lease = Block(ClaimAsync(owner, device, stopping));
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                log.LogWarning("Slot {Owner}: no work this time ({Message}); trying again", owner, e.Message);
                stopping.WaitHandle.WaitOne(settings.Poll * 4);
                continue;
            }

            if (lease is null)
            {
                stopping.WaitHandle.WaitOne(settings.Poll);
                continue;
            }

            Interlocked.Increment(ref _busy);
            bool begun;
            try
            {
                begun = Train(lease, asked, stopping, outcomes);
            }
            finally
            {
                Interlocked.Decrement(ref _busy);
            }

            if (!begun)
            {
                // Its grain could not take up the lease here (it lives on another silo until it deactivates): the trial
                // was handed back, and the study would hand it straight back to this slot. A pause, not a busy loop.
                stopping.WaitHandle.WaitOne(settings.Poll);
            }
        }
    }

    /// <summary>A trial of an open study whose device is this slot's (a CPU slot never takes a <c>device: cuda</c> trial, nor a GPU slot a CPU one).</summary>
    private async Task<Lease?> ClaimAsync(string owner, string device, CancellationToken cancellationToken)
    {
        foreach (var study in await studies.OpenAsync(cancellationToken))
        {
            // A study named by --study may not exist yet: no work, not an error each time the slot asks.
            if (!_sweeps.ContainsKey(study) && await store.GetStudyAsync(study, cancellationToken) is null)
            {
                continue;
            }

            if (Sweep(study).Device != device)
            {
                continue;
            }

            if (await grains.Study(study).NextTrialAsync(owner) is { } lease)
            {
                return lease;
            }
        }

        return null;
    }

    private SweepDefinition Sweep(string study) =>
        _sweeps.GetOrAdd(study, name => SweepJson.Of(store.GetStudyAsync(name).GetAwaiter().GetResult() ?? throw new InvalidOperationException($"study {name} vanished")));

    /// <summary>
    /// Outcomes a slot may have on their way to the store while it trains on (see <see cref="PipelinesOutcome"/>): each
    /// holds its trial's last checkpoint until stored.
    /// </summary>
    private const int OutcomesInFlight = 4;

    /// <summary>
    /// Whether a slot goes on to its next trial while this trial's outcome is being stored, instead of waiting for the
    /// commit: only where nothing that follows can depend on the outcome, that is, the study's trials were all created up
    /// front (grid, random) and no stopping rule compares trials (the median rule, successive halving). A trial's
    /// outcome is durable only once stored either way: if the silo dies first, the trial's lease runs out and it is
    /// trained again from its last stored checkpoint, as when a silo dies mid-epoch. What this buys is that the commits of
    /// several trials share one WAL flush (PostgreSQL's group commit) instead of each slot waiting for its own.
    /// </summary>
    private static bool PipelinesOutcome(SweepDefinition sweep) => !SearchSpace.ProposesAsItGoes(sweep) && !StoppingRules.AsksAfterEachEpoch(sweep.EarlyTerminate);

    /// <summary>Trains the trial of <paramref name="lease"/> and stores its outcome; false when its grain did not take up the lease (the trial was handed back untrained).</summary>
    private bool Train(Lease lease, DateTimeOffset asked, CancellationToken stopping, SemaphoreSlim outcomes)
    {
        var grain = grains.Trial(ITrialGrain.Key(lease.Study, lease.Number, lease.Token));
        var stoppingRule = StoppingRules.AsksAfterEachEpoch(Sweep(lease.Study).EarlyTerminate);
        // A trial with a checkpoint waits for it from its grain. A fresh one starts training at once while its grain takes
        // up the lease: the answer is awaited before the first report (or, for a trial whose only epoch goes out with its
        // outcome, before that), so a slot waits on one grain call per trial (the claim), not two.
        var beginning = grain.BeginAsync(lease, asked);
        byte[]? checkpoint = null;
        if (lease.HasCheckpoint)
        {
            if (Begun(beginning, lease) is not { } begun)
            {
                return false;
            }

            checkpoint = begun.Length > 0 ? begun : null;
        }

        using var trial = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var running = _running[lease.TrialId] = new RunningTrial(trial, lease.Token);
        using var keepAlive = KeepAlive(grain, lease, trial.Token);
        try
        {
            var sweep = Sweep(lease.Study);
            var finish = runner.Run(sweep, lease, checkpoint, (metrics, takeCheckpoint, last) =>
            {
                running.LastValue = metrics.ValueOf(sweep.Metric) ?? running.LastValue;
                if (!last || stoppingRule)
                {
                    StopUnlessBegun(beginning, running);
                }

                if (last)
                {
                    // The runner returns right after this epoch: it is stored with the trial's outcome, in one write (one
                    // commit instead of two). The stopping rule is still asked: it may prune the trial at its last epoch,
                    // or successive halving call it complete or pause it at a rung. (Neither reads this trial's own row.)
                    running.Last = new LastEpoch(metrics, takeCheckpoint());
                    running.Verdict = stoppingRule ? UntilStored(() => grains.Study(lease.Study).AfterEpochAsync(lease.Number, metrics), trial.Token) : EpochVerdict.Continue;
                    return running.Verdict == EpochVerdict.Continue;
                }

                var bytes = new Immutable<byte[]>(takeCheckpoint());
                var verdict = UntilStored(() => grain.ReportEpochAsync(lease, metrics, bytes, stoppingRule), trial.Token);
                if (verdict == EpochVerdict.Lost)
                {
                    running.Lost = true;
                    throw new OperationCanceledException(trial.Token);
                }

                running.Verdict = verdict;
                return verdict == EpochVerdict.Continue;
            }, trial.Token, note =>
            {
                log.LogWarning("Trial {Trial} {Note}", lease.Number, note);
                try
                {
                    store.AddEventAsync(lease.Study, lease.TrialId, "trial_resumed_elsewhere", $"trial {lease.Number} on {lease.Owner} {note}").GetAwaiter().GetResult();
                }
                catch (StoreUnavailableException e)
                {
                    log.LogWarning("Trial {Trial}: its resume note was not recorded ({Message})", lease.Number, e.Message);
                }
            });
            // The trial's value of the sweep's metric, stored with it: the runner's, or its record's field (val_accuracy,
            // train_accuracy), or the last epoch's.
            finish = finish with { Value = finish.Value ?? StudySelection.RecordField(sweep.Metric, finish.ValAccuracy, finish.TrainAccuracy, null) ?? running.LastValue };
            finish = running.Verdict switch
            {
                // Stopped by successive halving rather than pruned: paused at a rung (to be promoted, perhaps), or
                // complete at its last epoch.
                EpochVerdict.Pause => finish with { State = TrialState.Paused, Reason = $"paused at the rung of epoch {finish.Epochs}" },
                EpochVerdict.Complete when finish.State == TrialState.Pruned => finish with { State = TrialState.Completed, Reason = null },
                _ => finish,
            };
            var last = running.Last;
            if (PipelinesOutcome(sweep))
            {
                outcomes.Wait(CancellationToken.None);
                var storing = _storing[lease.TrialId] = StoreOutcomeAsync(lease, beginning, () => grain.FinishAsync(lease, finish, last), stopping, outcomes);
                if (storing.IsCompleted)
                {
                    _storing.TryRemove(lease.TrialId, out _); // done before it was listed: its own removal came first
                }
            }
            else if (StopUnlessBegun(beginning, running) && UntilStored(() => grain.FinishAsync(lease, finish, last), stopping) != EpochVerdict.Lost)
            {
                Interlocked.Increment(ref _finished);
            }
            else
            {
                HandBack(lease, NoLongerActs, quiet: true);
            }
        }
        catch (OperationCanceledException) when (running.Lost)
        {
            // Fenced out (the lease moved on to another silo): the trial belongs to another slot now. Or its grain no longer
            // acts for this lease (an activation elsewhere), or never took it up: then the store still has it here, and it
            // is handed back.
            HandBack(lease, running.NotBegun ?? NoLongerActs, quiet: running.NotBegun is null);
            return running.NotBegun is null;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // A last epoch kept for the outcome's write is dropped with the trial: it resumes from its previous
            // checkpoint and trains that epoch again.
            grain.ReleaseAsync(lease, "its silo is stopping").Wait(TimeSpan.FromSeconds(10));
        }
        catch (RuntimeCallException e)
        {
            HandBack(lease, $"its grain did not answer ({e.InnerException?.Message})");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogError("Trial {Trial} failed: {Type}: {Message}", lease.Number, e.GetType().Name, e.Message);
            try
            {
                if (Begun(beginning, lease) is null)
                {
                    return false;
                }

                UntilStored(() => grain.FinishAsync(lease, new TrialFinish(TrialState.Failed, null, null, 0, $"{e.GetType().Name}: {e.Message}"), running.Last), stopping);
                Interlocked.Increment(ref _finished);
            }
            catch (Exception again) when (again is OperationCanceledException or RuntimeCallException)
            {
                log.LogWarning("Trial {Trial}: its failure was not recorded ({Message}); its lease runs out", lease.Number, again.Message);
            }
        }
        finally
        {
            _running.TryRemove(lease.TrialId, out _);
        }

        return true;
    }

    /// <summary>
    /// The grain's answer to <see cref="ITrialGrain.BeginAsync"/> (the trial's checkpoint, empty when it has none); null
    /// when the grain cannot own the lease, and the trial was handed back.
    /// </summary>
    private byte[]? Begun(Task<Immutable<byte[]>?> beginning, Lease lease)
    {
        if (BeginFailure(beginning) is { } failure)
        {
            HandBack(lease, failure);
            return null;
        }

        return beginning.Result!.Value.Value;
    }

    /// <summary>Waits for a fresh trial's grain to take up the lease; if it did not, the trial stops and is handed back (true otherwise).</summary>
    private static bool StopUnlessBegun(Task<Immutable<byte[]>?> beginning, RunningTrial running)
    {
        if (BeginFailure(beginning) is { } failure)
        {
            running.NotBegun = failure;
            running.Lost = true;
            throw new OperationCanceledException(running.Cancellation.Token);
        }

        return true;
    }

    /// <summary>Why the trial's grain did not take up the lease, or null when it did.</summary>
    private static string? BeginFailure(Task<Immutable<byte[]>?> beginning) => Block(BeginFailureAsync(beginning));

    private static async Task<string?> BeginFailureAsync(Task<Immutable<byte[]>?> beginning)
    {
        try
        {
            // Its grain lives on another silo (a stale directory entry): the trial is claimed afresh.
            return await beginning.ConfigureAwait(false) is null ? "its grain lives on another silo" : null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Its grain did not answer (e.g. its directory entry lived on a silo that was just cut off): the trial goes
            // back to pending now rather than when its lease runs out, which may be minutes away.
            return $"its grain did not answer ({e.GetBaseException().Message})";
        }
    }

    /// <summary>
    /// Calls the trial's grain every third of a lease while the slot trains it (see <see cref="ITrialGrain.HoldAsync"/>):
    /// Orleans may deactivate the grain between two epochs (when its directory entry lived on a silo that died), and then
    /// nothing would renew the lease until the next epoch's report, which may come after the lease ran out.
    /// </summary>
    private ITimer KeepAlive(ITrialGrain grain, Lease lease, CancellationToken trial) =>
        clock.CreateTimer(_ =>
        {
            if (!trial.IsCancellationRequested)
            {
                grain.HoldAsync(lease).ContinueWith(
                    t => log.LogDebug("Trial {Trial}: keep-alive not answered ({Message})", lease.Number, t.Exception?.GetBaseException().Message),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }, null, settings.Lease / 3, settings.Lease / 3);

    /// <summary>A trial's outcome stored behind the slot's back (see <see cref="PipelinesOutcome"/>); the slot's window gets its place back.</summary>
    private async Task StoreOutcomeAsync(Lease lease, Task<Immutable<byte[]>?> beginning, Func<Task<EpochVerdict>> finish, CancellationToken stopping, SemaphoreSlim outcomes)
    {
        try
        {
            if (await BeginFailureAsync(beginning).ConfigureAwait(false) is { } failure)
            {
                await HandBackAsync(lease, failure).ConfigureAwait(false);
            }
            else if (await UntilStoredAsync(finish, stopping).ConfigureAwait(false) != EpochVerdict.Lost)
            {
                Interlocked.Increment(ref _finished);
            }
            else
            {
                await HandBackAsync(lease, NoLongerActs, quiet: true).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            log.LogWarning("Trial {Trial}: its outcome was not stored before the silo stopped; its lease runs out and its last epoch trains again", lease.Number);
        }
        catch (RuntimeCallException e)
        {
            await HandBackAsync(lease, $"its grain did not answer ({e.InnerException?.Message}) when its outcome was stored").ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.LogError("Trial {Trial}: its outcome was not stored: {Type}: {Message}; its lease runs out and it is trained again", lease.Number, e.GetType().Name, e.Message);
        }
        finally
        {
            _storing.TryRemove(lease.TrialId, out _);
            outcomes.Release();
        }
    }

    /// <summary>
    /// Hands a trial back to pending straight through the store, past its grain (which did not answer, or no longer acts
    /// for the slot's lease), so that another slot resumes it from its last checkpoint now instead of when its lease runs
    /// out. Fenced like every write: if the grain did take the lease or store the outcome after all, this is refused and
    /// changes nothing, and that grain's next write is refused in turn.
    /// </summary>
    private const string NoLongerActs = "its grain no longer acts for this slot's lease";

    private void HandBack(Lease lease, string reason, bool quiet = false) => HandBackAsync(lease, reason, quiet).GetAwaiter().GetResult();

    private async Task HandBackAsync(Lease lease, string reason, bool quiet = false)
    {
        try
        {
            await store.ReleaseAsync(lease, reason).ConfigureAwait(false);
            log.LogWarning("Trial {Trial}: {Reason}; handed back for another slot", lease.Number, reason);
        }
        catch (LeaseLostException)
        {
            // Quiet: the usual case, a lease that moved on, was said where it was found.
            log.Log(quiet ? LogLevel.Debug : LogLevel.Warning, "Trial {Trial}: {Reason}; it had moved on already", lease.Number, reason);
        }
        catch (StoreUnavailableException e)
        {
            log.LogWarning("Trial {Trial}: {Reason}; the store did not answer either ({Message}), so its lease runs out and it is claimed again", lease.Number, reason, e.Message);
        }
    }

    /// <summary>Repeats a report while the store is unreachable (the result is kept, never dropped); stops on any other answer.</summary>
    private static EpochVerdict UntilStored(Func<Task<EpochVerdict>> report, CancellationToken cancellationToken) => Block(UntilStoredAsync(report, cancellationToken));

    private static async Task<EpochVerdict> UntilStoredAsync(Func<Task<EpochVerdict>> report, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            EpochVerdict verdict;
            try
            {
                verdict = await report().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new RuntimeCallException(e);
            }

            if (verdict != EpochVerdict.Retry)
            {
                return verdict;
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 2));
        }
    }

    /// <summary>
    /// Waits on a slot's thread for <paramref name="task"/> without spinning first: <c>Task.Wait</c> spins before it
    /// blocks, and a slot's wait for a grain call or the store is long enough that the spin only takes a core from the
    /// grains and the store doing the work.
    /// </summary>
    private static T Block<T>(Task<T> task)
    {
        if (!task.IsCompleted)
        {
            using var done = new ManualResetEventSlim(false, spinCount: 0);
            task.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(done.Set);
            done.Wait();
        }

        return task.GetAwaiter().GetResult();
    }

    /// <summary>A trial a slot trains: its cancellation, and whether its lease was lost (fenced) rather than the silo stopping.</summary>
    private sealed class RunningTrial(CancellationTokenSource cancellation, long token)
    {
        public CancellationTokenSource Cancellation { get; } = cancellation;

        /// <summary>The fencing token of the lease it trains under.</summary>
        public long Token { get; } = token;

        public volatile bool Lost;

        /// <summary>The study's answer to the last epoch reported.</summary>
        public EpochVerdict Verdict { get; set; } = EpochVerdict.Continue;

        /// <summary>The sweep's metric in the last epoch that reported it.</summary>
        public double? LastValue { get; set; }

        /// <summary>Why the trial's grain did not take up its lease, when it did not (see <see cref="StopUnlessBegun"/>).</summary>
        public string? NotBegun { get; set; }

        /// <summary>The trial's last epoch, not stored yet: it goes to the store with the outcome.</summary>
        public LastEpoch? Last { get; set; }
    }

    /// <summary>A grain call failed (timeout, silo gone): not the trial's fault.</summary>
    private sealed class RuntimeCallException(Exception inner) : Exception(inner.Message, inner);
}

