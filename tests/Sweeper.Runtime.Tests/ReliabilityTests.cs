using System.Diagnostics;
using System.Text.Json;
using Sweeper.Core.Trials;
using Xunit.Abstractions;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>Failure drills with real processes on the embedded SQLite store.</summary>
public class ReliabilityTests(ITestOutputHelper output)
{
    private const string ShortTrials = """
        name: drill
        method: grid
        model: two_layer
        data:
          train_size: 8000
          val_size: 500
        parameters:
          hidden_size: {values: [60, 80]}
          learning_rate: {values: [1.0e-3, 5.0e-4]}
          reg: {value: 0.01}
          epochs: {value: 6}
          batch_size: {value: 100}
          lr_decay: {value: 0.95}
        budget:
          max_trials: 4
          retries: 3
        early_terminate:
          type: none
        seed: 11
        """;

    /// <summary>A store address for the backend: a file in the scratch folder, or a fresh database on the test PostgreSQL server.</summary>
    private static string NewStore(Harness h, string backend, string name = "store.db") =>
        backend == "postgres" ? Storage.Tests.PostgresServer.Shared.CreateDatabase() : h.Store(name);

    private static async Task<(IReadOnlyList<TrialRecord> Trials, Dictionary<int, IReadOnlyList<EpochRecord>> Epochs, StudyResult? Result, IReadOnlyList<(DateTimeOffset At, long? TrialId, string Kind, string Message)> Events)> ReadAsync(string store, string study)
    {
        await using var s = await TrialStores.OpenAsync(store);
        var trials = await s.GetTrialsAsync(study);
        var epochs = new Dictionary<int, IReadOnlyList<EpochRecord>>();
        foreach (var t in trials)
        {
            epochs[t.Number] = await s.GetEpochsAsync(t.Id);
        }

        return (trials, epochs, await s.GetResultAsync(study), await s.GetEventsAsync(study));
    }

