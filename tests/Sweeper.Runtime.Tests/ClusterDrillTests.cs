using Sweeper.Core.Trials;
using Xunit.Abstractions;
using Sweeper.Storage;
using Sweeper.Storage.Tests;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// Cluster drills: silos on separate hosts (network namespaces) and a coordinator silo on the host side, one
/// PostgreSQL holding trials and Orleans' membership, under failures; each drill ends with every trial final exactly
/// once and the same results as an undisturbed run. Leases are set far longer than a drill may take, so every takeover
/// in time is Orleans' failure detection at work.
/// </summary>
public class ClusterDrillTests(ITestOutputHelper output)
{
    private static readonly Lazy<PostgresServer> _server = new(() => PostgresServer.StartForNetwork("10.77.0.0/16"));

    private static string Sweep(int trials, int retries) => $$"""
        name: drill
        method: grid
        model: two_layer
        data:
          train_size: 8000
          val_size: 500
        parameters:
          hidden_size: {values: [40, 60, 80, 100]}
          learning_rate: {values: [{{string.Join(", ", Enumerable.Range(0, trials / 4).Select(i => (1e-3 * (1 + i) / 2).ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}}]}
          reg: {value: 0.01}
          epochs: {value: 12}
          batch_size: {value: 100}
        budget:
          max_trials: {{trials}}
          retries: {{retries}}
        early_terminate:
          type: none
        seed: 17
        """;

    private static string Store(string db, string host) =>
        new Npgsql.NpgsqlConnectionStringBuilder(db) { Host = host, Timeout = 2, CommandTimeout = 5, Pooling = true }.ConnectionString;

    private static async Task<Dictionary<int, (double? Val, string Epochs)>> OutcomesAsync(ITrialStore store)
    {
        var result = new Dictionary<int, (double?, string)>();
        foreach (var t in await store.GetTrialsAsync("drill"))
        {
            var epochs = await store.GetEpochsAsync(t.Id);
            result[t.Number] = (t.ValAccuracy, string.Join(";", epochs.Select(e => $"{e.Epoch}:{e.Loss:R}:{e.TrainAccuracy:R}:{e.ValAccuracy:R}")));
        }

        return result;
    }

    private static async Task AssertSameAsUndisturbedAsync(Harness h, string sweep, ITrialStore store)
    {
        var baselineDb = _server.Value.CreateDatabase();
        var baseline = h.Run(TimeSpan.FromMinutes(4), "run", sweep, "--store", Store(baselineDb, "127.0.0.1"), "--slots", "2");
        Assert.True(baseline.Code == 0, baseline.Stderr);
        await using var reference = await TrialStores.OpenAsync(Store(baselineDb, "127.0.0.1"));

        var trials = await store.GetTrialsAsync("drill");
        Assert.All(trials, t => Assert.Equal(TrialState.Completed, t.State));
        var events = await store.GetEventsAsync("drill");
        foreach (var t in trials)
        {
            Assert.Single(events, e => e.Kind == "trial_completed" && e.TrialId == t.Id);
        }

        Assert.Equal(await OutcomesAsync(reference), await OutcomesAsync(store));
        var expected = (await reference.GetResultAsync("drill"))!;
        var actual = (await store.GetResultAsync("drill"))!;
        Assert.Equal((expected.BestTrialNumber, expected.ValAccuracy, expected.TestAccuracy), (actual.BestTrialNumber, actual.ValAccuracy, actual.TestAccuracy));
    }

    private static string SiloOf(string owner) => owner[..owner.LastIndexOf('/')];

    private static RunningSweeper StartCoordinator(Harness h, string sweep, string db) =>
        h.Start("coordinator", sweep, "--store", Store(db, "127.0.0.1"), "--address", NetnsCluster.HostAddress, "--silo-port", "0", "--lease-seconds", "300");

