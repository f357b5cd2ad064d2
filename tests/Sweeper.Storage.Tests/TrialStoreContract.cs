using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Storage.Tests;

/// <summary>A clock the tests move by hand.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>Opens stores on one fresh database.</summary>
public interface IStoreDatabase : IAsyncDisposable
{
    Task<ITrialStore> OpenAsync(TimeProvider clock);

    /// <summary>Opens the store migrated only to <paramref name="schemaVersion"/> (to test migrations).</summary>
    Task<ITrialStore> OpenAsync(TimeProvider clock, int schemaVersion);

    /// <summary>Runs raw SQL on the database, behind the store's back; returns the first column of the first row.</summary>
    Task<object?> SqlAsync(string sql);
}

/// <summary>
/// The contract every <see cref="ITrialStore"/> must keep. Each backend's test class only provides a fresh database.
/// </summary>
public abstract class TrialStoreContract
{
    /// <summary>A study's sweep document where the test never reads it back: the store keeps it as given, unread.</summary>
    internal const string AnySweepJson = "{}";

    /// <summary>A real sweep file, with a model block, conditions, data, budget and early stopping, for the tests that read its definition back.</summary>
    private const string SweepText = """
        name: stored
        method: random
        model: {family: fc, epochs: 2}
        data: {train_size: 900, val_size: 100, test_size: 50}
        parameters:
          learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
          lr_decay: {values: [1.0, 0.95]}
          update_rule: {values: [sgd, adam]}
        conditions:
          - when: {update_rule: adam}
            parameters:
              beta2: {distribution: uniform, min: 0.9, max: 0.999, q: 0.001}
              hidden_size: {distribution: int_uniform, min: 10, max: 50, q: 10}
        budget: {max_trials: 30, max_concurrent: 4, retries: 1}
        early_terminate: {type: median, warmup_epochs: 1, min_trials: 2}
        seed: 11
        """;

    private static readonly TimeSpan _lease = TimeSpan.FromSeconds(30);

    protected abstract Task<IStoreDatabase> CreateDatabaseAsync();

    private static NewStudy Study(string name = "s", int trials = 3, string hash = "h1", int? maxRunning = null, int retries = 2) =>
        new(name, hash, "name: " + name, AnySweepJson, "grid", Enumerable.Range(0, trials).Select(i => new NewTrial(i, $$"""{"learning_rate":{{i}}}""", (ulong)(100 + i))).ToList(), maxRunning, retries);

    private async Task<(IStoreDatabase Db, ITrialStore Store, ManualClock Clock)> OpenAsync()
    {
        var db = await CreateDatabaseAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        return (db, await db.OpenAsync(clock), clock);
    }