    /// <summary>A silo process that trains <paramref name="study"/>'s trials and leaves when it is closed.</summary>
    private static RunningSweeper StartWorker(Harness h, string store, int slots = 1, string study = "drill") =>
        h.Start("worker", "--store", store, "--study", study, "--exit-when-done", "--slots", slots.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--silo-port", "0", "--lease-seconds", "120");

    private static string SiloOf(string owner) => owner[..owner.LastIndexOf('/')];

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Kill_9_of_a_silo_mid_trial_resumes_it_elsewhere_from_its_checkpoint_with_the_undisturbed_final_metrics(string backend)
    {
        using var h = new Harness();
        var sweep = h.Write("drill.yaml", ShortTrials.Replace("epochs: {value: 6}", "epochs: {value: 12}", StringComparison.Ordinal));
        var storeA = NewStore(h, backend, "a.db");
        var storeB = NewStore(h, backend, "b.db");

        var undisturbed = h.Run(TimeSpan.FromMinutes(3), "run", sweep, "--store", storeA, "--slots", "1", "--json");
        Assert.True(undisturbed.Code == 0, undisturbed.Stderr);

        // A coordinator silo and two training silos; the lease is far longer than the test may take, so only Orleans'
        // failure detection can hand the killed silo's trial over in time.
        using var coordinator = h.Start("coordinator", sweep, "--store", storeB, "--silo-port", "0", "--lease-seconds", "120");
        var workers = new List<RunningSweeper> { StartWorker(h, storeB), StartWorker(h, storeB) };
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (backend == "sqlite" && !File.Exists(Path.Combine(h.Dir, "b.db")) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            await using var s = await TrialStores.OpenAsync(storeB);
            TrialRecord? victim = null;
            RunningSweeper? killed = null;
            while (killed is null && DateTime.UtcNow < deadline && !coordinator.Process.HasExited)
            {
                await Task.Delay(30);
                victim = (await s.GetTrialsAsync("drill")).FirstOrDefault(t => t.State == TrialState.Running && t.EpochsDone is >= 2 and <= 9);
                if (victim is null)
                {
                    continue;
                }

                var silo = (await s.GetWorkersAsync()).First(w => w.Id == SiloOf(victim.Owner!));
                killed = workers.Single(w => w.Process.Id == silo.Pid);
                killed.Process.Kill(); // SIGKILL: no chance to hand the trial back
            }

            Assert.True(killed is not null, "never saw a trial running between epochs 2 and 9. stderr:\n" + coordinator.Stderr);
            var killedAt = DateTime.UtcNow;
            workers.Add(StartWorker(h, storeB)); // its supervisor starts a new silo, as Kubernetes or compose would
            while (DateTime.UtcNow - killedAt < TimeSpan.FromMinutes(1)
                && await s.GetTrialAsync(victim!.Id) is not ({ LeaseToken: >= 2, State: TrialState.Running } or { State: TrialState.Completed }))
            {
                await Task.Delay(20);
            }

            output.WriteLine($"{backend}: kill -9 of the silo training trial {victim!.Number} -> the trial trains again on another silo after {(DateTime.UtcNow - killedAt).TotalSeconds:F2} s");
            var disturbed = coordinator.Wait(TimeSpan.FromMinutes(3));
            Assert.True(disturbed.Code == 0, disturbed.Stderr);
            var leftovers = workers.Where(w => w != killed).Select(w => w.Wait(TimeSpan.FromMinutes(1))).ToList();
            Assert.All(leftovers, w => Assert.True(w.Code == 0, w.Stderr));

            var a = await ReadAsync(storeA, "drill");
            var b = await ReadAsync(storeB, "drill");
            Assert.All(b.Trials, t => Assert.Equal(TrialState.Completed, t.State));
            var resumed = b.Trials.Single(t => t.Number == victim!.Number);
            Assert.Equal(2, resumed.Attempts);
            Assert.NotEqual(SiloOf(victim!.Owner!), SiloOf(resumed.Owner!));
            Assert.Contains(b.Events, e => e.Kind == "silo_dead" && e.Message.Contains(SiloOf(victim.Owner!), StringComparison.Ordinal));
            Assert.Contains(b.Events, e => e.Kind == "trial_requeued" && e.TrialId == resumed.Id);
            Assert.Contains(leftovers, w => w.Stderr.Contains($"Trial {victim.Number} (attempt 2) resumes from its epoch-", StringComparison.Ordinal));

            // Every trial completed exactly once, and the final metrics equal the undisturbed run's.
            foreach (var t in b.Trials)
            {
                Assert.Single(b.Events, e => e.Kind == "trial_completed" && e.TrialId == t.Id);
                var reference = a.Trials.Single(x => x.Number == t.Number);
                Assert.Equal(reference.ValAccuracy, t.ValAccuracy);
                Assert.Equal(reference.TrainAccuracy, t.TrainAccuracy);
                Assert.Equal(a.Epochs[t.Number].Select(e => (e.Epoch, e.Loss, e.TrainAccuracy, e.ValAccuracy)), b.Epochs[t.Number].Select(e => (e.Epoch, e.Loss, e.TrainAccuracy, e.ValAccuracy)));
            }

            Assert.Equal(a.Result!.BestTrialNumber, b.Result!.BestTrialNumber);
            Assert.Equal(a.Result.TestAccuracy, b.Result.TestAccuracy);
            using var summary = JsonDocument.Parse(undisturbed.Stdout);
            Assert.Equal(a.Result.TestAccuracy, summary.RootElement.GetProperty("test_accuracy").GetDouble());
        }
        finally
        {
            foreach (var w in workers)
            {
                w.Dispose();
            }
        }
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task Three_silos_claiming_at_once_never_share_a_trial(string backend)
    {
        using var h = new Harness();
        var store = NewStore(h, backend);
        const int Trials = 1500;
        var sweep = h.Write("light.yaml", $$"""
            name: light
            method: grid
            model: softmax
            data: {train_size: 200, val_size: 50, test_size: 50}
            parameters:
              learning_rate: {distribution: int_uniform, min: 1, max: {{Trials}}}
              iterations: {value: 1}
              batch_size: {value: 50}
            budget: {max_trials: {{Trials}}}
            seed: 5
            """);
        var workers = new[] { StartWorker(h, store, slots: 3, study: "light"), StartWorker(h, store, slots: 3, study: "light") };
        try
        {
            var result = h.Run(TimeSpan.FromMinutes(5), "run", sweep, "--store", store, "--slots", "3", "--json");
            Assert.True(result.Code == 0, result.Stderr);
            foreach (var w in workers)
            {
                var done = w.Wait(TimeSpan.FromMinutes(1));
                Assert.True(done.Code == 0, done.Stderr);
            }

            var (trials, _, study, events) = await ReadAsync(store, "light");
            Assert.Equal(Trials, trials.Count);
            Assert.All(trials, t => Assert.Equal((TrialState.Completed, 1, 1L), (t.State, t.Attempts, t.LeaseToken)));
            Assert.Equal(Trials, events.Count(e => e.Kind == "trial_completed"));
            Assert.Equal(Trials, events.Where(e => e.Kind == "trial_completed").Select(e => e.TrialId).Distinct().Count());
            var silos = trials.Select(t => SiloOf(t.Owner!)).Distinct().Count();
            Assert.True(silos == 3, $"only {silos} silos took trials");
            Assert.Single(events, e => e.Kind == "study_created");
            Assert.NotNull(study!.TestAccuracy);
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
    public async Task A_diverging_trial_is_recorded_with_its_reason_and_the_others_go_on()
    {
        using var h = new Harness();
        var sweep = h.Write("div.yaml", """
            name: div
            method: grid
            model: two_layer
            data: {train_size: 2000, val_size: 200, test_size: 200}
            parameters:
              hidden_size: {value: 40}
              weight_scale: {value: 0.1}
              learning_rate: {values: [1.0e+4, 1.0e-3]}
              epochs: {value: 2}
              batch_size: {value: 100}
            budget: {max_trials: 2}
            """);
        var result = h.Run(TimeSpan.FromMinutes(2), "run", sweep, "--store", h.Store(), "--slots", "2", "--json");
        Assert.True(result.Code == 0, result.Stderr);
        var (trials, _, study, _) = await ReadAsync(h.Store(), "div");
        var diverged = trials.Single(t => t.Number == 0);
        Assert.Equal(TrialState.Diverged, diverged.State);
        Assert.Contains("loss became", diverged.Reason);
        Assert.Equal(TrialState.Completed, trials.Single(t => t.Number == 1).State);
        Assert.Equal(1, study!.BestTrialNumber);

        var query = h.Run(TimeSpan.FromMinutes(1), "results", "div", "--store", h.Store(), "--where", "state = diverged and learning_rate > 1", "--columns", "number,state,learning_rate", "--csv");
        Assert.True(query.Code == 0, query.Stderr);
        Assert.Equal(["number,state,learning_rate", "0,diverged,10000"], query.Stdout.Trim().Split('\n'));
        var bad = h.Run(TimeSpan.FromMinutes(1), "results", "div", "--store", h.Store(), "--where", "state = diverged and learning_rat > 1");
        Assert.Equal(2, bad.Code);
        Assert.Contains("unknown field 'learning_rat'", bad.Stderr);
        Assert.Contains("position 22", bad.Stderr);
    }

    [Fact]
    public async Task A_bad_sweep_file_gets_an_error_naming_file_line_and_key_and_creates_nothing()
    {
        using var h = new Harness();
        var good = h.Write("good.yaml", ShortTrials.Replace("epochs: {value: 6}", "epochs: {value: 1}", StringComparison.Ordinal));
        Assert.Equal(0, h.Run(TimeSpan.FromMinutes(2), "run", good, "--store", h.Store(), "--slots", "1").Code);
        var before = await ReadAsync(h.Store(), "drill");

        var bad = h.Write("bad.yaml", """
            name: other
            method: random
            model: fc
            parameters:
              dropout:
                distribution: uniform
                min: 0.2
                max: 1.5
            """);
        var (code, _, stderr) = h.Run(TimeSpan.FromMinutes(1), "run", bad, "--store", h.Store(), "--slots", "1");
        Assert.Equal(2, code);
        Assert.Contains("bad.yaml:8:", stderr);
        Assert.Contains("parameters.dropout.max", stderr);

        await using var s = await SqliteTrialStore.OpenAsync(h.Store()["sqlite:".Length..]);
        Assert.Single(await s.ListStudiesAsync());
        var after = await ReadAsync(h.Store(), "drill");
        Assert.Equal(before.Trials, after.Trials);
        Assert.Equal(before.Result, after.Result);
    }

    [Fact]
    public async Task Stopping_a_run_hands_trials_back_and_running_it_again_resumes_without_redoing_finished_trials()
    {
        using var h = new Harness();
        var sweep = h.Write("drill.yaml", ShortTrials.Replace("epochs: {value: 6}", "epochs: {value: 30}", StringComparison.Ordinal));
        using (var first = h.Start("run", sweep, "--store", h.Store(), "--slots", "2"))
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
                if (File.Exists(Path.Combine(h.Dir, "store.db")))
                {
                    var (trials, _, _, _) = await ReadAsync(h.Store(), "drill");
                    if (trials.Count(t => t.State == TrialState.Completed) >= 1 && trials.Any(t => t.State == TrialState.Running && t.EpochsDone >= 1))
                    {
                        break;
                    }
                }
            }

            _ = Kill(first.Process.Id, 15); // what Ctrl-C does
            var stopped = first.Wait(TimeSpan.FromMinutes(1));
            Assert.Equal(130, stopped.Code);
        }

        var midway = await ReadAsync(h.Store(), "drill");
        Assert.DoesNotContain(midway.Trials, t => t.State == TrialState.Running);
        Assert.Contains(midway.Events, e => e.Kind == "trial_released");
        var doneBefore = midway.Trials.Where(t => t.State == TrialState.Completed).Select(t => t.Id).ToHashSet();
        Assert.NotEmpty(doneBefore);
        Assert.Null(midway.Result);

        var second = h.Run(TimeSpan.FromMinutes(3), "run", sweep, "--store", h.Store(), "--slots", "2");
        Assert.True(second.Code == 0, second.Stderr);
        // Its time is its own, and it says so: the trials of the first run are not counted in it.
        Assert.Contains($"(this run; {midway.Trials.Count(t => t.State.IsFinal())} of the trials were final before it, from an earlier run)", second.Stdout);
        var end = await ReadAsync(h.Store(), "drill");
        Assert.All(end.Trials, t => Assert.Equal(TrialState.Completed, t.State));
        Assert.All(end.Trials.Where(t => doneBefore.Contains(t.Id)), t => Assert.Equal(1, t.Attempts));
        Assert.Equal(doneBefore.Count, end.Events.Count(e => e.Kind == "trial_completed" && doneBefore.Contains(e.TrialId!.Value)));
        Assert.NotNull(end.Result!.TestAccuracy);
        await using var s = await SqliteTrialStore.OpenAsync(h.Store()["sqlite:".Length..]);
        Assert.Single(await s.ListStudiesAsync());
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