    private static RunningSweeper StartWorker(Harness h, NetnsCluster cluster, int host, string db) =>
        h.StartIn(cluster.Namespace(host), "worker", "--store", Store(db, NetnsCluster.Gateway(host)), "--study", "drill", "--exit-when-done",
            "--slots", "1", "--silo-port", "0", "--lease-seconds", "300", "--data", Harness.CifarDir);

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_silo_cut_off_mid_trial_is_declared_dead_its_trial_resumes_elsewhere_and_it_restarts_and_rejoins()
    {
        using var h = new Harness();
        using var cluster = new NetnsCluster(2);
        var sweep = h.Write("drill.yaml", Sweep(trials: 16, retries: 3));
        var db = _server.Value.CreateDatabase();
        await using var store = await TrialStores.OpenAsync(Store(db, "127.0.0.1"));
        using var coordinator = StartCoordinator(h, sweep, db);
        await WaitAsync(async () => await store.GetStudyAsync("drill") is not null, TimeSpan.FromMinutes(1), "the study");
        var workers = Enumerable.Range(1, 2).Select(i => StartWorker(h, cluster, i, db)).ToList();
        try
        {
            // Cut host 1 while it is in the middle of a trial.
            TrialRecord? victim = null;
            string? cutSilo = null;
            await WaitAsync(async () =>
            {
                cutSilo = (await store.GetWorkersAsync()).Where(w => w.Pid == workers[0].Process.Id).Select(w => w.Id).LastOrDefault();
                victim = (await store.GetTrialsAsync("drill")).FirstOrDefault(t => t.State == TrialState.Running && SiloOf(t.Owner!) == cutSilo && t.EpochsDone is >= 2 and <= 8);
                return victim is not null;
            }, TimeSpan.FromMinutes(2), "host 1 to be mid-trial");
            cluster.Cut(1);
            var cutAt = DateTime.UtcNow;

            // The cluster declares it dead and another silo resumes the trial from its checkpoint (the lease is 300 s).
            await WaitAsync(async () => (await store.GetTrialAsync(victim!.Id)) is { LeaseToken: >= 2, State: TrialState.Running or TrialState.Completed } t && SiloOf(t.Owner!) != cutSilo,
                TimeSpan.FromMinutes(1), "the takeover");
            var takeover = DateTime.UtcNow - cutAt;
            output.WriteLine($"cut off mid-trial -> trial {victim!.Number} trains again on another silo after {takeover.TotalSeconds:F2} s");
            cluster.Restore(1);

            // Back on the network, the cut silo learns it was declared dead and stops; its supervisor (here: the test)
            // starts a new silo on that host, which joins the cluster and trains.
            var cutWorker = workers[0].Wait(TimeSpan.FromMinutes(1));
            Assert.True(cutWorker.Code == SiloDeathHandler.ExitCode, $"exit code {cutWorker.Code}: {cutWorker.Stderr}");
            Assert.Contains("declared dead by the cluster", cutWorker.Stderr);
            Assert.DoesNotContain("   at ", cutWorker.Stderr); // a clear line, no stack trace
            workers.Add(StartWorker(h, cluster, 1, db));

            // The supervisor's part, as in production: a silo that stopped on its own (declared dead while starved of CPU
            // by a loaded machine, exit 75) is started again on its host.
            var rejoinedPids = new List<int> { workers[2].Process.Id };
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
            while (!coordinator.Process.HasExited && DateTime.UtcNow < deadline)
            {
                foreach (var (w, host) in new[] { (1, 2), (2, 1) }.Where(x => workers[x.Item1].Process.HasExited && workers[x.Item1].Process.ExitCode == SiloDeathHandler.ExitCode))
                {
                    output.WriteLine($"silo on host {host} had exited ({SiloDeathHandler.ExitCode}); restarted");
                    workers.Add(workers[w]);
                    workers[w] = StartWorker(h, cluster, host, db);
                    if (host == 1)
                    {
                        rejoinedPids.Add(workers[w].Process.Id);
                    }
                }

                await Task.Delay(500);
            }

            var done = coordinator.Wait(TimeSpan.FromSeconds(1));
            Assert.True(done.Code == 0, done.Stderr);
            foreach (var w in workers.Skip(1).Take(2))
            {
                var left = w.Wait(TimeSpan.FromMinutes(2));
                Assert.True(left.Code == 0, left.Stderr);
            }

            var trial = (await store.GetTrialAsync(victim!.Id))!;
            Assert.Equal(2, trial.Attempts);
            Assert.NotEqual(cutSilo, SiloOf(trial.Owner!));
            var events = await store.GetEventsAsync("drill");
            Assert.Contains(events, e => e.Kind == "silo_dead" && e.Message.Contains(cutSilo!, StringComparison.Ordinal));
            var rejoined = (await store.GetWorkersAsync()).Where(w => rejoinedPids.Contains(w.Pid)).Select(w => w.Id).ToHashSet();
            Assert.Contains((await store.GetTrialsAsync("drill")), t => rejoined.Contains(SiloOf(t.Owner!)));
            Assert.True(takeover < TimeSpan.FromSeconds(60), $"takeover after {takeover}");
            await AssertSameAsUndisturbedAsync(h, sweep, store);
        }
        catch
        {
            await DescribeAsync(store, workers.Prepend(coordinator));
            throw;
        }
        finally
        {
            foreach (var w in workers)
            {
                w.Dispose();
            }
        }
    }