    [Fact]
    public async Task Creating_a_study_twice_from_the_same_file_resumes_it_and_another_file_is_refused()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            var first = await store.CreateStudyAsync(Study());
            var again = await store.CreateStudyAsync(Study());
            Assert.Equal(first, again);
            Assert.Equal(3, (await store.GetTrialsAsync("s")).Count);
            await Assert.ThrowsAsync<StudyConflictException>(() => store.CreateStudyAsync(Study(hash: "h2", trials: 5)));
            Assert.Equal(3, (await store.GetTrialsAsync("s")).Count);
            Assert.Single(await store.ListStudiesAsync());
            var trials = await store.GetTrialsAsync("s");
            Assert.All(trials, t => Assert.Equal(TrialState.Pending, t.State));
            Assert.Equal([100UL, 101UL, 102UL], trials.Select(t => t.Seed));
        }
    }

    [Fact]
    public async Task A_study_keeps_its_resolved_sweep_definition_as_written_and_reads_it_back_without_the_file()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            var sweep = SweepParser.Parse(SweepText, "stored.yaml");
            var json = SweepJson.Serialize(sweep);
            var proposed = SearchSpace.CreateSampler(sweep).Propose(sweep, 30);
            var created = await store.CreateStudyAsync(new NewStudy("stored", sweep.SourceHash, SweepText, json, sweep.Method,
                [.. proposed.Select(t => new NewTrial(t.Number, ParamJson.Serialize(t.Parameters), t.Seed))], sweep.Budget.MaxConcurrent, sweep.Budget.Retries));
            Assert.Equal(json, created.SweepJson);
            Assert.Equal(SweepText, created.SweepText);
            Assert.Equal(json, (await store.GetStudyAsync("stored"))!.SweepJson);
            Assert.Equal(json, (await store.ListStudiesAsync()).Single().SweepJson);
            Assert.Equal(created, await store.CreateStudyAsync(new NewStudy("stored", sweep.SourceHash, SweepText, json, sweep.Method, [])));

            // What the runtime, `results` and the dashboard read: the same definition, without the file being parsed.
            var read = SweepJson.Of((await store.GetStudyAsync("stored"))!);
            Assert.Equal(["model", "epochs", "learning_rate", "lr_decay", "update_rule", "beta2", "hidden_size"], read.ParameterNames);
            Assert.Equal((sweep.Method, sweep.Seed, sweep.Data, sweep.Budget, sweep.EarlyTerminate, sweep.SourceHash),
                (read.Method, read.Seed, read.Data, read.Budget, read.EarlyTerminate, read.SourceHash));
            Assert.Equal(json, SweepJson.Serialize(read));
            var again = SearchSpace.CreateSampler(read).Propose(read, 30);
            Assert.Equal(proposed.Select(t => (t.Seed, ParamJson.Serialize(t.Parameters))), again.Select(t => (t.Seed, ParamJson.Serialize(t.Parameters))));
        }
    }

    [Fact]
    public async Task Claim_takes_the_lowest_pending_trial_and_raises_epoch_and_attempts()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study());
            var a = await store.ClaimAsync("s", "w1", _lease);
            var b = await store.ClaimAsync("s", "w2", _lease);
            Assert.NotNull(a);
            Assert.NotNull(b);
            Assert.Equal(0, a.Number);
            Assert.Equal(1, b.Number);
            Assert.Equal(1, a.Token);
            Assert.Equal(1, a.Attempt);
            Assert.Equal(0L, Core.Sweeps.ParamJson.Deserialize(a.ParametersJson)["learning_rate"]); // same JSON, whatever the store's spacing
            var trial = await store.GetTrialAsync(a.TrialId);
            Assert.Equal(TrialState.Running, trial!.State);
            Assert.Equal("w1", trial.Owner);
        }
    }

    [Fact]
    public async Task Claim_returns_null_when_another_worker_holds_the_only_trial()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            Assert.NotNull(await store.ClaimAsync("s", "w1", _lease));
            Assert.Null(await store.ClaimAsync("s", "w2", _lease));
            Assert.Null(await store.ClaimAsync("missing", "w2", _lease));
        }
    }

    [Fact]
    public async Task Claim_respects_the_maximum_of_running_trials()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 5, maxRunning: 2));
            Assert.NotNull(await store.ClaimAsync("s", "w1", _lease));
            var second = await store.ClaimAsync("s", "w2", _lease);
            Assert.NotNull(second);
            Assert.Null(await store.ClaimAsync("s", "w3", _lease));
            await store.FinishAsync(second, new TrialFinish(TrialState.Completed, 0.5, 0.6, 1, null));
            Assert.NotNull(await store.ClaimAsync(null, "w3", _lease));
            Assert.Equal(2, (await store.GetStudyAsync("s"))!.MaxRunning);
        }
    }

    [Fact]
    public async Task A_holder_whose_claim_the_store_lost_is_fenced_out_even_when_another_holds_its_token()
    {
        // A claim's commit need not wait for its flush to disk: a server or machine crash can lose it, and the trial is
        // then pending at the token before it, so the next claim hands out the same token again. The first claimant
        // must still be fenced out: the fence is the token together with its owner. Here the lost claimant is the lease
        // the second one got, under the first one's name.
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var holder = (await store.ClaimAsync("s", "w2", _lease))!;
            var lost = holder with { Owner = "w1" };

            await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(lost, _lease));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.ReportEpochAsync(lost, new EpochRecord(1, 9, 0.9, 0.9, 1, 1), [9], _lease));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.PauseAsync(lost, new TrialFinish(TrialState.Paused, 0.9, 0.9, 1, null)));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAsync(lost, new TrialFinish(TrialState.Completed, 0.99, 0.99, 1, null)));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.ReleaseAsync(lost, "bye"));
            Assert.Empty(await store.GetEpochsAsync(holder.TrialId));
            Assert.Null(await store.GetCheckpointAsync(holder.TrialId));
            var trial = (await store.GetTrialAsync(holder.TrialId))!;
            Assert.Equal(("w2", TrialState.Running, 1L), (trial.Owner, trial.State, trial.LeaseToken));

            await store.ReportEpochAsync(holder, new EpochRecord(1, 2, 0.3, 0.3, 1, 1), [1], _lease);
            await store.FinishAsync(holder, new TrialFinish(TrialState.Completed, 0.3, 0.3, 1, null));
            Assert.Equal(TrialState.Completed, (await store.GetTrialAsync(holder.TrialId))!.State);
        }
    }

    [Fact]
    public async Task Writes_sent_at_once_each_get_their_own_outcome_and_a_refused_one_changes_nothing()
    {
        // A silo's slots write at once (claims, epochs, outcomes): the stores send them together (PostgreSQL's batches,
        // SQLite's group commit), and each must still be judged alone.
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            var sqlite = store as SqliteTrialStore;
            for (var attempt = 1; ; attempt++)
            {
                var grouped = await BurstAsync(store, sqlite, "s" + attempt);
                // On SQLite the burst must have shared transactions, else it did not try the group path at all. Whether it
                // did depends on the threads' timing: tried again, up to 5 bursts.
                if (sqlite is null || grouped)
                {
                    break;
                }

                Assert.True(attempt < 5, "5 bursts of writes from 100 threads never shared a transaction");
            }
        }
    }

    /// <summary>100 writes from threads of the pool at once, a third of them forged; true when SQLite ran some of them in one transaction.</summary>
    private static async Task<bool> BurstAsync(ITrialStore store, SqliteTrialStore? sqlite, string study)
    {
        // More than SQLite's group takes at once (64).
        await store.CreateStudyAsync(Study(study, trials: 100));
        var leases = new List<Lease>();
        for (var i = 0; i < 100; i++)
        {
            leases.Add((await store.ClaimAsync(study, "w" + (i % 4), _lease))!);
        }

        // A long write goes first (a study of 20,000 trials), on a thread of its own, so that the burst queues up behind
        // it (on SQLite: once it has the connection). The burst is not awaited write by write: all are under way
        // together, from threads of the pool, as a silo's grains send them. Every third write is forged (a token that
        // was never handed out).
        var (groupsBefore, writesBefore) = sqlite?.Grouped ?? default;
        var big = Task.Factory.StartNew(() => store.CreateStudyAsync(Study(study + "-big", trials: 20_000)).GetAwaiter().GetResult(), TaskCreationOptions.LongRunning);
        while (sqlite is not null && sqlite.Grouped.Groups == groupsBefore && !big.IsCompleted)
        {
            await Task.Delay(1);
        }

        var writes = leases.Select((lease, i) => Task.Run(() => Write(lease, i))).ToList();
        await big;
        Task Write(Lease lease, int i) => (i % 3) switch
        {
            0 => store.FinishAfterEpochAsync(lease, new EpochRecord(1, 1.5, 0.4, 0.35, 1e-3, 1), [(byte)i], new TrialFinish(TrialState.Completed, 0.35, 0.4, 1, null)),
            1 => store.ReportEpochAsync(lease, new EpochRecord(1, 1.5, 0.4, 0.3, 1e-3, 1), [(byte)i], _lease),
            _ => store.FinishAfterEpochAsync(lease with { Token = lease.Token + 5 }, new EpochRecord(1, 9, 0.9, 0.9, 1, 1), [99], new TrialFinish(TrialState.Completed, 0.99, 0.99, 1, null)),
        };
        for (var i = 0; i < writes.Count; i++)
        {
            if (i % 3 == 2)
            {
                await Assert.ThrowsAsync<LeaseLostException>(() => writes[i]);
            }
            else
            {
                await writes[i];
            }
        }

        var (groupsAfter, writesAfter) = sqlite?.Grouped ?? default;
        for (var i = 0; i < leases.Count; i++)
        {
            var trial = (await store.GetTrialAsync(leases[i].TrialId))!;
            var epochs = await store.GetEpochsAsync(leases[i].TrialId);
            var checkpoint = await store.GetCheckpointAsync(leases[i].TrialId);
            switch (i % 3)
            {
                case 0:
                    Assert.Equal((TrialState.Completed, 0.35), (trial.State, trial.ValAccuracy!.Value));
                    Assert.Equal([(byte)i], checkpoint!.Value.Data);
                    break;
                case 1:
                    Assert.Equal((TrialState.Running, 1), (trial.State, trial.EpochsDone));
                    Assert.Equal(0.3, Assert.Single(epochs).ValAccuracy);
                    break;
                default:
                    Assert.Equal((TrialState.Running, 0, null), (trial.State, trial.EpochsDone, trial.ValAccuracy));
                    Assert.Empty(epochs);
                    Assert.Null(checkpoint);
                    break;
            }
        }

        return writesAfter - writesBefore > groupsAfter - groupsBefore;
    }

    [Fact]
    public async Task A_lease_lost_says_what_became_of_the_trial_even_when_its_own_slot_claimed_it_again()
    {
        // A silo paused past its lease (SIGSTOP, a long GC) finds its trial requeued, and often claimed again by the very
        // slot that held it: the refusal must not read as if the slot had lost the trial to itself.
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var old = (await store.ClaimAsync("s", "w1", _lease))!;
            clock.Advance(TimeSpan.FromSeconds(31));
            Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            var pending = await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(old, _lease));
            Assert.EndsWith("is no longer held: its lease ran out and the trial is pending again (fencing token 1)", pending.Message);

            var again = (await store.ClaimAsync("s", "w1", _lease))!;
            Assert.Equal(2, again.Token);
            var same = await Assert.ThrowsAsync<LeaseLostException>(() => store.ReportEpochAsync(old, new EpochRecord(1, 9, 0.9, 0.9, 1, 1), [9], _lease));
            Assert.Contains("(fencing token 1, owner w1) is no longer held: its lease ran out and the same slot claimed the trial again (fencing token 2)", same.Message);

            clock.Advance(TimeSpan.FromSeconds(31));
            Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            var other = (await store.ClaimAsync("s", "w2", _lease))!;
            var moved = await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAsync(again, new TrialFinish(TrialState.Completed, 0.9, 0.9, 1, null)));
            Assert.EndsWith("its lease ran out and w2 claimed the trial (fencing token 3)", moved.Message);

            await store.FinishAsync(other, new TrialFinish(TrialState.Completed, 0.5, 0.5, 1, null));
            var finished = await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(again, _lease));
            Assert.EndsWith("the trial is now completed (fencing token 3, owner w2)", finished.Message);

            // A lease that ran out on the trial's last allowed attempt: the trial is failed under it, token and owner unchanged.
            await store.CreateStudyAsync(Study("f", trials: 1, retries: 0));
            var last = (await store.ClaimAsync("f", "w1", _lease))!;
            clock.Advance(TimeSpan.FromSeconds(31));
            await store.RequeueExpiredAsync("f");
            Assert.Equal(TrialState.Failed, (await store.GetTrialAsync(last.TrialId))!.State);
            var spent = await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(last, _lease));
            Assert.EndsWith("is no longer held: the trial was failed under this very lease (its lease ran out with the trial's retries spent, or its failure was recorded)", spent.Message);
        }
    }

    [Fact]
    public async Task An_expired_lease_is_requeued_and_the_old_holder_is_fenced_out()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var old = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.ReportEpochAsync(old, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1, 2, 3], _lease);

            clock.Advance(TimeSpan.FromSeconds(20));
            Assert.Equal(0, await store.RequeueExpiredAsync("s")); // not expired yet
            clock.Advance(TimeSpan.FromSeconds(11));
            Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            Assert.Equal(TrialState.Pending, (await store.GetTrialAsync(old.TrialId))!.State);

            Assert.False(old.HasCheckpoint);
            var fresh = (await store.ClaimAsync("s", "w2", _lease))!;
            Assert.True(fresh.HasCheckpoint);
            Assert.Equal(old.TrialId, fresh.TrialId);
            Assert.Equal(2, fresh.Token);
            Assert.Equal(2, fresh.Attempt);
            var checkpoint = (await store.GetCheckpointAsync(fresh.TrialId))!.Value;
            Assert.Equal(1, checkpoint.Epoch);
            Assert.Equal([1, 2, 3], checkpoint.Data);

            // The cut-off worker comes back: every write it makes is rejected and changes nothing.
            await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(old, _lease));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.ReportEpochAsync(old, new EpochRecord(2, 9, 0.9, 0.9, 1, 1), [9], _lease));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAsync(old, new TrialFinish(TrialState.Completed, 0.99, 0.99, 2, null)));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.ReleaseAsync(old, "bye"));
            Assert.Single(await store.GetEpochsAsync(old.TrialId));
            Assert.Equal(1, (await store.GetCheckpointAsync(old.TrialId))!.Value.Epoch);
            var trial = (await store.GetTrialAsync(old.TrialId))!;
            Assert.Equal(("w2", TrialState.Running), (trial.Owner, trial.State));

            await store.FinishAsync(fresh, new TrialFinish(TrialState.Completed, 0.4, 0.5, 3, null));
            Assert.Equal(TrialState.Completed, (await store.GetTrialAsync(old.TrialId))!.State);
        }
    }

    [Fact]
    public async Task Expiring_the_leases_of_an_owner_prefix_requeues_exactly_its_running_trials_at_the_next_requeue()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study("s", trials: 3, retries: 2));
            await store.CreateStudyAsync(Study("t", trials: 2, retries: 0));
            var a = (await store.ClaimAsync("s", "silo-1/a", _lease))!;
            var b = (await store.ClaimAsync("s", "silo-10/b", _lease))!; // a longer name, not the prefix
            var c = (await store.ClaimAsync("s", "silo-1/c", _lease))!;
            await store.FinishAsync(c, new TrialFinish(TrialState.Completed, 0.5, 0.5, 1, null));
            var d = (await store.ClaimAsync("t", "silo-1/d", _lease))!;
            var e = (await store.ClaimAsync("t", "silo-_%/e", _lease))!;

            // Wildcards of LIKE are plain characters here.
            Assert.Equal(0, await store.ExpireLeasesOfOwnerAsync("%"));
            Assert.Equal(0, await store.ExpireLeasesOfOwnerAsync("_"));
            Assert.Equal(0, await store.ExpireLeasesOfOwnerAsync("silo-1/a/"));
            Assert.Equal(1, await store.ExpireLeasesOfOwnerAsync("silo-_%"));
            Assert.Equal(2, await store.ExpireLeasesOfOwnerAsync("silo-1/"));
            Assert.Equal(0, await store.ExpireLeasesOfOwnerAsync("silo-1/")); // already expired: every silo that sees the death may call it, one counts
            await Assert.ThrowsAsync<ArgumentException>(() => store.ExpireLeasesOfOwnerAsync(""));

            // Without the clock moving on, the next requeue of each study takes them as expired.
            Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            Assert.Equal(2, await store.RequeueExpiredAsync("t"));
            var trials = (await store.GetTrialsAsync("s")).Concat(await store.GetTrialsAsync("t")).ToDictionary(t => t.Id);
            Assert.Equal((TrialState.Pending, null), (trials[a.TrialId].State, trials[a.TrialId].Owner)); // retries left
            Assert.Equal((TrialState.Running, "silo-10/b"), (trials[b.TrialId].State, trials[b.TrialId].Owner));
            Assert.Equal(TrialState.Completed, trials[c.TrialId].State);
            Assert.Equal(TrialState.Failed, trials[d.TrialId].State); // no retries left
            Assert.Contains("retry budget", trials[d.TrialId].Reason);
            Assert.Equal(TrialState.Failed, trials[e.TrialId].State);
            await Assert.ThrowsAsync<LeaseLostException>(() => store.RenewAsync(a, _lease));
            await store.RenewAsync(b, _lease);
            Assert.Equal(0, await store.RequeueExpiredAsync("s"));
            Assert.Equal(0, await store.ExpireLeasesOfOwnerAsync("silo-1/")); // none of them is running any more
        }
    }

    [Fact]
    public async Task Renewal_keeps_a_lease_alive_past_its_first_expiry()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            for (var i = 0; i < 5; i++)
            {
                clock.Advance(TimeSpan.FromSeconds(20));
                await store.RenewAsync(lease, _lease);
                Assert.Equal(0, await store.RequeueExpiredAsync("s"));
            }
        }
    }

    [Fact]
    public async Task A_trial_past_its_retry_budget_fails_with_the_reason_kept()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1, retries: 1));
            for (var attempt = 1; attempt <= 2; attempt++)
            {
                Assert.NotNull(await store.ClaimAsync("s", $"w{attempt}", _lease));
                clock.Advance(TimeSpan.FromMinutes(1));
                Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            }

            var trial = (await store.GetTrialsAsync("s")).Single();
            Assert.Equal(TrialState.Failed, trial.State);
            Assert.Equal(2, trial.Attempts);
            Assert.Contains("retry budget", trial.Reason);
            Assert.Contains("w2", trial.Reason);
            Assert.Null(await store.ClaimAsync("s", "w3", _lease));
            Assert.Contains(await store.GetEventsAsync("s"), e => e.Kind == "trial_failed");
        }
    }

    [Fact]
    public async Task Release_returns_the_trial_without_counting_the_attempt()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.ReleaseAsync(lease, "interrupted");
            var trial = (await store.GetTrialsAsync("s")).Single();
            Assert.Equal((TrialState.Pending, 0), (trial.State, trial.Attempts));
            var again = (await store.ClaimAsync("s", "w2", _lease))!;
            Assert.Equal((2L, 1), (again.Token, again.Attempt));
        }
    }

    [Fact]
    public async Task A_finished_trial_is_never_finished_twice()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.FinishAsync(lease, new TrialFinish(TrialState.Diverged, null, null, 1, "loss became NaN"));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.5, 0.5, 1, null)));
            var trial = (await store.GetTrialsAsync("s")).Single();
            Assert.Equal(TrialState.Diverged, trial.State);
            Assert.Equal("loss became NaN", trial.Reason);
            await Assert.ThrowsAsync<ArgumentException>(() => store.FinishAsync(lease, new TrialFinish(TrialState.Running, null, null, 0, null)));
        }
    }

    [Fact]
    public async Task A_last_epoch_and_the_outcome_are_stored_in_one_write_fenced_as_each_alone()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 2));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.ReportEpochAsync(lease, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1], _lease);

            // Not a final state: refused, and nothing of it is written.
            await Assert.ThrowsAsync<ArgumentException>(() => store.FinishAfterEpochAsync(lease, new EpochRecord(2, 1.0, 0.5, 0.4, 1e-3, 1), [2], new TrialFinish(TrialState.Running, 0.4, 0.5, 2, null)));
            Assert.Single(await store.GetEpochsAsync(lease.TrialId));
            Assert.Equal(1, (await store.GetCheckpointAsync(lease.TrialId))!.Value.Epoch);

            await store.FinishAfterEpochAsync(lease, new EpochRecord(2, 1.0, 0.5, 0.4, 1e-3, 1), [2, 2], new TrialFinish(TrialState.Completed, 0.4, 0.5, 2, null));
            var trial = (await store.GetTrialAsync(lease.TrialId))!;
            Assert.Equal((TrialState.Completed, 2, 0.4), (trial.State, trial.EpochsDone, trial.ValAccuracy));
            Assert.Equal([(1, 0.25), (2, 0.4)], (await store.GetEpochsAsync(lease.TrialId)).Select(e => (e.Epoch, e.ValAccuracy)));
            var checkpoint = (await store.GetCheckpointAsync(lease.TrialId))!.Value;
            Assert.Equal(2, checkpoint.Epoch);
            Assert.Equal([2, 2], checkpoint.Data);
            Assert.Equal([0.4], (await store.GetCompletedEpochsAtAsync("s", 2)).Select(e => e.ValAccuracy));

            // Finished once: another outcome from the same holder is refused and adds no epoch.
            await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAfterEpochAsync(lease, new EpochRecord(3, 0.5, 0.9, 0.9, 1e-3, 1), [3], new TrialFinish(TrialState.Pruned, 0.9, 0.9, 3, null)));
            Assert.Equal(2, (await store.GetEpochsAsync(lease.TrialId)).Count);
            Assert.Equal(2, (await store.GetCheckpointAsync(lease.TrialId))!.Value.Epoch);

            // A holder whose lease expired and moved on is fenced out: its last epoch is not written either.
            var old = (await store.ClaimAsync("s", "w1", _lease))!;
            clock.Advance(_lease + TimeSpan.FromSeconds(1));
            Assert.Equal(1, await store.RequeueExpiredAsync("s"));
            var fresh = (await store.ClaimAsync("s", "w2", _lease))!;
            Assert.Equal(old.TrialId, fresh.TrialId);
            await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAfterEpochAsync(old, new EpochRecord(1, 0.5, 0.9, 0.9, 1e-3, 1), [9], new TrialFinish(TrialState.Completed, 0.9, 0.9, 1, null)));
            Assert.Empty(await store.GetEpochsAsync(old.TrialId));
            Assert.Null(await store.GetCheckpointAsync(old.TrialId));
            Assert.Equal(("w2", TrialState.Running), ((await store.GetTrialAsync(old.TrialId))!.Owner, (await store.GetTrialAsync(old.TrialId))!.State));
        }
    }

    [Fact]
    public async Task Epoch_reports_replace_earlier_ones_and_the_median_rule_sees_only_completed_trials()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 3));
            var leases = new List<Lease>();
            for (var i = 0; i < 3; i++)
            {
                leases.Add((await store.ClaimAsync("s", $"w{i}", _lease))!);
            }

            for (var i = 0; i < 3; i++)
            {
                await store.ReportEpochAsync(leases[i], new EpochRecord(1, 2, 0.1, 0.1 * (i + 1), 1e-3, 1), null, _lease);
            }

            await store.ReportEpochAsync(leases[0], new EpochRecord(1, 1.5, 0.2, 0.15, 1e-3, 1), [7], _lease);
            await store.FinishAsync(leases[0], new TrialFinish(TrialState.Completed, 0.15, 0.2, 1, null));
            await store.FinishAsync(leases[1], new TrialFinish(TrialState.Completed, 0.2, 0.2, 1, null));
            await store.FinishAsync(leases[2], new TrialFinish(TrialState.Pruned, 0.3, 0.2, 1, null));

            var epochs = await store.GetEpochsAsync(leases[0].TrialId);
            Assert.Equal((1, 0.15), (epochs.Single().Epoch, epochs.Single().ValAccuracy));
            Assert.Equal([0.15, 0.2], (await store.GetCompletedEpochsAtAsync("s", 1)).Select(e => e.ValAccuracy).Order());
            Assert.Equal([1.5, 2.0], (await store.GetCompletedEpochsAtAsync("s", 1)).Select(e => e.Loss).Order());
            Assert.Empty(await store.GetCompletedEpochsAtAsync("s", 2));
            Assert.Equal(new StateCounts(0, 0, 2, 1, 0, 0), await store.CountStatesAsync("s"));
        }
    }

    [Fact]
    public async Task A_study_is_closed_once_with_its_result()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 1));
            var result = new StudyResult("s", "max val_accuracy, ties to the lowest trial number", "val_accuracy", 1, 0, 0.5, 0.48, 1000, DateTimeOffset.UnixEpoch, null);
            Assert.True(await store.CloseStudyAsync(result));
            Assert.False(await store.CloseStudyAsync(result with { TestAccuracy = 0.99 }));
            Assert.Equal(result, await store.GetResultAsync("s"));
            Assert.True((await store.GetStudyAsync("s"))!.Closed);
            Assert.Null(await store.ClaimAsync(null, "w", _lease)); // a closed study's trials are not handed out,
            Assert.Null(await store.ClaimAsync("s", "w", _lease)); // whether asked for by name or not
        }
    }

    [Fact]
    public async Task Trials_proposed_one_at_a_time_are_added_once_each_and_queried_like_the_others()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            var created = await store.CreateStudyAsync(Study(trials: 0) with { PlannedTrials = 3, ParameterNames = ["learning_rate"] });
            Assert.Equal(3, created.TrialCount);
            Assert.Null(await store.ClaimAsync("s", "w", _lease));
            Assert.True(await store.AddTrialAsync("s", new NewTrial(0, """{"learning_rate":0.5}""", 7)));
            Assert.False(await store.AddTrialAsync("s", new NewTrial(0, """{"learning_rate":0.9}""", 8))); // another proposer won
            // A parameter the first trials lacked (a conditional one) gets its own query column.
            Assert.True(await store.AddTrialAsync("s", new NewTrial(1, """{"learning_rate":0.25,"beta2":0.99}""", 9)));
            var trials = await store.GetTrialsAsync("s");
            Assert.Equal([(0, """{"learning_rate":0.5}""", 7UL), (1, """{"beta2":0.99,"learning_rate":0.25}""", 9UL)],
                trials.Select(t => (t.Number, Canonical(t.ParametersJson), t.Seed)));
            var names = new[] { "learning_rate", "beta2" };
            var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("beta2 > 0.5", names), Core.Queries.FilterParser.ParseSort("-learning_rate", names));
            Assert.Equal([1], (await store.QueryTrialsAsync("s", query)).Trials.Select(t => t.Number));
            query = new Core.Queries.TrialQuery(null, Core.Queries.FilterParser.ParseSort("learning_rate", names));
            Assert.Equal([1, 0], (await store.QueryTrialsAsync("s", query)).Trials.Select(t => t.Number));
            Assert.Equal(0, (await store.ClaimAsync("s", "w", _lease))!.Number);

            await store.CloseStudyAsync(new StudyResult("s", "rule", "val_accuracy", null, null, null, null, 0, null, "closed by the test"));
            Assert.False(await store.AddTrialAsync("s", new NewTrial(2, """{"learning_rate":0.1}""", 10))); // not to a closed study
            Assert.Equal(2, (await store.GetTrialsAsync("s")).Count);
        }
    }

    private static string Canonical(string json) =>
        System.Text.Json.JsonSerializer.Serialize(System.Text.Json.JsonDocument.Parse(json).RootElement.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal)
            .ToDictionary(p => p.Name, p => p.Value));

    [Fact]
    public async Task A_paused_trial_keeps_its_checkpoint_is_not_claimed_until_promoted_and_ends_pruned_when_never_promoted()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 2));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.ReportEpochAsync(lease, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1, 2, 3], _lease);
            await store.PauseAsync(lease, new TrialFinish(TrialState.Paused, 0.25, 0.3, 1, "rung 1 of 3"));
            var paused = (await store.GetTrialsAsync("s")).Single(t => t.Number == 0);
            Assert.Equal((TrialState.Paused, null, 1, 0.25, 0), (paused.State, paused.Owner, paused.EpochsDone, paused.ValAccuracy, paused.Attempts));
            Assert.Equal(new StateCounts(1, 0, 0, 0, 0, 0, Paused: 1), await store.CountStatesAsync("s"));
            await Assert.ThrowsAsync<LeaseLostException>(() => store.ReportEpochAsync(lease, new EpochRecord(2, 2, 0.3, 0.3, 1, 1), null, _lease)); // fenced out

            // Paused trials are not handed out; the next claim takes the other trial.
            var other = (await store.ClaimAsync("s", "w2", _lease))!;
            Assert.Equal(1, other.Number);
            Assert.Null(await store.ClaimAsync("s", "w2", _lease));

            Assert.True(await store.PromoteAsync(lease.TrialId, "top 1/3 of rung 1"));
            Assert.False(await store.PromoteAsync(lease.TrialId, "again")); // only a paused trial is promoted
            var resumed = (await store.ClaimAsync("s", "w3", _lease))!;
            Assert.Equal((0, true, 1), (resumed.Number, resumed.HasCheckpoint, resumed.Attempt)); // a pause is not a failed attempt
            var checkpoint = (await store.GetCheckpointAsync(resumed.TrialId))!.Value;
            Assert.Equal(1, checkpoint.Epoch);
            Assert.Equal([1, 2, 3], checkpoint.Data);
            await store.ReportEpochAsync(resumed, new EpochRecord(2, 1.9, 0.35, 0.3, 1e-3, 1), null, _lease);
            await store.PauseAsync(resumed, new TrialFinish(TrialState.Paused, 0.3, 0.35, 2, "rung 2 of 3"));

            Assert.Equal(1, await store.EndPausedAsync("s", TrialState.Pruned, "not promoted before the search ended"));
            Assert.Equal(0, await store.EndPausedAsync("s", TrialState.Pruned, "again"));
            var ended = (await store.GetTrialsAsync("s")).Single(t => t.Number == 0);
            Assert.Equal((TrialState.Pruned, 2, 0.3), (ended.State, ended.EpochsDone, ended.ValAccuracy));
            Assert.False(await store.PromoteAsync(lease.TrialId, "too late"));
            await Assert.ThrowsAsync<ArgumentException>(() => store.EndPausedAsync("s", TrialState.Pending, "not final"));
        }
    }

    [Fact]
    public async Task The_metrics_of_every_trial_at_an_epoch_are_read_for_a_rung()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 3));
            for (var i = 0; i < 3; i++)
            {
                var lease = (await store.ClaimAsync("s", "w", _lease))!;
                for (var e = 1; e <= i + 1; e++)
                {
                    await store.ReportEpochAsync(lease, new EpochRecord(e, 2.0 - e, 0.1 * e, 0.1 * e + 0.01 * i, 1e-3, 1), null, _lease);
                }

                if (i == 2)
                {
                    await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.32, 0.3, 3, null));
                }
            }

            var second = await store.GetEpochOfTrialsAsync("s", 2);
            Assert.Equal([1, 2], second.Select(x => x.Number));
            Assert.Equal([0.21, 0.22], second.Select(x => Math.Round(x.Metrics.ValAccuracy, 6)));
            Assert.All(second, x => Assert.Equal(2, x.Metrics.Epoch));
            Assert.Equal(3, (await store.GetEpochOfTrialsAsync("s", 1)).Count);
            Assert.Empty(await store.GetEpochOfTrialsAsync("s", 4));
        }
    }

    [Fact]
    public async Task Workers_report_heartbeats()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.HeartbeatWorkerAsync("w1", "host-a", 42, null, 2);
            clock.Advance(TimeSpan.FromSeconds(5));
            await store.HeartbeatWorkerAsync("w1", "host-a", 42, 7, 3);
            var worker = (await store.GetWorkersAsync()).Single();
            Assert.Equal(("w1", "host-a", 42, 7L, 3), (worker.Id, worker.Host, worker.Pid, worker.CurrentTrialId!.Value, worker.Slots));
            // A database clock keeps running while the test moves its own: allow it the test's real duration.
            Assert.InRange((worker.LastHeartbeat - worker.StartedAt).TotalSeconds, 4.9, 5.5);
            Assert.Null(worker.StoppedAt);
        }
    }

    [Fact]
    public async Task A_worker_that_stops_of_its_own_accord_is_marked_stopped_and_the_others_are_not()
    {
        var (db, store, clock) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.HeartbeatWorkerAsync("w1", "host-a", 42, null, 2);
            await store.HeartbeatWorkerAsync("w2", "host-a", 43, null, 2);
            clock.Advance(TimeSpan.FromSeconds(5));
            await store.MarkWorkerStoppedAsync("w1");
            await store.MarkWorkerStoppedAsync("nosuch"); // not an error, and nothing is added
            var workers = (await store.GetWorkersAsync()).ToDictionary(w => w.Id);
            Assert.Equal(["w1", "w2"], workers.Keys.Order());
            Assert.Null(workers["w2"].StoppedAt);
            Assert.InRange((workers["w1"].StoppedAt!.Value - workers["w1"].StartedAt).TotalSeconds, 4.9, 5.5);

            // A heartbeat still under way when the worker stopped leaves the mark.
            var stoppedAt = workers["w1"].StoppedAt;
            await store.HeartbeatWorkerAsync("w1", "host-a", 42, null, 2);
            Assert.Equal(stoppedAt, (await store.GetWorkersAsync()).Single(w => w.Id == "w1").StoppedAt);
        }
    }

    [Fact]
    public async Task A_parameter_named_like_a_trial_field_is_queried_as_params_name_and_the_bare_name_is_the_field()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            // The parameter epochs (what each trial was given) against the field epochs (what it trained).
            var trials = Enumerable.Range(0, 4).Select(i => new NewTrial(i, $$"""{"epochs":{{10 * (i + 1)}}}""", 1)).ToList();
            await store.CreateStudyAsync(new NewStudy("e", "h", "t", AnySweepJson, "grid", trials));
            for (var i = 0; i < 4; i++)
            {
                var lease = (await store.ClaimAsync("e", "w", _lease))!;
                await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.1 * i, 0.1 * i, 4 - i, null));
            }

            IReadOnlyList<string> names = ["epochs"];
            async Task<int[]> Numbers(string where, string sort)
            {
                var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse(where, names), Core.Queries.FilterParser.ParseSort(sort, names));
                return (await store.QueryTrialsAsync("e", query)).Trials.Select(t => t.Number).ToArray();
            }

            Assert.Equal(new[] { 3, 2 }, await Numbers("params.epochs >= 30", "-params.epochs"));
            Assert.Equal(new[] { 2, 3 }, await Numbers("epochs <= 2", "-epochs"));
            Assert.Equal(new[] { 0, 1 }, await Numbers("epochs >= 3 and params.epochs <= 20", "params.epochs"));
            // The longest filter the parser takes, of parameters and fields, stays within what the store's SQL takes.
            var longest = string.Join(" or ", Enumerable.Range(0, Core.Queries.FilterParser.MaxComparisons).Select(i => i == 0 ? "params.epochs = 20" : i % 2 == 0 ? $"params.epochs = {i + 1000}" : $"number = {i + 1000}"));
            Assert.Equal(new[] { 1 }, await Numbers(longest, "number"));
            var groups = await store.GroupTrialsAsync("e", new Core.Queries.TrialQuery(null, []), "params.epochs");
            Assert.Equal(new object?[] { 30.0, 20.0, 40.0, 10.0 }.Order(), groups.Select(g => g.Value).Order());
        }
    }

    [Fact]
    public async Task Seeds_past_2_to_the_63_are_filtered_sorted_and_grouped_as_the_unsigned_numbers_they_are()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            // Kept in a signed 64-bit column: a seed from 2^63 on was taken for a negative number (seed < 0 matched it,
            // seed = its value matched nothing, and it sorted first).
            ulong[] seeds = [17_252_486_001_247_147_939UL, 5_649_780_081_855_342_326UL, ulong.MaxValue, 0, 9_223_372_036_854_775_808UL];
            await store.CreateStudyAsync(new NewStudy("sd", "h", "t", AnySweepJson, "grid", [.. seeds.Select((seed, i) => new NewTrial(i, "{}", seed))]));
            async Task<int[]> Numbers(string? where, string sort)
            {
                var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse(where, []), Core.Queries.FilterParser.ParseSort(sort, []));
                return (await store.QueryTrialsAsync("sd", query)).Trials.Select(t => t.Number).ToArray();
            }

            Assert.Equal(new[] { 0 }, await Numbers("seed = 17252486001247147939", "number"));
            Assert.Equal(new[] { 3 }, await Numbers("seed < 1", "number"));
            Assert.Equal(new[] { 0, 2, 4 }, await Numbers("seed >= 9223372036854775808", "number"));
            Assert.Equal(new[] { 3, 1, 4, 0, 2 }, await Numbers(null, "seed"));
            Assert.Equal(new[] { 2, 0, 4, 1, 3 }, await Numbers("seed != 12", "-seed"));
            Assert.Equal(seeds, (await store.GetTrialsAsync("sd")).OrderBy(t => t.Number).Select(t => t.Seed));
            var groups = await store.GroupTrialsAsync("sd", new Core.Queries.TrialQuery(null, []), "seed");
            Assert.Equal(seeds.Select(x => (double)x).Order(), groups.Select(g => Convert.ToDouble(g.Value, System.Globalization.CultureInfo.InvariantCulture)).Order());
            var ex = Assert.Throws<Core.Queries.QueryException>(() => Core.Queries.FilterParser.Parse("seed = 1.5", []));
            Assert.Contains("a seed is a whole number from 0 to 18446744073709551615", ex.Message);
        }
    }

    [Fact]
    public async Task Trials_are_queried_and_sorted_by_their_value_of_the_sweeps_metric()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            // A program's metric (a loss: lower is better) recorded by each trial's finish; trial 3 failed without one.
            var losses = new double?[] { 0.9, 0.3, 0.6, null };
            await store.CreateStudyAsync(new NewStudy("v", "h", "t", AnySweepJson, "grid", [.. Enumerable.Range(0, 4).Select(i => new NewTrial(i, "{}", 1))]));
            for (var i = 0; i < 4; i++)
            {
                var lease = (await store.ClaimAsync("v", "w", _lease))!;
                await store.FinishAsync(lease, new TrialFinish(losses[lease.Number] is null ? TrialState.Failed : TrialState.Completed, null, null, 1, null) { Value = losses[lease.Number] });
            }

            async Task<int[]> Numbers(string? where, string sort)
            {
                var query = new Core.Queries.TrialQuery(where is null ? null : Core.Queries.FilterParser.Parse(where, []), Core.Queries.FilterParser.ParseSort(sort, []));
                return (await store.QueryTrialsAsync("v", query)).Trials.Select(t => t.Number).ToArray();
            }

            Assert.Equal(new[] { 1, 2 }, await Numbers("value < 0.7", "value"));
            Assert.Equal(new[] { 0, 2, 1 }, await Numbers("value > 0", "-value"));
            Assert.Equal(0.3, (await store.GetTrialsAsync("v")).Single(t => t.Number == 1).Value);
        }
    }

    [Fact]
    public async Task Queries_filter_sort_and_page_trials_by_columns_and_parameters_without_injection()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            string[] models = ["fc", "fc", "softmax", "fc", "two_layer", "fc"];
            double[] dropouts = [0, 0.5, 0, 0.25, 0, 0.5];
            var trials = Enumerable.Range(0, 6).Select(i => new NewTrial(i,
                $$"""{"model":"{{models[i]}}","dropout":{{dropouts[i].ToString(System.Globalization.CultureInfo.InvariantCulture)}},"learning_rate":{{(i + 1) * 1e-4}},"hidden_size":{{100 * (1 + (i % 2))}}}""", 1)).ToList();
            await store.CreateStudyAsync(new NewStudy("q", "h", "t", AnySweepJson, "grid", trials));
            double[] vals = [0.40, 0.55, 0.30, 0.50, 0.45, 0.52];
            for (var i = 0; i < 5; i++)
            {
                var lease = (await store.ClaimAsync("q", "w", _lease))!;
                await store.FinishAsync(lease, new TrialFinish(i == 3 ? TrialState.Pruned : TrialState.Completed, vals[lease.Number], vals[lease.Number] + 0.1, 2, null));
            }

            IReadOnlyList<string> names = ["model", "dropout", "learning_rate", "hidden_size"];
            async Task<int[]> Numbers(string? where, string? sort = null, int offset = 0, int? limit = null)
            {
                var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse(where, names), Core.Queries.FilterParser.ParseSort(sort, names), offset, limit);
                return (await store.QueryTrialsAsync("q", query)).Trials.Select(t => t.Number).ToArray();
            }

            Assert.Equal(new[] { 1, 5, 3, 0 }, await Numbers("model = fc", "-dropout,number"));
            Assert.Equal(new[] { 1 }, await Numbers("dropout > 0 and state = completed", "-val_accuracy"));
            Assert.Equal(new[] { 1, 4, 0, 2 }, await Numbers("state = completed", "-val_accuracy"));
            Assert.Equal(new[] { 2, 4 }, await Numbers("model != 'fc' and not (hidden_size >= 200)"));
            Assert.Equal(new[] { 1, 3, 5 }, await Numbers("hidden_size >= 200 or learning_rate < 0.0001"));
            Assert.Equal(new[] { 5 }, await Numbers("state = pending"));
            Assert.Equal(new[] { 0, 2, 4 }, await Numbers("val_accuracy <= 0.45", "number"));
            Assert.Equal(new[] { 4, 0 }, await Numbers("state = completed", "-val_accuracy", offset: 1, limit: 2));
            var page = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("model = fc", names), [], 1, 2));
            Assert.Equal(4, page.Total);
            Assert.Equal(2, page.Trials.Count);
            // Ordered by a parameter (no index gives that order: one pass that also counts), and past the last page.
            var byDropout = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("model = fc", names), Core.Queries.FilterParser.ParseSort("-dropout,-number", names), 1, 2));
            Assert.Equal(4, byDropout.Total);
            Assert.Equal(new[] { 1, 3 }, byDropout.Trials.Select(t => t.Number).ToArray());
            var beyond = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("model = fc", names), Core.Queries.FilterParser.ParseSort("-dropout", names), 10, 2));
            Assert.Equal((4, 0), (beyond.Total, beyond.Trials.Count));
            var countOnly = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("model = fc", names), [], 0, 0));
            Assert.Equal((4, 0), (countOnly.Total, countOnly.Trials.Count));
            // Not counted when the caller says so, in either kind of order; the page is the same.
            var uncounted = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("state = completed", names), Core.Queries.FilterParser.ParseSort("-val_accuracy", names), 1, 2, CountMatches: false));
            Assert.Equal(-1, uncounted.Total);
            Assert.Equal(new[] { 4, 0 }, uncounted.Trials.Select(t => t.Number).ToArray());
            var uncountedByParameter = await store.QueryTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("model = fc", names), Core.Queries.FilterParser.ParseSort("-dropout,-number", names), 1, 2, CountMatches: false));
            Assert.Equal(-1, uncountedByParameter.Total);
            Assert.Equal(new[] { 1, 3 }, uncountedByParameter.Trials.Select(t => t.Number).ToArray());

            // Groups: counts, best and mean val accuracy per value, best groups first, in SQL.
            async Task<(object? Value, int Trials, int Completed, double? Best, double? Mean)[]> Groups(string field, string? where = null, int? limit = null) =>
                [.. (await store.GroupTrialsAsync("q", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse(where, names), [], 0, limit), field))
                    .Select(g => (g.Value, g.Trials, g.Completed, g.BestValAccuracy is { } b ? Math.Round(b, 6) : (double?)null, g.MeanValAccuracy is { } m ? Math.Round(m, 6) : (double?)null))];
            Assert.Equal(new (object?, int, int, double?, double?)[] { ("fc", 4, 2, 0.55, Math.Round(1.45 / 3, 6)), ("two_layer", 1, 1, 0.45, 0.45), ("softmax", 1, 1, 0.30, 0.30) }, await Groups("model"));
            Assert.Equal(new (object?, int, int, double?, double?)[] { (200.0, 1, 1, 0.55, 0.55), (100.0, 3, 3, 0.45, Math.Round(1.15 / 3, 6)) }, await Groups("hidden_size", "state = completed"));
            Assert.Equal(new object?[] { "completed", "pruned", "pending" }, (await Groups("state")).Select(g => g.Value).ToArray());
            Assert.Single(await Groups("model", limit: 1));

            // A value that looks like SQL is only ever a value.
            Assert.Empty(await Numbers("model = \"x'); DROP TABLE trials; --\""));
            Assert.Empty(await Numbers("model = \"fc' OR '1'='1\""));
            Assert.Equal(6, (await store.GetTrialsAsync("q")).Count);
        }
    }

    [Fact]
    public async Task Queries_read_parameters_past_the_last_slot_and_sort_numbers_before_strings()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            // 19 parameters: the first 16 ("mixed", x0..x14) get slot columns, x15..x17 are read from the JSON.
            string Params(int i, object mixed) => $"{{\"mixed\":{mixed}," + string.Join(",", Enumerable.Range(0, 16).Select(k => $"\"x{k}\":{k}")) +
                $",\"x16\":{i * 10},\"x17\":\"{(i % 2 == 0 ? "even" : "odd")}\"}}";
            object[] mixed = [3, "\"b\"", 1, "\"a\"", 2];
            await store.CreateStudyAsync(new NewStudy("wide", "h", "t", AnySweepJson, "grid", Enumerable.Range(0, 5).Select(i => new NewTrial(i, Params(i, mixed[i]), 1)).ToList()));
            IReadOnlyList<string> names = [.. Enumerable.Range(0, 18).Select(k => $"x{k}"), "mixed"];
            async Task<int[]> Numbers(string? where, string? sort = null)
            {
                var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse(where, names), Core.Queries.FilterParser.ParseSort(sort, names));
                return (await store.QueryTrialsAsync("wide", query)).Trials.Select(t => t.Number).ToArray();
            }

            Assert.Equal(new[] { 4, 3 }, await Numbers("x16 >= 30", "-x16"));
            Assert.Equal(new[] { 1, 3 }, await Numbers("x17 = odd and x15 = 15"));
            Assert.Equal(new[] { 2, 4, 0, 3, 1 }, await Numbers(null, "mixed"));
            Assert.Equal(new[] { 4, 2 }, await Numbers("mixed < 3", "-mixed"));
            Assert.Equal(new[] { 3 }, await Numbers("mixed = a"));
            Assert.Equal(new[] { 0, 1, 2, 3, 4 }, await Numbers("x14 = 14 and x15 = 15", "x15,x14"));
            var byText = await store.GroupTrialsAsync("wide", new Core.Queries.TrialQuery(null, []), "x17");
            Assert.Equal(new (object?, int)[] { ("even", 3), ("odd", 2) }, byText.Select(g => (g.Value, g.Trials)).OrderBy(g => (string)g.Value!).ToArray());
            var byMixed = await store.GroupTrialsAsync("wide", new Core.Queries.TrialQuery(null, []), "mixed");
            Assert.Equal(new object?[] { 1.0, 2.0, 3.0, "a", "b" }, byMixed.Select(g => g.Value).ToArray());
            var byNumberPastSlots = await store.GroupTrialsAsync("wide", new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("x16 > 0", names), []), "x16");
            Assert.Equal(new object?[] { 10.0, 20.0, 30.0, 40.0 }, byNumberPastSlots.Select(g => g.Value).ToArray());
        }
    }

    [Fact]
    public async Task A_sample_is_a_fixed_subset_of_about_the_fraction_asked_spread_over_the_numbers()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study("many", trials: 2000));
            var filter = Core.Queries.FilterParser.Parse("learning_rate >= 1000", ["learning_rate"]);
            var query = new Core.Queries.TrialQuery(filter, [new Core.Queries.SortKey("number", false)], 0, null, 0.1);
            var (sample, total) = await store.QueryTrialsAsync("many", query);
            Assert.Equal(sample.Count, total);
            Assert.InRange(sample.Count, 70, 130); // about 10% of the 1,000 matching trials
            Assert.All(sample, t => Assert.True(t.Number >= 1000));
            Assert.Equal(sample.Select(t => t.Number), (await store.QueryTrialsAsync("many", query)).Trials.Select(t => t.Number));
            // Spread over the whole range, not a block: every tenth of the numbers has some.
            Assert.Equal(10, sample.Select(t => (t.Number - 1000) / 100).Distinct().Count());
        }
    }

    [Fact]
    public async Task A_store_from_schema_1_is_migrated_and_its_studies_are_queried_from_the_slot_columns()
    {
        await using var db = await CreateDatabaseAsync();
        await (await db.OpenAsync(TimeProvider.System, schemaVersion: 1)).DisposeAsync();
        await db.SqlAsync("INSERT INTO studies (name, sweep_hash, sweep_text, method, trial_count, created_at, retries) VALUES ('old', 'h', 't', 'grid', 3, 0, 0)");
        await db.SqlAsync("""
            INSERT INTO trials (study, number, params, seed, state, val_accuracy) VALUES
            ('old', 0, '{"model":"fc","dropout":0.5}', 1, 'completed', 0.4),
            ('old', 1, '{"model":"fc","dropout":0.1}', 2, 'completed', 0.5),
            ('old', 2, '{"model":"softmax","dropout":0.3}', 3, 'pending', NULL)
            """);
        await using var store = await db.OpenAsync(TimeProvider.System);
        IReadOnlyList<string> names = ["model", "dropout"];
        var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("dropout > 0.2 and model = fc or dropout < 0.2", names), Core.Queries.FilterParser.ParseSort("-val_accuracy", names));
        Assert.Equal(new[] { 1, 0 }, (await store.QueryTrialsAsync("old", query)).Trials.Select(t => t.Number).ToArray());
        // The answer came from the slot columns, filled by the migration, and nothing stored was lost.
        Assert.Equal(3L, Convert.ToInt64(await db.SqlAsync("SELECT count(*) FROM trials WHERE pt0 IS NOT NULL AND pn1 IS NOT NULL")));
        Assert.Equal(3, (await store.GetTrialsAsync("old")).Count);
        Assert.Equal("""{"model":"softmax","dropout":0.3}""".Replace(" ", ""), (await store.GetTrialsAsync("old"))[2].ParametersJson.Replace(" ", ""));
    }

    [Fact]
    public async Task A_store_from_schema_3_is_migrated_to_schema_4_with_its_data_intact_and_membership_ready()
    {
        await using var db = await CreateDatabaseAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Lease lease;
        await using (var old = await db.OpenAsync(clock, schemaVersion: 3))
        {
            await old.CreateStudyAsync(Study(trials: 3));
            lease = (await old.ClaimAsync("s", "w1", _lease))!;
            await old.ReportEpochAsync(lease, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1, 2, 3], _lease);
        }

        await db.SqlAsync("INSERT INTO workers (id, host, pid, started_at, last_heartbeat, current_trial) VALUES ('w1', 'host-a', 42, 0, 0, NULL)");
        Assert.Equal(3L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));

        await using var store = await db.OpenAsync(clock, schemaVersion: 4);
        Assert.Equal(4L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));
        var trials = await store.GetTrialsAsync("s");
        Assert.Equal(3, trials.Count);
        var claimed = trials.Single(t => t.Id == lease.TrialId);
        Assert.Equal((TrialState.Running, "w1", 1L), (claimed.State, claimed.Owner, claimed.LeaseToken));
        Assert.Equal(0.25, (await store.GetEpochsAsync(lease.TrialId)).Single().ValAccuracy);
        Assert.Equal([1, 2, 3], (await store.GetCheckpointAsync(lease.TrialId))!.Value.Data);
        await store.RenewAsync(lease, _lease); // the lease still holds
        Assert.Equal(("w1", 0), (await store.GetWorkersAsync()).Select(w => (w.Id, w.Slots)).Single());
        await store.HeartbeatWorkerAsync("w1", "host-a", 42, lease.TrialId, 4);
        Assert.Equal(4, (await store.GetWorkersAsync()).Single().Slots);

        // The membership tables are there, empty.
        var membership = Assert.IsAssignableFrom<IMembershipStore>(store);
        Assert.Equal(("", 0), ((await membership.ReadMembersAsync("c", null)).VersionEtag, (await membership.ReadMembersAsync("c", null)).Members.Count));
        await membership.InitMembershipAsync("c");
        var empty = await membership.ReadMembersAsync("c", null);
        var row = new MemberRow("127.0.0.1:11111@1", MemberRow.ActiveStatus, "host-a", "silo", 0, clock.GetUtcNow(), clock.GetUtcNow(), null, null);
        Assert.True(await membership.InsertMemberAsync("c", row, 1, empty.VersionEtag));
        Assert.Equal(row.Address, (await membership.ReadMembersAsync("c", row.Address)).Members.Single().Address);
    }

    [Fact]
    public async Task A_store_from_schema_4_is_migrated_to_schema_5_with_its_data_intact_and_each_sweep_resolved_once()
    {
        await using var db = await CreateDatabaseAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        // A file this build's parser refuses (a method it does not know): its study has no definition to store.
        const string Refused = "name: refused\nmethod: annealing\nmodel: softmax\nparameters:\n  learning_rate: {value: 0.001}\n";
        Lease lease;
        await using (var old = await db.OpenAsync(clock, schemaVersion: 4))
        {
            var created = await old.CreateStudyAsync(new NewStudy("stored", "h1", SweepText, "ignored by a schema 4 store", "random",
                [new NewTrial(0, """{"learning_rate":0.01}""", 5), new NewTrial(1, """{"learning_rate":0.02}""", 6)]));
            Assert.Null(created.SweepJson);
            await old.CreateStudyAsync(new NewStudy("refused", "h2", Refused, "ignored", "random", [new NewTrial(0, "{}", 1)]));
            lease = (await old.ClaimAsync("stored", "w1", _lease))!;
            await old.ReportEpochAsync(lease, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1, 2, 3], _lease);
        }

        Assert.Equal(4L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));
        await using var store = await db.OpenAsync(clock, schemaVersion: 5);
        Assert.Equal(5L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));

        var stored = (await store.GetStudyAsync("stored"))!;
        Assert.Equal(SweepJson.Serialize(SweepParser.Parse(SweepText, "stored")), stored.SweepJson);
        Assert.Equal(("h1", SweepText, "random", 2), (stored.SweepHash, stored.SweepText, stored.Method, stored.TrialCount));
        Assert.Equal(["model", "epochs", "learning_rate", "lr_decay", "update_rule", "beta2", "hidden_size"], SweepJson.Of(stored).ParameterNames);

        // The refused file keeps its study (and its text); reading its definition says what is wrong with the file.
        var refused = (await store.GetStudyAsync("refused"))!;
        Assert.Null(refused.SweepJson);
        Assert.Equal(Refused, refused.SweepText);
        Assert.Contains("annealing", Assert.Throws<SweepFileException>(() => SweepJson.Of(refused)).Message);

        // Trials, epochs, checkpoints and the lease are as they were.
        Assert.Equal(2, (await store.GetTrialsAsync("stored")).Count);
        Assert.Equal((TrialState.Running, "w1", 1L), ((await store.GetTrialAsync(lease.TrialId))!.State, (await store.GetTrialAsync(lease.TrialId))!.Owner, (await store.GetTrialAsync(lease.TrialId))!.LeaseToken));
        Assert.Equal(new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), (await store.GetEpochsAsync(lease.TrialId)).Single());
        Assert.Equal([1, 2, 3], (await store.GetCheckpointAsync(lease.TrialId))!.Value.Data);
        await store.RenewAsync(lease, _lease);

        // A study created now stores its definition with it.
        var json = SweepJson.Serialize(SweepParser.Parse(SweepText.Replace("name: stored", "name: later", StringComparison.Ordinal)));
        Assert.Equal(json, (await store.CreateStudyAsync(new NewStudy("later", "h3", "name: later", json, "random", [new NewTrial(0, "{}", 1)]))).SweepJson);
    }

    [Fact]
    public async Task An_epochs_extra_metrics_and_its_unreported_built_in_metrics_are_read_back_as_reported()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 2));
            var program = (await store.ClaimAsync("s", "w1", _lease))!;
            var builtIn = (await store.ClaimAsync("s", "w2", _lease))!;
            // A program reported a loss and its own metrics, but no accuracies, rate or time (NaN: not reported).
            var reported = new EpochRecord(1, 0.75, double.NaN, double.NaN, double.NaN, double.NaN,
                new Dictionary<string, double> { ["val_loss"] = 0.5, ["accuracy"] = 0.625, ["grad_norm"] = double.NaN, ["weird name: x"] = -1e-300 });
            await store.ReportEpochAsync(program, reported, null, _lease);
            await store.ReportEpochAsync(builtIn, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), null, _lease);

            var back = (await store.GetEpochsAsync(program.TrialId)).Single();
            Assert.Equal(reported, back);
            Assert.True(double.IsNaN(back.ValAccuracy) && double.IsNaN(back.Seconds));
            Assert.Equal(0.5, back.Metrics!["val_loss"]);
            Assert.True(double.IsNaN(back.Metrics["grad_norm"]));
            Assert.Null((await store.GetEpochsAsync(builtIn.TrialId)).Single().Metrics);

            // The sweep's metric by one rule: a built-in field when reported, else the extra metric of that name.
            Assert.Equal(0.5, back.ValueOf("val_loss"));
            Assert.Equal(0.75, back.ValueOf("loss"));
            Assert.Null(back.ValueOf("val_accuracy"));
            Assert.Null(back.ValueOf("grad_norm"));

            var rung = await store.GetEpochOfTrialsAsync("s", 1);
            Assert.Equal([(0, reported), (1, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1))], rung);

            // Reporting the epoch again replaces its metrics, the extra ones included.
            await store.ReportEpochAsync(program, reported with { Metrics = new Dictionary<string, double> { ["val_loss"] = 0.25 } }, null, _lease);
            Assert.Equal(new Dictionary<string, double> { ["val_loss"] = 0.25 }, (await store.GetEpochsAsync(program.TrialId)).Single().Metrics);

            // The median rule reads the completed trials' epochs with their own metrics: the sweep's metric is a built-in
            // field of one (val_loss unreported: not in its metrics) and a program's own metric of the other.
            await store.FinishAsync(program, new TrialFinish(TrialState.Completed, null, null, 1, null, 0.25));
            await store.FinishAsync(builtIn, new TrialFinish(TrialState.Completed, 0.25, 0.3, 1, null, 0.25));
            var completed = await store.GetCompletedEpochsAtAsync("s", 1);
            Assert.Equal([0.25], completed.Select(e => e.ValueOf("val_accuracy")).OfType<double>());
            Assert.Equal([0.25], completed.Select(e => e.ValueOf("val_loss")).OfType<double>());
        }
    }

    [Fact]
    public async Task A_pause_and_a_finish_record_the_trials_value_and_every_reader_returns_it()
    {
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            await store.CreateStudyAsync(Study(trials: 2));
            var lease = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.PauseAsync(lease, new TrialFinish(TrialState.Paused, null, null, 3, "paused at the rung of epoch 3", 0.625));
            Assert.Equal(0.625, (await store.GetTrialAsync(lease.TrialId))!.Value);
            Assert.True(await store.PromoteAsync(lease.TrialId, "promoted"));
            var again = (await store.ClaimAsync("s", "w1", _lease))!;
            Assert.Equal(lease.TrialId, again.TrialId);
            await store.FinishAsync(again, new TrialFinish(TrialState.Completed, null, null, 9, null, 0.125));
            var other = (await store.ClaimAsync("s", "w1", _lease))!;
            await store.FinishAsync(other, new TrialFinish(TrialState.Failed, null, null, 0, "exit code 1"));

            Assert.Equal([0.125, null], (await store.GetTrialsAsync("s")).Select(t => t.Value));
            Assert.Equal(0.125, (await store.GetTrialAsync(again.TrialId))!.Value);
            var page = await store.QueryTrialsAsync("s", new Core.Queries.TrialQuery(null, [], 0, 10));
            Assert.Equal([0.125, null], page.Trials.Select(t => t.Value));
            Assert.Equal(2, page.Total);
            var sorted = await store.QueryTrialsAsync("s", new Core.Queries.TrialQuery(null, Core.Queries.FilterParser.ParseSort("-val_accuracy", []), 0, 10));
            Assert.Equal([0.125, null], sorted.Trials.OrderBy(t => t.Number).Select(t => t.Value));
        }
    }

    [Fact]
    public async Task A_store_from_schema_5_is_migrated_to_schema_6_with_every_row_kept_and_each_trials_value_filled_in()
    {
        await using var db = await CreateDatabaseAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var lossText = SweepText.Replace("name: stored", "name: by-loss\nmetric: {name: train_loss, goal: minimize}", StringComparison.Ordinal);
        var byAccuracy = SweepJson.Serialize(SweepParser.Parse(SweepText, "stored"));
        var byLoss = SweepJson.Serialize(SweepParser.Parse(lossText, "by-loss"));
        Lease running;
        long finishedByLoss, finishedByAccuracy;
        await using (var old = await db.OpenAsync(clock, schemaVersion: 5))
        {
            await old.CreateStudyAsync(new NewStudy("stored", "h1", SweepText, byAccuracy, "random", [new NewTrial(0, "{}", 1), new NewTrial(1, "{}", 2), new NewTrial(2, "{}", 3)]));
            await old.CreateStudyAsync(new NewStudy("by-loss", "h2", lossText, byLoss, "random", [new NewTrial(0, "{}", 1)]));
            var a = (await old.ClaimAsync("stored", "w1", _lease))!;
            await old.ReportEpochAsync(a, new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), [1], _lease);
            await old.FinishAsync(a, new TrialFinish(TrialState.Completed, 0.25, 0.3, 1, null));
            finishedByAccuracy = a.TrialId;
            running = (await old.ClaimAsync("stored", "w1", _lease))!;
            await old.ReportEpochAsync(running, new EpochRecord(1, 1.5, 0.4, 0.35, 1e-3, 1), [2], _lease);
            var b = (await old.ClaimAsync("by-loss", "w1", _lease))!;
            await old.ReportEpochAsync(b, new EpochRecord(1, 2.5, 0.1, 0.1, 1e-3, 1), null, _lease);
            await old.ReportEpochAsync(b, new EpochRecord(2, 1.25, 0.2, 0.2, 1e-3, 1), null, _lease);
            await old.FinishAsync(b, new TrialFinish(TrialState.Completed, 0.2, 0.2, 2, null));
            finishedByLoss = b.TrialId;
        }

        await using var store = await db.OpenAsync(clock, schemaVersion: 6);
        Assert.Equal(6L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));

        // Every epoch and checkpoint is there as it was; values are filled in for the finished trials only.
        Assert.Equal(new EpochRecord(1, 2.0, 0.3, 0.25, 1e-3, 1), (await store.GetEpochsAsync(finishedByAccuracy)).Single());
        Assert.Equal([new EpochRecord(1, 2.5, 0.1, 0.1, 1e-3, 1), new EpochRecord(2, 1.25, 0.2, 0.2, 1e-3, 1)], await store.GetEpochsAsync(finishedByLoss));
        Assert.Equal([2], (await store.GetCheckpointAsync(running.TrialId))!.Value.Data);
        Assert.Equal((4L, 4L), (Convert.ToInt64(await db.SqlAsync("SELECT count(*) FROM trials")), Convert.ToInt64(await db.SqlAsync("SELECT count(*) FROM epochs"))));
        Assert.Equal(0.25, (await store.GetTrialAsync(finishedByAccuracy))!.Value);
        Assert.Equal(1.25, (await store.GetTrialAsync(finishedByLoss))!.Value);
        Assert.Equal([0.25, null, null], (await store.GetTrialsAsync("stored")).Select(t => t.Value));

        // The running trial's lease still holds, and it goes on with the new columns.
        await store.ReportEpochAsync(running, new EpochRecord(2, 1.0, 0.5, double.NaN, 1e-3, 1, new Dictionary<string, double> { ["val_loss"] = 0.9 }), null, _lease);
        await store.FinishAsync(running, new TrialFinish(TrialState.Completed, 0.35, 0.5, 2, null, 0.35));
        Assert.Equal(0.9, (await store.GetEpochsAsync(running.TrialId))[1].Metrics!["val_loss"]);
        Assert.Equal(0.35, (await store.GetTrialAsync(running.TrialId))!.Value);
    }

    [Fact]
    public async Task A_store_from_schema_6_is_migrated_to_schema_7_with_its_workers_kept_and_none_marked_stopped()
    {
        await using var db = await CreateDatabaseAsync();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using (var old = await db.OpenAsync(clock, schemaVersion: 6))
        {
            await old.HeartbeatWorkerAsync("w1", "host-a", 42, null, 2);
            await old.HeartbeatWorkerAsync("w2", "host-b", 43, null, 4);
            Assert.All(await old.GetWorkersAsync(), w => Assert.Null(w.StoppedAt));
        }

        await using var store = await db.OpenAsync(clock);
        Assert.Equal(7L, Convert.ToInt64(await db.SqlAsync("SELECT max(version) FROM schema_version")));
        Assert.Equal([("w1", 2, (DateTimeOffset?)null), ("w2", 4, null)], (await store.GetWorkersAsync()).Select(w => (w.Id, w.Slots, w.StoppedAt)).OrderBy(w => w.Id));
        await store.MarkWorkerStoppedAsync("w2");
        Assert.Equal(["w2"], (await store.GetWorkersAsync()).Where(w => w.StoppedAt is not null).Select(w => w.Id));
    }

    [Fact]
    public async Task Concurrent_claimers_on_separate_connections_never_share_a_trial()
    {
        await using var db = await CreateDatabaseAsync();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch.AddYears(56));
        await using (var setup = await db.OpenAsync(clock))
        {
            await setup.CreateStudyAsync(Study(trials: 2000));
        }

        var stores = new List<ITrialStore>();
        for (var i = 0; i < 8; i++)
        {
            stores.Add(await db.OpenAsync(clock));
        }

        var claimed = new System.Collections.Concurrent.ConcurrentBag<(long Trial, string Owner)>();
        await Task.WhenAll(stores.Select((s, i) => Task.Run(async () =>
        {
            while (await s.ClaimAsync("s", $"w{i}", _lease) is { } lease)
            {
                claimed.Add((lease.TrialId, lease.Owner));
                await Task.Delay(1); // a little work, so that every claimer gets turns at the write lock
            }
        })));

        Assert.Equal(2000, claimed.Count);
        Assert.Equal(2000, claimed.Select(c => c.Trial).Distinct().Count());
        Assert.True(claimed.Select(c => c.Owner).Distinct().Count() > 1);
        var trials = await stores[0].GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Running, 1, 1L), (t.State, t.Attempts, t.LeaseToken)));
        foreach (var s in stores)
        {
            await s.DisposeAsync();
        }
    }
    [Fact]
    public async Task Concurrent_writes_through_one_store_each_keep_their_own_fence()
    {
        // Many slots of one silo write at once through one store (which may send them together, as one batch): the
        // current owners' epochs and finishes are stored, each exactly once, and the stale owners' writes, mixed in
        // between, are each rejected on their own without taking the others down with them.
        var (db, store, _) = await OpenAsync();
        await using (db)
        await using (store)
        {
            const int trials = 60;
            await store.CreateStudyAsync(Study(trials: trials));
            var stale = new List<Lease>();
            for (var i = 0; i < trials; i += 3)
            {
                // Every third trial: claimed, handed back, and claimed again below; the first lease is stale then.
                var first = (await store.ClaimAsync("s", "old", _lease))!;
                await store.ReleaseAsync(first, "test");
                stale.Add(first);
            }

            var leases = new System.Collections.Concurrent.ConcurrentBag<Lease>();
            await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
            {
                while (await store.ClaimAsync("s", $"w{w}", _lease) is { } lease)
                {
                    leases.Add(lease);
                    for (var e = 1; e <= 2; e++)
                    {
                        await store.ReportEpochAsync(lease, new EpochRecord(e, 2.0 / e, 0.1 * e, 0.05 * e + lease.Number * 1e-4, 1e-3, 0.01), [(byte)lease.Number, (byte)e], _lease);
                    }

                    await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.1 + lease.Number * 1e-4, 0.2, 2, null));
                }
            })).Concat(stale.Select(old => Task.Run(async () =>
            {
                await Assert.ThrowsAsync<LeaseLostException>(() => store.ReportEpochAsync(old, new EpochRecord(1, 9, 0.9, 0.9, 1, 1), [9], _lease));
                await Assert.ThrowsAsync<LeaseLostException>(() => store.FinishAsync(old, new TrialFinish(TrialState.Completed, 0.99, 0.99, 1, null)));
            }))));

            Assert.Equal(trials, leases.Select(l => l.TrialId).Distinct().Count());
            var stored = await store.GetTrialsAsync("s");
            Assert.All(stored, t =>
            {
                Assert.Equal(TrialState.Completed, t.State);
                Assert.Equal(0.1 + t.Number * 1e-4, t.ValAccuracy!.Value, 12);
                Assert.Equal(2, t.EpochsDone);
            });
            foreach (var t in stored)
            {
                var epochs = await store.GetEpochsAsync(t.Id);
                Assert.Equal([1, 2], epochs.Select(e => e.Epoch));
                Assert.Equal(0.1 + t.Number * 1e-4, epochs[1].ValAccuracy, 12);
                Assert.Equal([(byte)t.Number, 2], (await store.GetCheckpointAsync(t.Id))!.Value.Data);
            }
        }
    }
}
