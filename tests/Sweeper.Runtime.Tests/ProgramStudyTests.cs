using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Serialization;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// A whole study of a training program through a real silo (built as <c>sweeper run</c> builds it, on SQLite): every
/// trial runs a python3 script, successive halving pauses, promotes and prunes them, and the study closes with the best
/// trial by the program's own metric and a note instead of a test accuracy.
/// </summary>
public sealed class ProgramStudyTests() : SiloTest("sweeper-program-study-")
{
    [Fact]
    public async Task A_program_study_with_hyperband_runs_to_the_end_and_closes_with_the_best_trial_by_the_programs_metric()
    {
        // Trial q's val_loss at epoch e is (9 - q) / 10 + 1 / e: trial 8 is the best at every epoch.
        File.WriteAllText(Path.Combine(Dir, "train.py"), """
            import json, os, sys
            args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
            q, epochs = int(args["quality"]), int(args["epochs"])
            with open(os.path.join(os.environ["SWEEPER_TRIAL_DIR"], "runs"), "a") as f:
                f.write("run\n")
            for e in range(1, epochs + 1):
                print(json.dumps({"epoch": e, "val_loss": (9 - q) / 10 + 1 / e, "accuracy": q / 10}))
            """.ReplaceLineEndings("\n"));
        var file = Path.Combine(Dir, "hb.yaml");
        File.WriteAllText(file, """
            name: hb
            program: train.py
            method: grid
            metric: {name: val_loss, goal: minimize}
            parameters:
              quality: {values: [8, 7, 6, 5, 4, 3, 2, 1, 0]}
              epochs: {value: 9}
            early_terminate: {type: hyperband, min_iter: 1, eta: 3}
            """);
        var programs = new ProgramTrialRunner(Path.Combine(Dir, "trials"));
        Store = await TrialStores.OpenAsync("sqlite:" + Path.Combine(Dir, "store.db"));
        var settings = new SiloSettings
        {
            Slots = 2,
            SiloPort = 0,
            Poll = TimeSpan.FromMilliseconds(20),
            IdleRecheck = TimeSpan.FromMilliseconds(100),
            Tick = TimeSpan.FromMilliseconds(200),
        };
        Silo = SweeperSilo.Build(Store, new DispatchingTrialRunner(new NoBuiltInModels(), programs), settings, Logger.None);
        await Silo.StartAsync();
        var opening = await Silo.Services.GetRequiredService<IGrainFactory>().GetGrain<IStudyGrain>("hb").OpenAsync(File.ReadAllText(file), file);
        Assert.Null(opening.Conflict);

        // The program runs in the sweep file's folder, stored with the study.
        Assert.Equal(Dir, SweepJson.Of((await Store.GetStudyAsync("hb"))!).Program!.WorkDir);

        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        StudyResult? result;
        while ((result = await Store.GetResultAsync("hb")) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the study did not close");
            await Task.Delay(50);
        }

        var trials = await Store.GetTrialsAsync("hb");
        var best = trials.Single(t => ParamJson.Deserialize(t.ParametersJson)["quality"] is 8L);
        Assert.Equal(best.Number, result.BestTrialNumber);
        Assert.Null(result.TestAccuracy);
        Assert.Contains("cannot be evaluated on the test split", result.Note, StringComparison.Ordinal);
        Assert.Equal("lowest val_loss among completed trials; ties go to the lowest trial number", result.SelectionRule);

        // Rungs at epochs 1 and 3, complete at 9; the rest end pruned at their rung.
        Assert.Equal(9, trials.Count);
        Assert.Equal(9, best.EpochsDone);
        Assert.Equal(TrialState.Completed, best.State);
        Assert.All(trials, t => Assert.Contains(t.EpochsDone, new[] { 1, 3, 9 }));
        Assert.All(trials, t => Assert.Equal(t.EpochsDone == 9 ? TrialState.Completed : TrialState.Pruned, t.State));
        Assert.Contains(trials, t => t.EpochsDone == 1);
        Assert.Equal(0.1 + (1 / 9.0), best.Value!.Value, 12);

        foreach (var t in trials)
        {
            // Each epoch once, 1..n, with the program's own metrics, though a promoted trial ran its program again.
            var epochs = await Store.GetEpochsAsync(t.Id);
            var q = (long)ParamJson.Deserialize(t.ParametersJson)["quality"];
            Assert.Equal(Enumerable.Range(1, t.EpochsDone), epochs.Select(e => e.Epoch));
            Assert.All(epochs, e => Assert.Equal(((9 - q) / 10.0) + (1.0 / e.Epoch), e.Metrics!["val_loss"], 12));
            Assert.All(epochs, e => Assert.Equal(q / 10.0, e.Metrics!["accuracy"], 12));
        }

        // Every promotion restarted the program from scratch.
        var events = await Store.GetEventsAsync("hb");
        var runs = trials.Sum(t => File.ReadAllLines(Path.Combine(programs.TrialDirectory("hb", t.Number), "runs")).Length);
        Assert.Equal(9 + events.Count(e => e.Kind == "trial_promoted"), runs);
        Assert.Contains(events, e => e.Kind == "trial_promoted");
    }