    /// <summary>What a failed drill leaves to read: each trial as the store has it, and every silo's log.</summary>
    private async Task DescribeAsync(ITrialStore store, IEnumerable<RunningSweeper> silos)
    {
        try
        {
            foreach (var t in await store.GetTrialsAsync("drill"))
            {
                output.WriteLine($"trial {t.Number}: {t.State}, owner {t.Owner}, lease token {t.LeaseToken}, attempts {t.Attempts}, epochs {t.EpochsDone}");
            }
        }
        catch (Exception e)
        {
            output.WriteLine($"the store could not be read: {e.Message}");
        }

        foreach (var silo in silos)
        {
            output.WriteLine($"--- a silo's log ---\n{silo.Stderr}");
        }
    }

    [Fact]
    public async Task Silos_killed_repeatedly_a_database_restart_and_the_coordinators_silo_killed_change_no_result()
    {
        using var h = new Harness();
        using var cluster = new NetnsCluster(3);
        var sweep = h.Write("drill.yaml", Sweep(trials: 12, retries: 20));
        var db = _server.Value.CreateDatabase();
        await using var store = await TrialStores.OpenAsync(Store(db, "127.0.0.1"));
        var coordinator = StartCoordinator(h, sweep, db);
        await WaitAsync(async () => await store.GetStudyAsync("drill") is not null, TimeSpan.FromMinutes(1), "the study");
        var workers = new Dictionary<int, RunningSweeper> { [1] = StartWorker(h, cluster, 1, db), [2] = StartWorker(h, cluster, 2, db), [3] = StartWorker(h, cluster, 3, db) };
        var rng = new Random(3);
        var kills = 0;
        var restarted = false;
        var coordinatorKilled = false;
        var start = DateTime.UtcNow;
        try
        {
            while (!coordinator.Process.HasExited || !coordinatorKilled)
            {
                Assert.True(DateTime.UtcNow - start < TimeSpan.FromMinutes(8), "the sweep did not finish under the drills");
                await Task.Delay(2500);
                var elapsed = DateTime.UtcNow - start;

                // The supervisor's part: a silo that stopped on its own (declared dead while starved of CPU, exit 75) is
                // started again, as Kubernetes or compose would.
                foreach (var host in workers.Where(w => w.Value.Process.HasExited && !coordinator.Process.HasExited).Select(w => w.Key).ToList())
                {
                    output.WriteLine($"silo on host {host} had exited ({workers[host].Process.ExitCode}); restarted");
                    workers[host].Dispose();
                    workers[host] = StartWorker(h, cluster, host, db);
                }

                var running = (await store.GetTrialsAsync("drill")).Where(t => t.State == TrialState.Running).ToList();
                if (running.Count > 0 && kills < 5)
                {
                    // kill -9 a silo, and start a new one on its host (as its supervisor would)
                    var host = workers.Keys.ElementAt(rng.Next(workers.Count));
                    if (!workers[host].Process.HasExited)
                    {
                        var victims = (await store.GetWorkersAsync()).Where(w => w.Pid == workers[host].Process.Id).Select(w => w.Id).ToHashSet();
                        var held = (await store.GetTrialsAsync("drill")).Where(t => t.State == TrialState.Running && victims.Contains(SiloOf(t.Owner!))).ToList();
                        var killedAt = DateTime.UtcNow;
                        workers[host].Process.Kill();
                        kills++;
                        workers[host].Dispose();
                        workers[host] = StartWorker(h, cluster, host, db);
                        if (held.Count > 0)
                        {
                            var trial = held[0];
                            await WaitAsync(async () => await store.GetTrialAsync(trial.Id) is { LeaseToken: var token, State: var state } && (token > trial.LeaseToken || state != TrialState.Running),
                                TimeSpan.FromMinutes(1), "the killed silo's trial elsewhere");
                            output.WriteLine($"kill -9 of a silo -> its trial {trial.Number} is claimed again (by a surviving or the restarted silo) after {(DateTime.UtcNow - killedAt).TotalSeconds:F2} s");
                        }
                    }
                    else
                    {
                        workers[host].Dispose();
                        workers[host] = StartWorker(h, cluster, host, db);
                    }
                }

                if (!restarted && elapsed > TimeSpan.FromSeconds(8))
                {
                    var before = (await store.GetEventsAsync("drill")).Count(e => e.Kind == "trial_completed");
                    var restartedAt = DateTime.UtcNow;
                    _server.Value.Restart();
                    restarted = true;
                    await WaitAsync(async () => (await store.GetEventsAsync("drill")).Count(e => e.Kind == "trial_completed") > before, TimeSpan.FromMinutes(2), "a trial completed after the restart");
                    output.WriteLine($"PostgreSQL restarted -> the next trial completed {(DateTime.UtcNow - restartedAt).TotalSeconds:F2} s later (the server was down for part of it)");
                }

                if (!coordinatorKilled && elapsed > TimeSpan.FromSeconds(12))
                {
                    // Kill the silo that hosts the study grain (the coordinator), wherever Orleans placed it, and restart it.
                    var host = (await store.GetEventsAsync("drill")).Last(e => e.Kind == "coordinator_activated").Message.Split(' ')[^1];
                    var pid = (await store.GetWorkersAsync()).Single(w => w.Id == host).Pid;
                    var killedAt = DateTime.UtcNow;
                    if (coordinator.Process.Id == pid)
                    {
                        coordinator.Process.Kill();
                        coordinator.Dispose();
                        coordinator = StartCoordinator(h, sweep, db);
                    }
                    else
                    {
                        var silo = workers.Single(w => w.Value.Process.Id == pid).Key;
                        workers[silo].Process.Kill();
                        workers[silo].Dispose();
                        workers[silo] = StartWorker(h, cluster, silo, db);
                        kills++;
                    }

                    await WaitAsync(async () => (await store.GetEventsAsync("drill")).Count(e => e.Kind == "coordinator_activated" && e.At > killedAt) > 0, TimeSpan.FromMinutes(1), "the study grain elsewhere");
                    output.WriteLine($"kill -9 of the silo hosting the study grain -> the study grain is active on another silo after {(DateTime.UtcNow - killedAt).TotalSeconds:F2} s");
                    coordinatorKilled = true;
                }
            }

            var done = coordinator.Wait(TimeSpan.FromMinutes(1));
            Assert.True(done.Code == 0, done.Stderr);
            Assert.True(kills >= 3, $"only {kills} silos were killed");
            Assert.True(restarted);
            var events = await store.GetEventsAsync("drill");
            Assert.True(events.Count(e => e.Kind == "trial_requeued") >= 1, "no trial was ever taken over");
            Assert.Contains(events, e => e.Kind == "silo_dead");
            await AssertSameAsUndisturbedAsync(h, sweep, store);
        }
        catch
        {
            await DescribeAsync(store, workers.Values.Prepend(coordinator));
            throw;
        }
        finally
        {
            coordinator.Dispose();
            foreach (var w in workers.Values)
            {
                w.Dispose();
            }
        }
    }
}
