using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>The coordinator grain: see <see cref="IStudyGrain"/>.</summary>
public sealed class StudyGrain(
    ITrialStore store, ITrialRunner runner, SiloSettings settings, TimeProvider clock, ILocalSiloDetails silo, IClusterMembershipService membership, ILogger<StudyGrain> log)
    : Grain, IStudyGrain
{
    private StudyRecord? _record;
    private SweepDefinition? _sweep;
    private IStoppingRule _rule = new NoStopping();
    private StudySearch? _search;
    private bool _closed;
    private readonly Outage _outage = new(clock);

    /// <summary>Until when expired leases are left alone: a lease after the end of a store outage (see <see cref="TickAsync"/>).</summary>
    private DateTimeOffset _requeueAfter;

    // A claim that found nothing is not tried again until something may have returned a trial to pending (a requeue,
    // a hand-back) or a while has passed: idle slots then cost no store writes.
    private bool _maybePending = true;
    private DateTimeOffset _lastMiss;

    // The last claim found nothing pending: only then can a trial's end be the study's last (counting costs a query).
    private bool _drained;

    // Trials ended so far (their grains' word): a claim that finds nothing and saw one end meanwhile (the calls
    // interleave) may have seen the study's last; it looks then, since that end found the study not drained yet.
    private long _ends;

    // The one closing under way: calls that interleave (a trial's end, a tick) wait for it instead of closing again,
    // so the test split is evaluated once per activation (and the store closes a study once, whatever happens).
    private Task? _closing;

    private string Name => this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var record = await store.GetStudyAsync(Name, cancellationToken);
        if (record is not null)
        {
            await LoadAsync(record);
        }
    }

    /// <summary>Loads the study and, while it is open, records where its coordinator now lives (it moves when its silo dies).</summary>
    private async Task LoadAsync(StudyRecord record)
    {
        Load(record);
        if (!record.Closed)
        {
            await store.AddEventAsync(Name, null, "coordinator_activated", $"study grain active on silo {silo.SiloAddress.ToParsableString()}");
        }
    }

    private void Load(StudyRecord record)
    {
        _record = record;
        _closed = record.Closed;
        _sweep = SweepJson.Of(record);
        _rule = StoppingRules.For(_sweep.EarlyTerminate);
        _search = new StudySearch(store, Name, _sweep);
    }

    /// <summary>The note a program study closes with, in place of a test accuracy.</summary>
    public static string ProgramNote(int number, string metric, double? value) =>
        $"best trial {number} by {metric} ({(value is { } v ? v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture) : "-")}): "
        + "a training program's trial cannot be evaluated on the test split (its model lives in the program), so the study has no test accuracy";

    public async Task<StudyOpening> OpenAsync(string sweepText, string source)
    {
        // A program's working folder is stored with the study as the file gave it, wherever the trial's slot is.
        var sweep = ProgramTrialRunner.WithWorkDir(SweepParser.Parse(sweepText, source), source);

        if (sweep.Name != Name)
        {
            throw new ArgumentException($"the sweep file names study '{sweep.Name}', not '{Name}'.");
        }

        if (_record is not null && _record.SweepHash == sweep.SourceHash)
        {
            log.LogInformation("Resuming study {Study} ({Count} trials)", Name, _record.TrialCount);
            return new StudyOpening(_record, null);
        }

        if (_record is not null)
        {
            return new StudyOpening(null, new StudyConflictException(Name).Message);
        }

        // Grid and random search create every trial now; Bayesian search proposes each one as a slot frees up.
        var count = (int)SearchSpace.TrialCount(sweep);
        var trials = SearchSpace.ProposesAsItGoes(sweep) ? []
            : SearchSpace.CreateSampler(sweep).Propose(sweep, count).Select(t => new NewTrial(t.Number, ParamJson.Serialize(t.Parameters), t.Seed)).ToList();
        StudyRecord record;
        try
        {
            record = await store.CreateStudyAsync(new NewStudy(sweep.Name, sweep.SourceHash, sweep.SourceText, SweepJson.Serialize(sweep), sweep.Method, trials, sweep.Budget.MaxConcurrent, sweep.Budget.Retries)
            {
                PlannedTrials = count,
                ParameterNames = sweep.ParameterNames,
            });
        }
        catch (StudyConflictException e)
        {
            return new StudyOpening(null, e.Message);
        }

        log.LogInformation("Created study {Study}: {Count} trials ({Method} search)", Name, count, sweep.Method);
        await LoadAsync(record);
        _maybePending = true;
        return new StudyOpening(record, null);
    }

    public async Task<Lease?> NextTrialAsync(string owner)
    {
        if (_record is null || _closed || DeclaredDead(owner))
        {
            return null;
        }

        var now = clock.GetUtcNow();
        if (!_maybePending && now - _lastMiss < settings.IdleRecheck)
        {
            return null;
        }

        var ends = _ends;
        Lease? lease;
        try
        {
            if (_search is { Halving: not null } halving)
            {
                // A free slot resumes a paused trial that is due for promotion before it starts a new one.
                await halving.PromoteDueAsync();
            }

            lease = await store.ClaimAsync(Name, owner, settings.Lease);
            if (lease is null && _search is { Proposes: true } proposing && await proposing.ProposeAsync(_record.TrialCount))
            {
                lease = await store.ClaimAsync(Name, owner, settings.Lease);
            }
        }
        catch (StoreUnavailableException e)
        {
            // Idle slots ask every half second: said once for an outage.
            StoreFailed(e);
            return null;
        }

        StoreWorked();
        _drained = lease is null;
        if (lease is null)
        {
            _maybePending = false;
            _lastMiss = now;
            if (_ends != ends)
            {
                // Not awaited: the slot asking need not wait for the test evaluation. A failure is tried again at the next tick.
                CloseIfDoneAsync().ContinueWith(t => log.LogWarning("Study {Study}: closing deferred to the next tick ({Message})", Name, t.Exception?.GetBaseException().Message),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Current).Ignore();
            }
        }

        return lease;
    }

    private MembershipVersion _deadVersion = MembershipVersion.MinValue;
    private HashSet<string> _dead = [];

    /// <summary>
    /// Whether <paramref name="owner"/> is a slot of a silo this silo knows the cluster declared dead: a silo frozen past
    /// the cluster's patience asks for work as soon as it runs again, before it learns that it is dead and stops (seen in
    /// a probe: its claim took a trial's last allowed attempt, and the trial was failed when its lease ran out). It gets
    /// none.
    /// </summary>
    private bool DeclaredDead(string owner)
    {
        var snapshot = membership.CurrentSnapshot;
        if (snapshot.Version != _deadVersion)
        {
            _dead = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead).Select(m => SiloSettings.OwnerPrefix(m.SiloAddress)).ToHashSet(StringComparer.Ordinal);
            _deadVersion = snapshot.Version;
        }

        return _dead.Count > 0 && SiloSettings.OwnerPrefixOf(owner) is { } prefix && _dead.Contains(prefix);
    }

    public async Task<EpochVerdict> AfterEpochAsync(int number, EpochRecord metrics)
    {
        try
        {
            if (_search is { Halving: not null } halving)
            {
                return await halving.AfterEpochAsync(number, metrics);
            }

            // The rule compares the sweep's metric (a built-in field or a program's own), turned so that higher is
            // better, with the completed trials' values at the same epoch: one query.
            if (_rule is NoStopping || _search is not { } search || search.Value(metrics) is not { } value)
            {
                return EpochVerdict.Continue;
            }

            var sign = _sweep?.Goal == "minimize" ? -1 : 1;
            var others = (await store.GetCompletedEpochsAtAsync(Name, metrics.Epoch)).Select(search.Value).OfType<double>().Select(v => sign * v).ToList();
            return _rule.ShouldStop(metrics.Epoch, sign * value, others) ? EpochVerdict.Stop : EpochVerdict.Continue;
        }
        catch (StoreUnavailableException)
        {
            return EpochVerdict.Continue; // nothing to judge by: train on
        }
    }

    public Task TrialEndedAsync(int number)
    {
        _ends++;
        _maybePending = true;
        return _drained ? CloseIfDoneAsync() : Task.CompletedTask;
    }

    public async Task TickAsync()
    {
        if (_record is null)
        {
            // Created by a coordinator on another silo since this activation loaded.
            if (await store.GetStudyAsync(Name) is not { } record)
            {
                return;
            }

            await LoadAsync(record);
        }

        if (_closed)
        {
            return;
        }

        try
        {
            // While the store was out of reach, the silos' lease renewals did not get through either: their trials' leases
            // look expired though they train on. After an outage the expired leases are left for one lease length, in
            // which every live silo renews its own (every third of a lease); only the others are taken back. A trial of a
            // silo declared dead meanwhile waits that long too.
            if (!_outage.Ongoing && clock.GetUtcNow() >= _requeueAfter)
            {
                var requeued = await store.RequeueExpiredAsync(Name);
                if (requeued > 0)
                {
                    _maybePending = true;
                    log.LogWarning("Study {Study}: {Count} trial(s) lost their silo or lease and were requeued (or failed past their retries)", Name, requeued);
                }
            }

            await CloseIfDoneAsync();
            StoreWorked();
        }
        catch (StoreUnavailableException e)
        {
            StoreFailed(e);
        }
    }

    /// <summary>A write or read of the store failed as unreachable: said once for an outage (every caller tries again later).</summary>
    private void StoreFailed(StoreUnavailableException e)
    {
        if (_outage.Failed(e.Message))
        {
            log.LogWarning("Study {Study}: store unavailable ({Message}); tried again at each tick and each slot's ask (said again when it works)", Name, e.Message);
        }
    }

    /// <summary>The store answered: the end of an outage, if there was one, starts the lease length in which expired leases are left alone.</summary>
    private void StoreWorked()
    {
        if (_outage.Succeeded() is { } lasted)
        {
            _requeueAfter = clock.GetUtcNow() + settings.Lease;
            log.LogInformation("Study {Study}: the store is reachable again (after {Seconds:F0} s); expired leases are taken back from {At:HH:mm:ss} on, once live silos have renewed theirs", Name, lasted.TotalSeconds, _requeueAfter.ToLocalTime());
        }
    }

    /// <summary>Once every trial is final: the best completed trial by validation accuracy, evaluated once on the test split; the study closes.</summary>
    private Task CloseIfDoneAsync()
    {
        if (_closing is { IsCompleted: false } running)
        {
            return running;
        }

        return _closing = CloseIfDoneOnceAsync();
    }

    private async Task CloseIfDoneOnceAsync()
    {
        if (_record is null || _closed || _sweep is null)
        {
            return;
        }

        // Done once the study has all its trials (Bayesian search adds them as it goes) and none waits or trains. A trial
        // paused at a rung keeps the study open while successive halving has a promotion due; the others end pruned.
        var counts = await store.CountStatesAsync(Name);
        if (counts.Total == 0 || counts.Total < _record.TrialCount || counts.Pending + counts.Running > 0)
        {
            return;
        }

        if (counts.Paused > 0)
        {
            if (_search is { Halving: not null } halving && await halving.PromotionDueAsync())
            {
                _maybePending = true;
                return;
            }

            var ended = await store.EndPausedAsync(Name, TrialState.Pruned, "stopped at its rung: not promoted before the search ended");
            log.LogInformation("Study {Study}: {Count} trial(s) paused at a rung were not promoted; they end pruned", Name, ended);
        }

        if (await store.GetResultAsync(Name) is not null)
        {
            _closed = true;
            return;
        }

        var trials = await store.GetTrialsAsync(Name);
        var best = StudySelection.Best(trials, _sweep);
        StudyResult result;
        if (best is null)
        {
            result = new StudyResult(Name, StudySelection.RuleFor(_sweep.Metric, _sweep.Goal), _sweep.Metric, null, null, null, null, 0, null, "no trial completed: nothing to evaluate on the test split");
        }
        else if (_sweep.Program is not null)
        {
            // A program's model lives in the program: there is nothing of it here to evaluate on our test split.
            var value = StudySelection.RecordedValue(best, _sweep.Metric);
            result = new StudyResult(Name, StudySelection.RuleFor(_sweep.Metric, _sweep.Goal), _sweep.Metric, best.Id, best.Number, best.ValAccuracy, null, 0, null,
                ProgramNote(best.Number, _sweep.Metric, value));
            log.LogInformation("Study {Study}: best trial {Trial} ({Metric} {Value}); a program's trial is not evaluated on the test split", Name, best.Number, _sweep.Metric, value);
        }
        else
        {
            var checkpoint = await store.GetCheckpointAsync(best.Id)
                ?? throw new InvalidOperationException($"trial {best.Number} completed without a checkpoint; cannot evaluate it on the test split.");
            log.LogInformation("Study {Study}: best trial {Trial} (val acc {Val:F4}); evaluating it once on the test split", Name, best.Number, best.ValAccuracy);
            var sweep = _sweep;
            // Seconds of work: off the grain scheduler, on a thread of its own.
            var (accuracy, examples) = await Task.Factory.StartNew(() => runner.EvaluateOnTest(sweep, best, checkpoint.Data), CancellationToken.None,
                TaskCreationOptions.LongRunning, TaskScheduler.Default);
            result = new StudyResult(Name, StudySelection.RuleFor(_sweep.Metric, _sweep.Goal), _sweep.Metric, best.Id, best.Number, best.ValAccuracy, accuracy, examples, clock.GetUtcNow(), null);
        }

        if (await store.CloseStudyAsync(result))
        {
            log.LogInformation("Study {Study} closed: {Summary}", Name, TrialEvents.Closed(result));
        }

        _closed = true;
    }
}