    [Fact]
    public void An_epoch_with_extra_metrics_and_a_finish_with_a_value_cross_between_silos_intact()
    {
        // What a trial's grain sends to a study grain on another silo goes through Orleans' serializer, not a copy.
        using var services = new ServiceCollection().AddSerializer().BuildServiceProvider();
        var serializer = services.GetRequiredService<Serializer>();
        var epoch = new EpochRecord(3, 0.5, double.NaN, 0.25, double.NaN, 1.5, new Dictionary<string, double> { ["val_loss"] = 0.75, ["grad"] = double.NaN });
        Assert.Equal(epoch, serializer.Deserialize<EpochRecord>(serializer.SerializeToArray(epoch)));
        var finish = new TrialFinish(TrialState.Completed, null, null, 9, null, 0.125);
        Assert.Equal(finish, serializer.Deserialize<TrialFinish>(serializer.SerializeToArray(finish)));
        Assert.Null(serializer.Deserialize<EpochRecord>(serializer.SerializeToArray(epoch with { Metrics = null }))!.Metrics);
    }

    [Fact]
    public void Sweeper_run_runs_the_examples_toy_program_under_hyperband_to_the_end_and_validates_the_official_file()
    {
        var example = Example();
        using var h = new Harness();
        foreach (var file in new[] { "train.py", "train_keyvalue.py", "toy.py" })
        {
            File.Copy(Path.Combine(example, file), Path.Combine(h.Dir, file));
        }

        // W&B's file as published: 540 trials, hyperband's bands at epochs 3 and 9 of 27.
        var validate = h.Run(TimeSpan.FromMinutes(1), "validate", Path.Combine(example, "sweep-grid-hyperband.yaml"), "--json");
        Assert.True(validate.Code == 0, validate.Stdout + validate.Stderr);
        Assert.Contains("\"trials\":540", validate.Stdout.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);

        // The same shape on a grid small enough for a test, with each of the two programs.
        foreach (var program in new[] { "train.py", "train_keyvalue.py" })
        {
            var name = program.Replace(".py", "", StringComparison.Ordinal).Replace("_", "-", StringComparison.Ordinal);
            var sweep = h.Write(name + ".yaml", $$"""
                name: {{name}}
                program: {{program}}
                method: grid
                metric: {goal: minimize, name: loss}
                parameters:
                  dropout: {values: [0.1, 0.4]}
                  channels_one: {values: [10, 20]}
                  channels_two: {value: 44}
                  learning_rate: {values: [0.001, 0.005]}
                  epochs: {value: 9}
                early_terminate: {type: hyperband, s: 2, eta: 3, max_iter: 9}
                """);
            var run = h.Run(TimeSpan.FromMinutes(3), "run", sweep, "--store", h.Store(), "--slots", "2");
            Assert.True(run.Code == 0, run.Stdout + run.Stderr);
            Assert.Contains("8/8 final", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("0 failed", run.Stdout, StringComparison.Ordinal);
            Assert.Matches(@"Best trial \d+: loss 0\.\d+", run.Stdout);

            // Its trials are listed with their loss (the value), the lowest first, not with empty accuracy columns.
            var results = h.Run(TimeSpan.FromMinutes(1), "results", name, "--store", h.Store(), "--csv", "--where", "state = completed");
            Assert.True(results.Code == 0, results.Stderr);
            var lines = results.Stdout.TrimEnd('\n').Split('\n');
            Assert.StartsWith("number,state,value,", lines[0], StringComparison.Ordinal);
            var values = lines[1..].Select(l => double.Parse(l.Split(',')[2], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.NotEmpty(values);
            Assert.Equal(values.Order(), values);
            Assert.Contains("cannot be evaluated on the test split", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("paused at a rung", run.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_study_whose_every_trial_fails_ends_with_exit_status_1_and_says_where_the_reasons_are()
    {
        // The program exits with an error each time: every trial fails. Before, run ended with status 0, so a script or
        // a batch job took a sweep that produced nothing for a success.
        using var h = new Harness();
        var sweep = h.Write("miss.yaml", """
            name: miss
            program: ./broken.sh
            command:
              - bash
              - ${program}
              - ${args}
            method: grid
            metric: {name: loss, goal: minimize}
            parameters:
              x: {values: [1, 2]}
            """);
        h.Write("broken.sh", "echo 'no data here' >&2\nexit 3\n");
        var run = h.Run(TimeSpan.FromMinutes(2), "run", sweep, "--store", h.Store(), "--slots", "1");
        Assert.True(run.Code == 1, run.Stdout + run.Stderr);
        Assert.Contains("2 failed (2/2 final)", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("Study miss closed without a completed trial; the reasons: sweeper results miss --columns number,state,reason", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception:", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_second_silo_on_the_port_a_running_one_listens_on_is_refused_and_the_running_one_goes_on()
    {
        // Orleans binds its port for reuse: the second silo started, and the cluster declared the first one dead.
        using var h = new Harness();
        int port;
        using (var free = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            free.Start();
            port = ((System.Net.IPEndPoint)free.LocalEndpoint).Port;
        }

        var portText = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var first = h.Start("worker", "--store", h.Store(), "--slots", "1", "--silo-port", portText);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (!first.Stderr.Contains("training slot(s)", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline && !first.Process.HasExited, first.Stderr);
            Thread.Sleep(100);
        }

        var second = h.Run(TimeSpan.FromMinutes(1), "worker", "--store", h.Store(), "--slots", "1", "--silo-port", portText);
        Assert.True(second.Code == 1, second.Stderr);
        Assert.Contains($"error: the silo port {port} is in use on this machine", second.Stderr, StringComparison.Ordinal);
        Thread.Sleep(3000); // the time the cluster took to declare the first one dead
        Assert.False(first.Process.HasExited, first.Stderr);
        Assert.DoesNotContain("declared dead", first.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_program_that_cannot_start_here_is_said_by_validate_and_refused_by_run_on_the_embedded_store_before_its_study_exists()
    {
        // Each used to validate, and run then failed every trial one by one (540 failures for a 540-point grid).
        using var h = new Harness();
        h.Write("noexec.sh", "echo loss=0.5\n");
        foreach (var (program, extra, said) in new[]
                 {
                     ("./missing.sh", "", "program: ./missing.sh: no such file"),
                     ("./noexec.sh", "", "program: ./noexec.sh is not executable: chmod +x"),
                     ("noexec.sh", "", "program: noexec.sh is not on PATH; to start the file noexec.sh in"),
                     ("train.py", "command: [bash, \"${program}\"]\n", "program: train.py: no such file in"),
                     ("./noexec.sh", "trial: {workdir: /nonexistent/nope}\n", "trial.workdir: the folder /nonexistent/nope does not exist"),
                 })
        {
            var sweep = h.Write("p.yaml", $"name: p\nprogram: {program}\n{extra}method: grid\nmetric: {{name: loss, goal: minimize}}\nparameters:\n  x: {{values: [1, 2]}}\n");
            var validate = h.Run(TimeSpan.FromMinutes(1), "validate", sweep);
            Assert.True(validate.Code == 0, validate.Stderr);
            Assert.Contains($"warning: {sweep}: {said}", validate.Stdout, StringComparison.Ordinal);
            var run = h.Run(TimeSpan.FromMinutes(1), "run", sweep, "--store", h.Store(), "--slots", "1");
            Assert.True(run.Code == 2, run.Stdout + run.Stderr);
            Assert.Contains($"error: {sweep}: {said}", run.Stderr, StringComparison.Ordinal);
            Assert.False(File.Exists(h.Store()["sqlite:".Length..]), "no store, so no study, was made");
        }
    }

    /// <summary>examples/fashion-hyperband of the checkout the tests were built from.</summary>
    private static string Example()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "examples", "fashion-hyperband");
            if (File.Exists(Path.Combine(candidate, "train.py")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("examples/fashion-hyperband was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A program study never asks for a built-in model.</summary>
    private sealed class NoBuiltInModels : ITrialRunner
    {
        public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null) =>
            throw new InvalidOperationException("a built-in model was asked for");

        public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) =>
            throw new InvalidOperationException("a test evaluation was asked for");
    }
}
