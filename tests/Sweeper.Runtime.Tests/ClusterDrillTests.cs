using Sweeper.Core.Trials;
using Sweeper.Storage;
using Sweeper.Storage.Tests;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// Cluster drills: workers on separate hosts (network namespaces) against PostgreSQL on the host side, under
/// failures; each drill ends with every trial final exactly once and the same results as an undisturbed run.
/// </summary>
public class ClusterDrillTests
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
        var baseline = h.Run(TimeSpan.FromMinutes(4), "run", sweep, "--store", Store(baselineDb, "127.0.0.1"), "--workers", "2");
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
    public async Task A_host_cut_off_mid_trial_loses_it_to_another_worker_and_is_fenced_when_it_returns()
    {
        using var h = new Harness();
        using var cluster = new NetnsCluster(2);
        var sweep = h.Write("drill.yaml", Sweep(trials: 16, retries: 3));
        var db = _server.Value.CreateDatabase();
        await using var store = await TrialStores.OpenAsync(Store(db, "127.0.0.1"));
        using var coordinator = h.Start("coordinator", sweep, "--store", Store(db, "127.0.0.1"));
        await WaitAsync(async () => await store.GetStudyAsync("drill") is not null, TimeSpan.FromMinutes(1), "the study");
        var workers = Enumerable.Range(1, 2).Select(i => h.StartIn(cluster.Namespace(i), "worker", "--store", Store(db, NetnsCluster.Gateway(i)),
            "--study", "drill", "--exit-when-done", "--lease-seconds", "2", "--data", Harness.CifarDir)).ToList();
        try
        {
            // Cut host 1 while it is in the middle of a trial.
            TrialRecord? victim = null;
            await WaitAsync(async () =>
            {
                var owners = (await store.GetWorkersAsync()).Where(w => w.Pid == workers[0].Process.Id).Select(w => w.Id).ToHashSet();
                victim = (await store.GetTrialsAsync("drill")).FirstOrDefault(t => t.State == TrialState.Running && owners.Contains(t.Owner!) && t.EpochsDone is >= 2 and <= 8);
                return victim is not null;
            }, TimeSpan.FromMinutes(2), "host 1 to be mid-trial");
            cluster.Cut(1);
            var cutOwner = victim!.Owner!;

            // Another worker takes the trial over from its checkpoint once the lease expires.
            await WaitAsync(async () => (await store.GetTrialAsync(victim.Id))!.LeaseEpoch >= 2 && (await store.GetTrialAsync(victim.Id))!.Owner != cutOwner,
                TimeSpan.FromMinutes(1), "the takeover");
            cluster.Restore(1);
            var restoredAt = DateTimeOffset.UtcNow;

            var done = coordinator.Wait(TimeSpan.FromMinutes(4));
            Assert.True(done.Code == 0, done.Stderr);
            var cutWorker = workers[0].Wait(TimeSpan.FromMinutes(2));
            workers[1].Wait(TimeSpan.FromMinutes(2));

            Assert.Contains("no longer held", cutWorker.Stderr); // its stale write was rejected by fencing
            var trial = (await store.GetTrialAsync(victim.Id))!;
            Assert.Equal(2, trial.Attempts);
            Assert.NotEqual(cutOwner, trial.Owner);
            var events = await store.GetEventsAsync("drill");
            Assert.Contains(events, e => e.Kind == "trial_completed" && e.Message.Contains(cutOwner, StringComparison.Ordinal) && e.At > restoredAt.AddSeconds(-1));
            await AssertSameAsUndisturbedAsync(h, sweep, store);
        }
        finally
        {
            foreach (var w in workers)
            {
                w.Dispose();
            }
        }
    }

    [Fact]
    public async Task Workers_killed_repeatedly_a_database_restart_and_a_coordinator_restart_change_no_result()
    {
        using var h = new Harness();
        using var cluster = new NetnsCluster(3);
        var sweep = h.Write("drill.yaml", Sweep(trials: 12, retries: 20));
        var db = _server.Value.CreateDatabase();
        await using var store = await TrialStores.OpenAsync(Store(db, "127.0.0.1"));
        var coordinator = h.Start("coordinator", sweep, "--store", Store(db, "127.0.0.1"));
        await WaitAsync(async () => await store.GetStudyAsync("drill") is not null, TimeSpan.FromMinutes(1), "the study");
        RunningSweeper StartWorker(int host) => h.StartIn(cluster.Namespace(host), "worker", "--store", Store(db, NetnsCluster.Gateway(host)),
            "--study", "drill", "--exit-when-done", "--lease-seconds", "2", "--data", Harness.CifarDir);
        var workers = new Dictionary<int, RunningSweeper> { [1] = StartWorker(1), [2] = StartWorker(2), [3] = StartWorker(3) };
        var rng = new Random(3);
        var kills = 0;
        var restarted = false;
        var coordinatorKilled = false;
        var start = DateTime.UtcNow;
        try
        {
            while (!coordinator.Process.HasExited || !coordinatorKilled)
            {
                Assert.True(DateTime.UtcNow - start < TimeSpan.FromMinutes(5), "the sweep did not finish under the drills");
                await Task.Delay(1500);
                var elapsed = DateTime.UtcNow - start;
                var running = (await store.GetTrialsAsync("drill")).Where(t => t.State == TrialState.Running).ToList();
                if (running.Count > 0 && kills < 5)
                {
                    // kill -9 a worker that holds a trial, and start a new one on its host
                    var host = workers.Keys.ElementAt(rng.Next(workers.Count));
                    if (!workers[host].Process.HasExited)
                    {
                        workers[host].Process.Kill();
                        kills++;
                    }

                    workers[host].Dispose();
                    workers[host] = StartWorker(host);
                }

                if (!restarted && elapsed > TimeSpan.FromSeconds(4))
                {
                    _server.Value.Restart();
                    restarted = true;
                }

                if (!coordinatorKilled && elapsed > TimeSpan.FromSeconds(7))
                {
                    coordinator.Process.Kill();
                    coordinator.Dispose();
                    coordinator = h.Start("coordinator", sweep, "--store", Store(db, "127.0.0.1"));
                    coordinatorKilled = true;
                }
            }

            var done = coordinator.Wait(TimeSpan.FromMinutes(1));
            Assert.True(done.Code == 0, done.Stderr);
            Assert.True(kills >= 3, $"only {kills} workers were killed");
            Assert.True(restarted);
            var requeued = (await store.GetEventsAsync("drill")).Count(e => e.Kind == "trial_requeued");
            Assert.True(requeued >= 1, "no trial was ever taken over");
            await AssertSameAsUndisturbedAsync(h, sweep, store);
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
