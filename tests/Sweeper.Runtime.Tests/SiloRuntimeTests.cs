using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// The runtime's logic in one process: real Orleans silos (built exactly as <c>sweeper run</c> and <c>sweeper worker</c>
/// build them, with the SQLite store as their membership table) and a runner that trains nothing but counts what it is
/// asked to do. Failures of whole processes are the drills' business (<see cref="ReliabilityTests"/>).
/// </summary>
public sealed class SiloRuntimeTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sweeper-silo-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<IHost> _silos = [];
    private readonly List<ITrialStore> _stores = [];
    private readonly Evaluations _evaluations = new();

    private string StorePath => Path.Combine(_dir, "store.db");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var silo in _silos)
        {
            try
            {
                await silo.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
            }

            silo.Dispose();
        }

        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    private static string Sweep(int trials, int epochs, string name = "s") => $$"""
        name: {{name}}
        method: grid
        model: softmax
        parameters:
          learning_rate: {distribution: int_uniform, min: 1, max: {{trials}}}
          epochs: {value: {{epochs}}}
        budget: {max_trials: {{trials}}}
        """;

    private async Task<ITrialStore> OpenStoreAsync()
    {
        var store = await TrialStores.OpenAsync("sqlite:" + StorePath);
        _stores.Add(store);
        return store;
    }

    private async Task<(IHost Silo, CountingRunner Runner)> StartSiloAsync(int slots, TimeSpan epoch, Func<Lease, double>? value = null, int gpuSlots = 0, Func<Lease, double>? loss = null,
        Func<ITrialStore, ITrialStore>? wrap = null, TimeSpan? lease = null, Action<IServiceCollection>? services = null, int siloPort = 0, Serilog.ILogger? logger = null)
    {
        var runner = new CountingRunner(epoch, _evaluations, value, loss);
        var settings = new SiloSettings
        {
            Lease = lease ?? new SiloSettings().Lease,
            Slots = slots,
            GpuSlots = gpuSlots,
            SiloPort = siloPort,
            Poll = TimeSpan.FromMilliseconds(20),
            IdleRecheck = TimeSpan.FromMilliseconds(100),
            Tick = TimeSpan.FromMilliseconds(200),
            Address = System.Net.IPAddress.Loopback,
        };
        var store = await OpenStoreAsync();
        var silo = SweeperSilo.Build(wrap?.Invoke(store) ?? store, runner, settings, logger ?? Logger.None, services: services);
        _silos.Add(silo);
        await silo.StartAsync();
        return (silo, runner);
    }

    private static IStudyGrain Study(IHost silo, string name = "s") => silo.Services.GetRequiredService<IGrainFactory>().GetGrain<IStudyGrain>(name);

    private static async Task<StudyResult> ResultAsync(ITrialStore store, string study = "s")
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            if (await store.GetResultAsync(study) is { } result)
            {
                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, "the study did not close");
            await Task.Delay(20);
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_silo_counts_busy_slots_not_running_trials_while_a_slots_last_outcome_is_still_being_written()
    {
        var store = await OpenStoreAsync();
        const string Silo = "127.0.0.1:11111@100";
        var membership = (IMembershipStore)store;
        await membership.InitMembershipAsync("sweeper");
        var empty = await membership.ReadMembersAsync("sweeper", null);
        Assert.True(await membership.InsertMemberAsync("sweeper", new MemberRow(Silo, MemberRow.ActiveStatus, "host", "silo", 0, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, null, null), 1, empty.VersionEtag));
        await store.HeartbeatWorkerAsync(Silo, "host", 1, null, 2);
        await store.CreateStudyAsync(new NewStudy("s", "h", "name: s", "{}", "grid", [.. Enumerable.Range(0, 3).Select(i => new NewTrial(i, "{}", (ulong)i))]));

        // Slot 0 took its next trial before its last one's outcome was written; slot 1 trains one trial.
        await store.ClaimAsync("s", Silo + "/slot0", TimeSpan.FromSeconds(30));
        await store.ClaimAsync("s", Silo + "/slot0", TimeSpan.FromSeconds(30));
        var silo = (await ClusterView.SilosAsync(store)).Single();
        Assert.Equal(("alive", 2, 1, 2), (silo.State, silo.Slots, silo.Busy, silo.Trials.Count));

        await store.ClaimAsync("s", Silo + "/slot1", TimeSpan.FromSeconds(30));
        silo = (await ClusterView.SilosAsync(store)).Single();
        Assert.Equal((2, 3), (silo.Busy, silo.Trials.Count));
    }

    [Fact]
    public async Task A_silo_whose_membership_heartbeat_lags_after_a_store_outage_is_alive_by_its_own_heartbeat()
    {
        var store = await OpenStoreAsync();
        var membership = (IMembershipStore)store;
        await membership.InitMembershipAsync("sweeper");
        var stale = DateTimeOffset.UtcNow - TimeSpan.FromSeconds(45);
        const string Lagging = "127.0.0.1:11111@100", Silent = "127.0.0.1:11112@100";
        var version = 0;
        foreach (var address in (string[])[Lagging, Silent])
        {
            var snapshot = await membership.ReadMembersAsync("sweeper", null);
            Assert.True(await membership.InsertMemberAsync("sweeper", new MemberRow(address, MemberRow.ActiveStatus, "host", "silo", 0, stale, stale, null, null), ++version, snapshot.VersionEtag));
        }

        await store.HeartbeatWorkerAsync(Lagging, "host", 1, null, 2); // its own heartbeat got through; Orleans' not yet
        var silos = (await ClusterView.SilosAsync(store)).ToDictionary(s => s.Address);
        Assert.Equal(("alive", "unresponsive"), (silos[Lagging].State, silos[Silent].State));
        Assert.True(DateTimeOffset.UtcNow - silos[Lagging].LastAlive < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_silo_the_cluster_declared_dead_gets_no_trial_when_its_slot_asks()
    {
        // Seen in a probe: a silo frozen past the cluster's patience (SIGSTOP) asked for work the moment it ran again,
        // before it learnt that it was dead and stopped; its claim took trial 1's last allowed attempt, and the trial was
        // failed when that lease ran out. Here the dead silo is one that stopped; its slot's ask comes after.
        var (a, _) = await StartSiloAsync(slots: 0, TimeSpan.FromMilliseconds(5));
        var (b, _) = await StartSiloAsync(slots: 0, TimeSpan.FromMilliseconds(5));
        var addressOfB = b.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress;
        await Study(a).OpenAsync(Sweep(trials: 2, epochs: 1), "s.yaml");
        await b.StopAsync();
        var view = a.Services.GetRequiredService<IClusterMembershipService>();
        await WaitAsync(() => Task.FromResult(view.CurrentSnapshot.GetSiloStatus(addressOfB) == SiloStatus.Dead), "silo b dead in a's view");

        Assert.Null(await Study(a).NextTrialAsync(SiloSettings.OwnerPrefix(addressOfB) + "slot0"));
        var mine = await Study(a).NextTrialAsync(SiloSettings.OwnerPrefix(a.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress) + "slot0");
        Assert.Equal(0, mine!.Number);
        var store = await OpenStoreAsync();
        Assert.Equal(1, (await store.CountStatesAsync("s")).Pending);
    }

    [Fact]
    public async Task The_grain_of_an_earlier_claim_that_finds_its_lease_lost_does_not_stop_the_newer_run_of_the_trial()
    {
        // Seen in a probe: a slot handed trial 0 back and claimed it again; the grain of the earlier claim, still renewing,
        // then found its lease lost and abandoned the trial, which stopped the slot's newer run of it. That run was handed
        // back and claimed again, its own grain then stopped the next run, and so on: 129 times in 45 s.
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(300));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 6), "s.yaml");
        await WaitAsync(async () => (await store.GetTrialsAsync("s")).Single().EpochsDone >= 1, "trial 0's first epoch");
        var running = (await store.GetTrialsAsync("s")).Single();
        var earlier = new Lease(running.Id, "s", 0, "{}", 0, running.Owner!, Token: running.LeaseToken - 1, Attempt: 1);

        a.Services.GetRequiredService<TrainingSlots>().Abandon(earlier);

        await ResultAsync(store);
        var trial = (await store.GetTrialsAsync("s")).Single();
        Assert.Equal((TrialState.Completed, running.LeaseToken, 1), (trial.State, trial.LeaseToken, trial.Attempts));
        Assert.Equal([0], runner.Finished);
    }

    [Fact]
    public async Task A_trial_grain_taken_up_late_renews_its_lease_a_third_of_a_lease_after_the_claim_not_after_it_began()
    {
        // Seen in a probe with 2 s leases: a trial claimed while another silo was frozen was taken up by its grain late,
        // and its lease ran out before the first renewal (due a third of a lease after the grain began); on its last
        // allowed attempt the trial was failed. The lease's clock starts at the claim, so must the renewals'.
        var lease = TimeSpan.FromSeconds(6);
        var (a, _) = await StartSiloAsync(slots: 0, TimeSpan.FromMilliseconds(5), lease: lease);
        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 2), "s.yaml");
        var store = await OpenStoreAsync();
        var slot = SiloSettings.OwnerPrefix(a.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress) + "slot0";
        var asked = DateTimeOffset.UtcNow;
        var claim = (await store.ClaimAsync("s", slot, lease))!;
        var expires = (await store.GetTrialAsync(claim.TrialId))!.LeaseExpiresAt!.Value;

        await Task.Delay(TimeSpan.FromSeconds(3)); // the grain takes the lease up half a lease late
        var grain = a.Services.GetRequiredService<IGrainFactory>().GetGrain<ITrialGrain>(ITrialGrain.Key("s", claim.Number, claim.Token));
        Assert.NotNull(await grain.BeginAsync(claim, asked));

        // Renewed at once (a third of a lease after the claim is past), not 2 s from now: by then a third of the lease
        // is all that is left, and a grain that stalls a little loses it.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(1);
        while ((await store.GetTrialAsync(claim.TrialId))!.LeaseExpiresAt <= expires)
        {
            Assert.True(DateTime.UtcNow < deadline, "the lease was not renewed within 1 s of the grain taking it up");
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData("begin")]
    [InlineData("hold")]
    public async Task A_trial_grain_left_on_another_silo_without_a_lease_goes_so_that_the_claiming_slot_trains_the_trial(string call)
    {
        // Seen in a drill: after a store outage a trial's grain was activated on the silo that had lost its lease, by a
        // call forwarded while it deactivated, and stayed there holding nothing. The slot that claimed the trial on another
        // silo then found its grain elsewhere, handed the trial back and claimed it again, 15,648 times in 48 s, until the
        // first silo's own slot took the trial. Such an activation must go at once.
        var (a, _) = await StartSiloAsync(slots: 0, TimeSpan.FromMilliseconds(5));
        var (b, runnerB) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(5));
        var slotOfB = SiloSettings.OwnerPrefix(b.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress) + "slot0";
        // The grain of the trial's first claim (fencing token 1), activated on a by a call about a lease of b's slot.
        var grain = a.Services.GetRequiredService<IGrainFactory>().GetGrain<ITrialGrain>(ITrialGrain.Key("s", 0, 1));
        var foreign = new Lease(1, "s", 0, "{}", 0, slotOfB, Token: 1, Attempt: 1, HasCheckpoint: false);
        if (call == "begin")
        {
            Assert.Null(await grain.BeginAsync(foreign, DateTimeOffset.UtcNow)); // activated on a, where it cannot own b's lease
        }
        else
        {
            Assert.False(await grain.HoldAsync(foreign));
        }

        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 2), "s.yaml");
        var store = await OpenStoreAsync();
        var result = await ResultAsync(store);
        var trial = (await store.GetTrialsAsync("s")).Single();
        Assert.Equal((TrialState.Completed, 0), (trial.State, result.BestTrialNumber));
        Assert.Equal([0], runnerB.Finished);
        Assert.InRange(trial.LeaseToken, 1, 3); // claimed once, or a few times while the activation went; not thousands
    }

    [Fact]
    public async Task A_store_outage_longer_than_a_lease_costs_a_live_silo_none_of_its_trials()
    {
        // Seen in a drill (PostgreSQL stopped for 40 s, leases of 30 s): when the store came back, the study requeued every
        // running trial at its next tick, before their silos could renew, and each trial was trained again from its last
        // checkpoint elsewhere. Here the trial store is out of reach for over two leases while trial 0 trains (the membership
        // table stays up: the silo is alive throughout).
        var outage = new OutageStore.Switch();
        var lines = new LogLines();
        var (a, runner) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(300), lease: TimeSpan.FromSeconds(3), wrap: inner => OutageStore.Create(inner, outage),
            logger: new Serilog.LoggerConfiguration().WriteTo.Sink(lines).CreateLogger());
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 8), "s.yaml");
        await WaitAsync(async () => (await store.GetTrialsAsync("s")).Single().EpochsDone >= 1, "trial 0's first epoch");
        outage.Down = true;
        await Task.Delay(TimeSpan.FromSeconds(7));
        outage.Down = false;
        await ResultAsync(store);

        var trial = Assert.Single(await store.GetTrialsAsync("s"));
        Assert.Equal((TrialState.Completed, 1, 1L, 8), (trial.State, trial.Attempts, trial.LeaseToken, trial.EpochsDone));
        Assert.Equal([(0, 0)], runner.Starts); // trained on where it was, never again from a checkpoint
        Assert.DoesNotContain(await store.GetEventsAsync("s"), e => e.Kind is "trial_released" or "trial_requeued");

        // Said once, though the idle slot asked for work every 20 ms and the study's tick ran every 200 ms throughout.
        Assert.Equal(1, lines.Count("Study s: store unavailable"));
        Assert.Equal(1, lines.Count("Study s: the store is reachable again"));
        Assert.InRange(lines.Count("Housekeeping skipped"), 0, 1);
    }

    /// <summary>The rendered log lines of a silo, for tests that count what it said.</summary>
    private sealed class LogLines : Serilog.Core.ILogEventSink
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public void Emit(Serilog.Events.LogEvent logEvent) => _lines.Enqueue(logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture).Replace("\"", "", StringComparison.Ordinal));

        public int Count(string start) => _lines.Count(l => l.StartsWith(start, StringComparison.Ordinal));
    }

    /// <summary>A store whose trial methods fail as unreachable while <see cref="Switch.Down"/> (its membership methods never do).</summary>
    public class OutageStore : System.Reflection.DispatchProxy
    {
        private object _inner = null!;
        private Switch _switch = null!;

        public sealed class Switch
        {
            public volatile bool Down;
        }

        public static ITrialStore Create(ITrialStore inner, Switch down)
        {
            var store = Create<HoldingStore.IStore, OutageStore>();
            ((OutageStore)(object)store)._inner = inner;
            ((OutageStore)(object)store)._switch = down;
            return store;
        }

        protected override object? Invoke(System.Reflection.MethodInfo? method, object?[]? args)
        {
            if (_switch.Down && method!.DeclaringType == typeof(ITrialStore) && method.ReturnType.IsAssignableTo(typeof(Task)))
            {
                var down = new StoreUnavailableException("the test's store is down", new IOException("connection refused"));
                return method.ReturnType.IsGenericType
                    ? typeof(Task).GetMethod(nameof(Task.FromException), 1, [typeof(Exception)])!.MakeGenericMethod(method.ReturnType.GetGenericArguments()[0]).Invoke(null, [down])
                    : Task.FromException(down);
            }

            try
            {
                return method!.Invoke(_inner, args);
            }
            catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        }
    }

    [Fact]
    public async Task A_silo_that_stopped_cleanly_stays_stopped_in_status_when_a_new_silo_takes_its_port()
    {
        // Orleans' row of a silo that stopped cleanly looks like that of a silo killed and then replaced on its port (the
        // successor marks it Dead); the silo's own record of its clean stop tells them apart.
        var port = SiloSettings.FreePort();
        var (first, _) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(10), siloPort: port);
        var store = await OpenStoreAsync();
        await WaitAsync(async () => (await ClusterView.SilosAsync(store)).Any(s => s.State == "alive" && s.Slots == 1), "the first silo to be alive with its slot");
        await first.StopAsync();
        var (second, _) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(10), siloPort: port);
        await WaitAsync(async () => (await ClusterView.SilosAsync(store)).Count(s => s.State == "alive") == 1, "the second silo to be alive");

        var silos = await ClusterView.SilosAsync(store);
        Assert.Equal(2, silos.Count);
        Assert.All(silos, s => Assert.EndsWith(":" + port.ToString(System.Globalization.CultureInfo.InvariantCulture), s.Address[..s.Address.LastIndexOf('@')], StringComparison.Ordinal));
        Assert.Equal(["alive", "stopped"], silos.Select(s => s.State));
        Assert.Equal(1, silos[1].Slots);

        // The same silo killed (no record of a clean stop) and replaced on its port is dead.
        var rows = (await ((IMembershipStore)store).ReadMembersAsync("sweeper", null)).Members;
        Assert.Equal("dead", ClusterView.StateOf(rows.Single(r => r.Address == silos[1].Address), rows, DateTimeOffset.UtcNow, stoppedCleanly: false));
        await second.StopAsync();
    }

    [Fact]
    public async Task Two_silos_train_every_trial_once_never_beyond_their_slots_and_test_the_best_trial_once()
    {
        var (a, runnerA) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(15));
        var (_, runnerB) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(15));
        // On a loaded machine the first silo's two slots could otherwise finish every trial before the second silo's slot
        // asks for one: the first silo trains only once the second has started a trial.
        runnerA.StartsAfter = runnerB.FirstStarted.Task;
        await Study(a).OpenAsync(Sweep(trials: 30, epochs: 3), "s.yaml");
        var store = await OpenStoreAsync();
        var result = await ResultAsync(store);

        var trials = await store.GetTrialsAsync("s");
        Assert.Equal(30, trials.Count);
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, 1, 1L, 3), (t.State, t.Attempts, t.LeaseToken, t.EpochsDone)));
        Assert.InRange(runnerA.MaxConcurrent, 1, 2);
        Assert.Equal(1, runnerB.MaxConcurrent);
        Assert.True(runnerA.Trained.Count > 0 && runnerB.Trained.Count > 0, "both silos should have trained trials");
        Assert.Equal(30, runnerA.Trained.Count + runnerB.Trained.Count);

        // The best by validation accuracy (the runner gives trial n the value n/1000), evaluated once on the test split.
        Assert.Equal(29, result.BestTrialNumber);
        Assert.Equal(0.5, result.TestAccuracy);
        Assert.Equal(1, _evaluations.Count);
        var events = await store.GetEventsAsync("s");
        Assert.Equal(30, events.Count(e => e.Kind == "trial_completed"));
        Assert.Single(events, e => e.Kind == "study_closed");
    }

    [Fact]
    public async Task A_silos_training_slots_run_under_the_batch_scheduling_policy_so_their_wake_ups_never_preempt_the_silo()
    {
        await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(15), gpuSlots: 1);

        // Linux names a thread by its first 15 characters ("training-slot-0"); its policy is field 41 of its stat line,
        // counted after the name's closing parenthesis (field 2). SCHED_BATCH is 3, the default SCHED_OTHER 0.
        // Other tests' silos run in this process too (their slots are batch threads as well), and threads come and go
        // while the list is read: one that ended meanwhile is passed over.
        var policies = new List<(string Name, int Policy)>();
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                if (name.StartsWith("training-slot-", StringComparison.Ordinal))
                {
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    policies.Add((name, int.Parse(fields[41 - 3], System.Globalization.CultureInfo.InvariantCulture)));
                }
            }
            catch (IOException)
            {
            }
        }

        Assert.Subset(policies.Select(p => p.Name).ToHashSet(), new HashSet<string> { "training-slot-0", "training-slot-1", "training-slot-2" });
        Assert.All(policies, p => Assert.Equal(3, p.Policy));
        Assert.Equal(0, SchedulingPolicyOfANewThread());
    }

    /// <summary>The policy of a thread that did not ask for one (the silo's own threads keep it).</summary>
    private static int SchedulingPolicyOfANewThread()
    {
        var policy = -1;
        var thread = new Thread(() =>
        {
            var stat = File.ReadAllText("/proc/thread-self/stat");
            policy = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[41 - 3], System.Globalization.CultureInfo.InvariantCulture);
        });
        thread.Start();
        thread.Join();
        return policy;
    }

    [Fact]
    public async Task Opening_one_study_from_two_silos_at_once_creates_it_once_and_a_second_file_of_that_name_is_refused()
    {
        var (a, _) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(5));
        var (b, _) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(5));
        var opened = await Task.WhenAll(Study(a).OpenAsync(Sweep(8, 2), "a.yaml"), Study(b).OpenAsync(Sweep(8, 2), "b.yaml"));
        Assert.Equal(opened[0].Get("s").SweepHash, opened[1].Get("s").SweepHash);
        var conflict = await Study(b).OpenAsync(Sweep(9, 2), "other.yaml");
        Assert.Null(conflict.Study);
        Assert.Contains("already exists with a different sweep file", conflict.Conflict);

        var store = await OpenStoreAsync();
        await ResultAsync(store);
        Assert.Single(await store.ListStudiesAsync());
        Assert.Single(await store.GetEventsAsync("s"), e => e.Kind == "study_created");
        Assert.Equal(1, _evaluations.Count);
    }

    [Fact]
    public async Task A_stopping_silo_hands_its_trials_back_and_another_resumes_them_from_their_checkpoints()
    {
        var (a, runnerA) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(50));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 3, epochs: 40), "s.yaml");
        await WaitAsync(async () => (await store.GetTrialsAsync("s")).Count(t => t.State == TrialState.Running && t.EpochsDone >= 3) == 2, "two trials past epoch 3");

        await a.StopAsync();
        var handedBack = await store.GetTrialsAsync("s");
        Assert.DoesNotContain(handedBack, t => t.State == TrialState.Running);
        var events = await store.GetEventsAsync("s");
        Assert.Equal(2, events.Count(e => e.Kind == "trial_released"));

        var (_, runnerB) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(5));
        await ResultAsync(store);
        var trials = await store.GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, 40), (t.State, t.EpochsDone)));
        foreach (var t in handedBack.Where(t => t.EpochsDone > 0))
        {
            // Resumed from the epoch its checkpoint was taken after, on the other silo; a hand-back costs no attempt.
            Assert.Contains((t.Number, t.EpochsDone), runnerB.Starts);
            Assert.Equal(1, trials.Single(x => x.Number == t.Number).Attempts);
        }

        Assert.All(runnerA.Starts, s => Assert.Equal(0, s.FromEpoch));
    }

    [Fact]
    public async Task A_silo_whose_lease_was_taken_over_is_fenced_and_the_trial_completes_once_on_the_new_owner()
    {
        var (a, runnerA) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(40));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 60), "s.yaml");
        TrialRecord? victim = null;
        await WaitAsync(async () => (victim = (await store.GetTrialsAsync("s")).SingleOrDefault(t => t.State == TrialState.Running && t.EpochsDone >= 2)) is not null, "the trial to train");

        // As if silo A had been declared dead while it still runs (cut off, then back): its lease is cut short and the
        // trial requeued. A's next report is rejected by fencing and A abandons the trial; a fresh claim (by A's freed
        // slot or by silo B, whichever asks first) resumes it from its checkpoint.
        Assert.Equal(1, await store.ExpireLeasesOfOwnerAsync(victim!.Owner!));
        Assert.Equal(1, await store.RequeueExpiredAsync("s"));
        var (_, runnerB) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(5));
        await ResultAsync(store);

        var trial = (await store.GetTrialsAsync("s")).Single();
        Assert.Equal((TrialState.Completed, 2, 60), (trial.State, trial.Attempts, trial.EpochsDone));
        Assert.NotEqual(victim.Owner + "@" + victim.LeaseToken, trial.Owner + "@" + trial.LeaseToken);
        Assert.Single(await store.GetEventsAsync("s"), e => e.Kind == "trial_completed");
        Assert.Equal(1, runnerA.Abandoned);
        Assert.Equal(1, runnerA.Finished.Count + runnerB.Finished.Count);
        Assert.Equal(2, runnerA.Starts.Count + runnerB.Starts.Count);
        Assert.Contains(runnerA.Starts.Concat(runnerB.Starts), s => s.FromEpoch >= victim.EpochsDone);
        Assert.Equal(Enumerable.Range(1, 60), (await store.GetEpochsAsync(trial.Id)).Select(e => e.Epoch));
    }

    [Fact]
    public async Task Bayesian_search_proposes_each_trial_when_a_slot_frees_up_from_the_history_so_far()
    {
        const string sweep = """
            name: s
            method: bayes
            model: softmax
            metric: {name: val_accuracy, goal: maximize}
            parameters:
              reg: {distribution: uniform, min: 0.0, max: 1.0}
              epochs: {value: 1}
            bayes: {startup_trials: 4}
            run_cap: 9
            seed: 5
            """;
        // The validation accuracy peaks at reg = 0.3; past reg 0.8 a trial diverges in its first epoch.
        static double Reg(Lease lease) => RegOf(lease.ParametersJson);
        static double RegOf(string json) => Convert.ToDouble(ParamJson.Deserialize(json)["reg"], System.Globalization.CultureInfo.InvariantCulture);
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.Zero, lease => 1 - Math.Abs(Reg(lease) - 0.3));
        runner.DivergesIf = lease => Reg(lease) > 0.8;
        var store = await OpenStoreAsync();
        Assert.Equal(9, (await Study(a).OpenAsync(sweep, "s.yaml")).Get("s").TrialCount);
        var result = await ResultAsync(store);

        var trials = await store.GetTrialsAsync("s");
        Assert.Equal(Enumerable.Range(0, 9), trials.Select(t => t.Number));
        Assert.All(trials, t => Assert.Equal((RegOf(t.ParametersJson) > 0.8 ? TrialState.Diverged : TrialState.Completed, 1), (t.State, t.Attempts)));
        Assert.Contains(trials, t => t.State == TrialState.Diverged);
        Assert.Equal(trials.Where(t => t.State == TrialState.Completed).MaxBy(t => t.ValAccuracy)!.Number, result.BestTrialNumber);

        // With one slot every trial was proposed after the one before had finished: each is exactly what TPE proposes
        // from the trials before it and the study's seed (a pure function of the history, so a resumed coordinator goes on alike).
        var definition = SweepParser.Parse(sweep, "s.yaml");
        var tpe = new Core.Search.TpeSampler(SearchSpace.TpeOptionsOf(definition));
        var space = Core.Search.ParameterSpace.Of(definition);
        for (var n = 0; n < trials.Count; n++)
        {
            // A diverged trial is a bad result (pruned where it stopped, without a value), not one TPE ignores.
            var history = trials.Take(n).Select(t => t.State == TrialState.Diverged
                ? new Core.Search.Observation(t.Number, ParamJson.Deserialize(t.ParametersJson), Core.Search.TrialOutcome.Pruned, null, t.EpochsDone)
                : new Core.Search.Observation(t.Number, ParamJson.Deserialize(t.ParametersJson), Core.Search.TrialOutcome.Complete, t.ValAccuracy)).ToList();
            var expected = tpe.Propose(space, history, n, definition.Seed, Core.Search.Goal.Maximize);
            Assert.Equal(ParamJson.Serialize(expected), ParamJson.Serialize(ParamJson.Deserialize(trials[n].ParametersJson)));
            Assert.Equal(SearchSpace.TrialSeed(definition.Seed, n), trials[n].Seed);
        }
    }

    [Fact]
    public async Task Successive_halving_pauses_trials_at_rungs_resumes_the_promoted_ones_from_their_checkpoints_and_prunes_the_rest()
    {
        const string sweep = """
            name: s
            method: grid
            model: softmax
            parameters:
              learning_rate: {distribution: int_uniform, min: 1, max: 9}
              epochs: {value: 9}
            early_terminate: {type: hyperband, min_iter: 1, eta: 3}
            """;
        // Trial n's value is ((5 n) mod 9) / 10 at every epoch: 0, .5, .1, .6, .2, .7, .3, .8, .4, so trial 7 is the best.
        static double Value(Lease lease) => (lease.Number * 5 % 9) / 10.0;
        var (a, runnerA) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(5), Value);
        var (_, runnerB) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(5), Value);
        await Study(a).OpenAsync(sweep, "s.yaml");
        var store = await OpenStoreAsync();
        var result = await ResultAsync(store);

        // Rungs at epochs 1 and 3, complete at 9. The best trial is the top of every rung, so it reaches the end: the
        // study's result is it. At the end the top third of the first rung (7, 5, 3) has been promoted, and the top
        // third of the second; the rest stopped at their rung, pruned.
        var trials = await store.GetTrialsAsync("s");
        Assert.Equal(9, trials.Count);
        Assert.Equal(7, result.BestTrialNumber);
        Assert.All(trials, t => Assert.Contains(t.EpochsDone, new[] { 1, 3, 9 }));
        Assert.All(trials, t => Assert.Equal(t.EpochsDone == 9 ? TrialState.Completed : TrialState.Pruned, t.State));
        Assert.Subset(trials.Where(t => t.EpochsDone >= 3).Select(t => t.Number).ToHashSet(), new HashSet<int> { 7, 5, 3 });
        Assert.Equal(9, trials.Single(t => t.Number == 7).EpochsDone);
        var epochs = trials.Sum(t => t.EpochsDone);
        Assert.InRange(epochs, 9 + (3 * 2) + 6, 81 - 1);

        // A promoted trial resumes where it paused: its epochs are 1..n once each, and it restarted from a rung's checkpoint.
        foreach (var t in trials)
        {
            Assert.Equal(Enumerable.Range(1, t.EpochsDone), (await store.GetEpochsAsync(t.Id)).Select(e => e.Epoch));
        }

        var starts = runnerA.Starts.Concat(runnerB.Starts).ToList();
        Assert.All(starts.Where(s => s.FromEpoch > 0), s => Assert.Contains(s.FromEpoch, new[] { 1, 3 }));
        // A trial that is its rung's next promotion as it reaches it trains on without pausing; every other promotion is a
        // paused trial that a slot resumes from its checkpoint.
        var events = await store.GetEventsAsync("s");
        Assert.Equal(events.Count(e => e.Kind == "trial_promoted"), starts.Count(s => s.FromEpoch > 0));
        Assert.Equal(events.Count(e => e.Kind == "trial_paused"), events.Count(e => e.Kind == "trial_promoted") + trials.Count(t => t.State == TrialState.Pruned));
        Assert.Equal(1, _evaluations.Count);
    }

    [Fact]
    public async Task A_device_cuda_trial_is_trained_only_in_a_GPU_slot_and_a_CPU_trial_only_in_a_CPU_slot()
    {
        var (cpu, cpuRunner) = await StartSiloAsync(slots: 2, TimeSpan.FromMilliseconds(5));
        var (_, gpuRunner) = await StartSiloAsync(slots: 0, TimeSpan.FromMilliseconds(5), gpuSlots: 1);
        await Study(cpu, "c").OpenAsync(Sweep(trials: 6, epochs: 2, name: "c"), "c.yaml");
        await Study(cpu, "g").OpenAsync(Sweep(trials: 6, epochs: 2, name: "g") + "\nengine: torch\ndevice: cuda\n", "g.yaml");
        var store = await OpenStoreAsync();
        await ResultAsync(store, "c");
        await ResultAsync(store, "g");

        Assert.Equal(6, gpuRunner.Trained.Count);
        Assert.Equal(6, cpuRunner.Trained.Count);
        Assert.Equal(1, gpuRunner.MaxConcurrent);
        var gpuOwners = (await store.GetEventsAsync("g")).Where(e => e.Kind == "trial_completed").Select(e => e.Message).ToList();
        var cpuOwners = (await store.GetEventsAsync("c")).Where(e => e.Kind == "trial_completed").Select(e => e.Message).ToList();
        Assert.All(gpuOwners, m => Assert.Contains("/slot0", m)); // the GPU silo's only slot
        Assert.Equal(6, cpuOwners.Count);
    }

    [Fact]
    public async Task The_median_rule_judges_the_sweeps_metric_with_its_goal()
    {
        // Loss and accuracy both grow with the trial number: by train_loss (minimize) later trials are worse.
        const string sweep = """
            name: s
            method: grid
            model: softmax
            metric: {name: train_loss, goal: minimize}
            parameters:
              learning_rate: {distribution: int_uniform, min: 1, max: 8}
              epochs: {value: 3}
            early_terminate: {type: median, warmup_epochs: 1, min_trials: 3}
            """;
        var (a, _) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(2), lease => lease.Number / 100.0, loss: lease => lease.Number / 100.0);
        await Study(a).OpenAsync(sweep, "s.yaml");
        var store = await OpenStoreAsync();
        var result = await ResultAsync(store);

        var trials = await store.GetTrialsAsync("s");
        Assert.Equal([TrialState.Completed, TrialState.Completed, TrialState.Completed], trials.Take(3).Select(t => t.State));
        Assert.All(trials.Skip(3), t => Assert.Equal((TrialState.Pruned, 2), (t.State, t.EpochsDone)));
        Assert.Equal(0, result.BestTrialNumber); // the lowest loss
        Assert.Contains("lowest train_loss", result.SelectionRule);
    }

    [Fact]
    public async Task A_slot_trains_on_while_its_last_trials_outcomes_are_stored_up_to_a_window_and_each_is_stored_once()
    {
        // The store holds back the outcome (last epoch and final state, one write) of trials 0-5 until released.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.Zero,
            wrap: inner => HoldingStore.Create(inner, nameof(ITrialStore.FinishAfterEpochAsync), lease => lease.Number <= 5 ? release.Task : null));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 8, epochs: 1), "s.yaml");

        // The one slot went on past trial 0 while its outcome was on its way: four outcomes in flight at the most, so it
        // trained five trials and waits with the fifth's outcome in hand.
        await WaitAsync(() => Task.FromResult(runner.Finished.Count == 5), "the slot to train five trials");
        await Task.Delay(300);
        Assert.Equal(5, runner.Trained.Count);
        Assert.Equal(1, runner.MaxConcurrent);
        var held = await store.GetTrialsAsync("s");
        Assert.All(held.Take(5), t => Assert.Equal(TrialState.Running, t.State));
        Assert.Null(await store.GetResultAsync("s"));

        release.SetResult();
        var result = await ResultAsync(store);
        var trials = await store.GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, 1, 1L, 1), (t.State, t.Attempts, t.LeaseToken, t.EpochsDone)));
        Assert.Equal(8, runner.Trained.Count);
        Assert.Equal(7, result.BestTrialNumber);
        Assert.Equal(1, _evaluations.Count);
        var events = await store.GetEventsAsync("s");
        Assert.Equal(8, events.Count(e => e.Kind == "trial_completed"));
    }

    [Fact]
    public async Task A_trial_whose_grain_fails_to_answer_goes_back_to_pending_at_once_rather_than_when_its_lease_runs_out()
    {
        // Trial 2's grain fails its first epoch report (as when the silo holding its directory entry is cut off). The
        // leases last ten minutes: the study closes within the test's two only if the slot hands the trial back itself.
        var failed = 0;
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.Zero, lease: TimeSpan.FromMinutes(10),
            wrap: inner => HoldingStore.Create(inner, nameof(ITrialStore.ReportEpochAsync),
                lease => lease.Number == 2 && Interlocked.Exchange(ref failed, 1) == 0 ? Task.FromException(new InvalidOperationException("its silo went away")) : null));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 4, epochs: 2), "s.yaml");
        var result = await ResultAsync(store);

        Assert.Equal(1, failed);
        var trials = await store.GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, 2), (t.State, t.EpochsDone)));
        Assert.Equal(2L, trials.Single(t => t.Number == 2).LeaseToken); // claimed again, not a second attempt at training
        Assert.Equal(1, trials.Single(t => t.Number == 2).Attempts);
        Assert.Equal(3, result.BestTrialNumber);
        var events = await store.GetEventsAsync("s");
        Assert.Contains(events, e => e.Kind == "trial_released" && e.TrialId == trials.Single(t => t.Number == 2).Id && e.Message.Contains("did not answer", StringComparison.Ordinal));
        Assert.Equal(4, events.Count(e => e.Kind == "trial_completed"));
    }

    [Theory]
    [InlineData(1)] // the only epoch goes out with the outcome, which the slot stores behind its back
    [InlineData(2)] // the first epoch's report waits for the grain
    public async Task A_fresh_trial_whose_grain_fails_to_take_up_the_lease_is_handed_back_and_trained_again_not_recorded_from_the_slot_that_went_on(int epochs)
    {
        // A fresh trial starts training while its grain takes up the lease. Trial 2's grain fails that call once (as
        // when the silo holding its directory entry is cut off): nothing the slot trained is stored through it, the
        // trial goes back to pending at once (the leases last ten minutes) and is trained again from the start.
        var failed = 0;
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.Zero, lease: TimeSpan.FromMinutes(10),
            services: s => s.AddSingleton<IIncomingGrainCallFilter>(new FailingCall(nameof(ITrialGrain.BeginAsync), ITrialGrain.Key("s", 2, 1), () => Interlocked.Exchange(ref failed, 1) == 0)));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 4, epochs: epochs), "s.yaml");
        var result = await ResultAsync(store);

        Assert.Equal(1, failed);
        var trials = await store.GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, epochs), (t.State, t.EpochsDone)));
        var two = trials.Single(t => t.Number == 2);
        Assert.Equal((2L, 1), (two.LeaseToken, two.Attempts)); // claimed again, not counted as a failed attempt
        Assert.Equal(2, runner.Trained.Count(n => n == 2));
        Assert.Equal(3, result.BestTrialNumber);
        var events = await store.GetEventsAsync("s");
        Assert.Contains(events, e => e.Kind == "trial_released" && e.TrialId == two.Id && e.Message.Contains("did not answer (its silo went away)", StringComparison.Ordinal));
        Assert.Equal(4, events.Count(e => e.Kind == "trial_completed"));
        Assert.Equal(Enumerable.Range(1, epochs), (await store.GetEpochsAsync(two.Id)).Select(e => e.Epoch)); // each stored once
    }

    /// <summary>Fails calls of <paramref name="method"/> on the grain keyed <paramref name="key"/> while <paramref name="fail"/> says so.</summary>
    private sealed class FailingCall(string method, string key, Func<bool> fail) : IIncomingGrainCallFilter
    {
        public Task Invoke(IIncomingGrainCallContext context) =>
            context.InterfaceMethod?.Name == method && context.TargetId.Key.ToString() == key && fail()
                ? Task.FromException(new InvalidOperationException("its silo went away"))
                : context.Invoke();
    }

    [Fact]
    public async Task A_trial_grain_activated_afresh_mid_trial_takes_up_its_slots_lease_and_the_trial_trains_on_where_it_was()
    {
        // Orleans deactivates the grains whose directory entry lived on a silo that died (seen in the cut-off drill: the
        // trial stayed running, dropped by its slot, until its lease ran out). Here trial 1's grain is deactivated after
        // its first epoch. The leases last ten minutes: the study closes within the test's two only if nothing waits
        // for one to run out.
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.FromMilliseconds(250), lease: TimeSpan.FromMinutes(10));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 3, epochs: 4), "s.yaml");
        await WaitAsync(async () => await store.GetTrialAsync((await store.GetTrialsAsync("s")).Single(t => t.Number == 1).Id) is { EpochsDone: >= 1 }, "trial 1's first epoch");
        var grain = a.Services.GetRequiredService<IGrainFactory>().GetGrain<ITrialGrain>(ITrialGrain.Key("s", 1, 1));
        await grain.AsReference<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        var result = await ResultAsync(store);

        var trials = await store.GetTrialsAsync("s");
        Assert.All(trials, t => Assert.Equal((TrialState.Completed, 1, 1L, 4), (t.State, t.Attempts, t.LeaseToken, t.EpochsDone)));
        Assert.Equal([(1, 0)], runner.Starts.Where(s => s.Number == 1)); // trained on where it was, not again
        Assert.Equal(2, result.BestTrialNumber);
        var events = await store.GetEventsAsync("s");
        Assert.DoesNotContain(events, e => e.Kind is "trial_released" or "trial_requeued");
    }

    [Fact]
    public async Task A_trial_grain_deactivated_mid_epoch_is_called_back_by_its_slot_so_an_epoch_longer_than_the_lease_does_not_lose_it()
    {
        // Trial 0's grain is deactivated right after its training starts; its only epoch takes longer than a lease. The
        // slot's keep-alive (every third of a lease) activates the grain again, which renews the lease from then on. Without
        // it nothing would renew the lease before the epoch's report, and the study's tick would requeue the trial.
        var (a, runner) = await StartSiloAsync(slots: 1, TimeSpan.FromSeconds(3), lease: TimeSpan.FromSeconds(1.2));
        var store = await OpenStoreAsync();
        await Study(a).OpenAsync(Sweep(trials: 1, epochs: 1), "s.yaml");
        await WaitAsync(() => Task.FromResult(runner.Starts.Any(s => s.Number == 0)), "trial 0 to start training");
        var grain = a.Services.GetRequiredService<IGrainFactory>().GetGrain<ITrialGrain>(ITrialGrain.Key("s", 0, 1));
        await grain.AsReference<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        await ResultAsync(store);

        var trial = Assert.Single(await store.GetTrialsAsync("s"));
        Assert.Equal((TrialState.Completed, 1, 1L, 1), (trial.State, trial.Attempts, trial.LeaseToken, trial.EpochsDone));
        Assert.Equal([(0, 0)], runner.Starts);
        Assert.DoesNotContain(await store.GetEventsAsync("s"), e => e.Kind is "trial_released" or "trial_requeued");
    }

    /// <summary>How many test evaluations all silos of a test ran.</summary>
    private sealed class Evaluations
    {
        private int _count;

        public int Count => _count;

        public void Add() => Interlocked.Increment(ref _count);
    }

    /// <summary>
    /// Trains nothing: sleeps per epoch, reports validation accuracy number/1000, checkpoints the epoch, and records what
    /// it was asked to do (trials, where each started, the most at once, trials abandoned by cancellation).
    /// </summary>
    private sealed class CountingRunner(TimeSpan epoch, Evaluations evaluations, Func<Lease, double>? valueOf = null, Func<Lease, double>? lossOf = null) : ITrialRunner
    {
        private int _running;
        private int _max;
        private int _abandoned;

        public ConcurrentBag<int> Trained { get; } = [];

        public ConcurrentBag<int> Finished { get; } = [];

        public ConcurrentBag<(int Number, int FromEpoch)> Starts { get; } = [];

        public int MaxConcurrent => Volatile.Read(ref _max);

        public int Abandoned => Volatile.Read(ref _abandoned);

        /// <summary>Trials for which this is true diverge in their first epoch (nothing reported).</summary>
        public Func<Lease, bool>? DivergesIf { get; set; }

        /// <summary>Completed when this runner starts its first trial.</summary>
        public TaskCompletionSource FirstStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>When set, every trial waits for it (up to a minute) before it trains.</summary>
        public Task? StartsAfter { get; set; }

        public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null)
        {
            var now = Interlocked.Increment(ref _running);
            int seen;
            while ((seen = Volatile.Read(ref _max)) < now && Interlocked.CompareExchange(ref _max, now, seen) != seen)
            {
            }

            try
            {
                FirstStarted.TrySetResult();
                StartsAfter?.Wait(TimeSpan.FromMinutes(1), cancellationToken);
                Trained.Add(lease.Number);
                if (DivergesIf?.Invoke(lease) == true)
                {
                    return new TrialFinish(TrialState.Diverged, null, null, 0, "loss is NaN");
                }

                var epochs = Convert.ToInt32(ParamJson.Deserialize(lease.ParametersJson)["epochs"], System.Globalization.CultureInfo.InvariantCulture);
                var from = checkpoint is null ? 0 : BitConverter.ToInt32(checkpoint);
                Starts.Add((lease.Number, from));
                var value = valueOf?.Invoke(lease) ?? lease.Number / 1000.0;
                for (var e = from + 1; e <= epochs; e++)
                {
                    if (cancellationToken.WaitHandle.WaitOne(epoch))
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                    }

                    var done = e;
                    // Like the built-in engines, it says which epoch is the last (it returns right after it).
                    if (!onEpoch(new EpochRecord(e, lossOf?.Invoke(lease) ?? 1.0, value, value, 1e-3, epoch.TotalSeconds), () => BitConverter.GetBytes(done), last: e == epochs))
                    {
                        return new TrialFinish(TrialState.Pruned, value, value, e, "stopped");
                    }
                }

                Finished.Add(lease.Number);
                return new TrialFinish(TrialState.Completed, value, value, epochs, null);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _abandoned); // fenced or stopped: the slot cancels the trial
                throw;
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }

        public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint)
        {
            evaluations.Add();
            return (0.5, 100);
        }
    }

    /// <summary>
    /// A store whose calls of one method wait, for the trials chosen, until a task completes (and fail if it fails);
    /// everything else goes straight through.
    /// </summary>
    public class HoldingStore : System.Reflection.DispatchProxy
    {
        private object _inner = null!;
        private string _method = "";
        private Func<Lease, Task?> _holdUntil = _ => null;

        public static ITrialStore Create(ITrialStore inner, string method, Func<Lease, Task?> holdUntil)
        {
            var store = Create<IStore, HoldingStore>();
            var holding = (HoldingStore)(object)store;
            (holding._inner, holding._method, holding._holdUntil) = (inner, method, holdUntil);
            return store;
        }

        /// <summary>What a silo needs of its store: trials and Orleans' membership.</summary>
        public interface IStore : ITrialStore, IMembershipStore;

        protected override object? Invoke(System.Reflection.MethodInfo? method, object?[]? args)
        {
            object? Call()
            {
                try
                {
                    return method!.Invoke(_inner, args);
                }
                catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                    throw;
                }
            }

            if (method!.Name == _method && args?.OfType<Lease>().FirstOrDefault() is { } lease && _holdUntil(lease) is { } hold)
            {
                // A hold that fails is the call's failure: the call is not made.
                return hold.ContinueWith(held => held.IsFaulted ? held : (Task)Call()!, TaskScheduler.Default).Unwrap();
            }

            return Call();
        }
    }
}
