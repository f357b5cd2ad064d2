using System.Diagnostics;
using System.Globalization;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// <see cref="ProgramTrialRunner"/> against real processes: bash and python3 scripts written by each test into a scratch
/// folder (the sweep file's folder), run as a slot would run them.
/// </summary>
public sealed class ProgramTrialRunnerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sweeper-program-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly ProgramTrialRunner _runner;

    public ProgramTrialRunnerTests()
    {
        Directory.CreateDirectory(_dir);
        _runner = new ProgramTrialRunner(Path.Combine(_dir, "trials"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A program sweep running <paramref name="script"/> (written to the scratch folder) with <paramref name="command"/>.</summary>
    private SweepDefinition Sweep(string script, string body, string metric, string goal = "minimize", string? command = null, int? timeout = null)
    {
        File.WriteAllText(Path.Combine(_dir, script), body.ReplaceLineEndings("\n"));
        var text = $"""
            name: p
            program: {script}
            method: grid
            metric: {"{"}name: {metric}, goal: {goal}{"}"}
            parameters:
              learning_rate: {"{"}value: 0.25{"}"}
              layers: {"{"}value: 3{"}"}
            {(command is null ? "" : "command: " + command)}
            trial:
              workdir: {_dir}
            {(timeout is { } t ? "  timeout_seconds: " + t.ToString(CultureInfo.InvariantCulture) : "")}
            """;
        return SweepParser.Parse(text, "p.yaml");
    }

    private static Lease Lease(int number = 3) => new(17, "p", number, """{"learning_rate":0.25,"layers":3}""", 5, "silo/slot0", 1, 1, HasCheckpoint: false);

    /// <summary>Runs the trial, keeping every epoch reported (and the checkpoint taken with it); <paramref name="verdict"/> answers each.</summary>
    private (TrialFinish Finish, List<EpochRecord> Epochs, List<byte[]> Checkpoints) Run(SweepDefinition sweep, Func<EpochRecord, bool>? verdict = null, byte[]? checkpoint = null,
        CancellationToken cancellationToken = default)
    {
        var epochs = new List<EpochRecord>();
        var checkpoints = new List<byte[]>();
        var finish = _runner.Run(sweep, Lease(), checkpoint, (e, take, _) =>
        {
            epochs.Add(e);
            checkpoints.Add(take());
            return verdict?.Invoke(e) ?? true;
        }, cancellationToken);
        return (finish, epochs, checkpoints);
    }

    private string TrialDir => _runner.TrialDirectory("p", 3);

    /// <summary>Whether the process is gone (or only a zombie left for its parent to reap).</summary>
    private static bool Gone(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        try
        {
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return true;
        }
    }

    private static int Pid(string file) => int.Parse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture);

    [Fact]
    public void Json_lines_with_a_step_key_become_one_epoch_per_step_with_the_programs_own_metrics()
    {
        // W&B's default command (${env} ${interpreter} ${program} ${args}): python, or python3 where there is no python.
        var sweep = Sweep("train.py", """
            import json, os, sys
            args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
            lr = float(args["learning_rate"])
            with open(os.path.join(os.environ["SWEEPER_TRIAL_DIR"], "seen.txt"), "w") as f:
                f.write(" ".join(sys.argv[1:]) + "|" + os.environ["SWEEPER_STUDY"] + "|" + os.environ["SWEEPER_TRIAL"] + "|" + os.getcwd())
            print("starting: a log line, not metrics")
            for epoch in range(3):
                print(json.dumps({"epoch": epoch, "loss": lr * (3 - epoch)}))
                print(json.dumps({"epoch": epoch, "val_loss": lr * (3 - epoch) + 0.5, "lr_text": "n/a"}))
            """, metric: "val_loss");
        var (finish, epochs, _) = Run(sweep);

        Assert.Equal("--learning_rate=0.25 --layers=3|p|3|" + _dir, File.ReadAllText(Path.Combine(TrialDir, "seen.txt")));
        Assert.Equal([1, 2, 3], epochs.Select(e => e.Epoch));
        Assert.Equal([0.75, 0.5, 0.25], epochs.Select(e => e.Loss));
        Assert.Equal([1.25, 1.0, 0.75], epochs.Select(e => e.Metrics!["val_loss"]));
        Assert.All(epochs, e => Assert.True(double.IsNaN(e.ValAccuracy) && !e.Metrics!.ContainsKey("epoch") && !e.Metrics.ContainsKey("lr_text")));
        Assert.Equal((TrialState.Completed, 3, 0.75, (string?)null), (finish.State, finish.Epochs, finish.Value, finish.Reason));
    }

    [Fact]
    public void Name_value_lines_are_read_as_Katibs_collector_reads_them_each_report_of_the_metric_ending_an_epoch()
    {
        var sweep = Sweep("train.sh", """
            echo "epoch=1 loss=0.41 val_accuracy=0.62"
            echo "Epoch 2: loss=0.30, val_accuracy=0.70 (built with numpy=1.2.3, x=1e)"
            echo "grad_norm=3.5"
            echo "val_accuracy=0.75 loss=nan"
            echo "done"
            """, metric: "val_accuracy", goal: "maximize", command: "[bash, \"${program}\", \"${args_no_hyphens}\"]");
        var (finish, epochs, _) = Run(sweep);

        Assert.Equal([1, 2, 3], epochs.Select(e => e.Epoch));
        Assert.Equal([0.62, 0.70, 0.75], epochs.Select(e => e.ValAccuracy));
        Assert.Equal(0.41, epochs[0].Loss);
        Assert.Null(epochs[1].Metrics); // numpy=1.2.3 and x=1e are not numbers
        Assert.Equal(3.5, epochs[2].Metrics!["grad_norm"]);
        Assert.True(double.IsNaN(epochs[2].Loss));
        Assert.Equal((TrialState.Completed, 0.75, 0.75), (finish.State, finish.ValAccuracy, finish.Value));
    }

    [Fact]
    public void A_numbered_step_is_an_epoch_as_soon_as_it_has_the_sweeps_metric_and_is_never_reported_twice()
    {
        static Dictionary<string, double> Line(params (string Name, double Value)[] metrics) => metrics.ToDictionary(m => m.Name, m => m.Value);
        var reader = new StepReader("val_loss");
        Assert.Empty(reader.Add(Line(("_step", 0), ("loss", 2))));
        Assert.Equal(Line(("loss", 2), ("val_loss", 1.5)), Assert.Single(reader.Add(Line(("_step", 0), ("val_loss", 1.5)))));
        Assert.Empty(reader.Add(Line(("_step", 0), ("lr", 0.1)))); // more of step 0, reported already
        Assert.Empty(reader.Add(Line(("_step", 1), ("loss", 1))));

        // Step 1 never had the metric: it ends when step 2 begins; step 2 ends with the program.
        Assert.Equal(Line(("loss", 1)), Assert.Single(reader.Add(Line(("_step", 2), ("loss", 0.5)))));
        Assert.Equal(Line(("loss", 0.5)), reader.Flush());
        Assert.Null(reader.Flush());
        Assert.True(reader.SawMetric);
    }

    [Fact]
    public void Metric_lines_parse_json_numbers_and_name_value_pairs_and_nothing_else()
    {
        Assert.Equal(new Dictionary<string, double> { ["loss"] = 0.5, ["_step"] = 2 }, MetricLines.Parse("""  {"loss": 0.5, "_step": 2, "tag": "a", "nested": {"x": 1}}  """));
        Assert.Equal(new Dictionary<string, double> { ["val/loss"] = -1.5e-3, ["acc"] = 0.9 }, MetricLines.Parse("step 3 val/loss=-1.5e-3 acc = .9"));
        Assert.Null(MetricLines.Parse("""{"tag": "only text"}"""));
        Assert.Null(MetricLines.Parse("Downloading https://x.org/a?b=c ..."));
        Assert.Null(MetricLines.Parse("version=1.2.3 mode=fast"));
        Assert.True(double.IsPositiveInfinity(MetricLines.Parse("loss=inf")!["loss"]));
    }

    [Fact]
    public void A_stop_kills_the_program_and_every_process_it_started()
    {
        var sweep = Sweep("train.sh", """
            echo $$ > "$SWEEPER_TRIAL_DIR/pid"
            sleep 1000 &
            echo $! > "$SWEEPER_TRIAL_DIR/child"
            i=0
            while true; do i=$((i+1)); echo "loss=$i"; sleep 0.02; done
            """, metric: "loss", command: "[bash, \"${program}\"]");
        var clock = Stopwatch.StartNew();
        var (finish, epochs, _) = Run(sweep, e => e.Epoch < 3);

        Assert.Equal((TrialState.Pruned, 3), (finish.State, finish.Epochs));
        Assert.Equal(3, epochs.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20));
        Assert.True(Gone(Pid(Path.Combine(TrialDir, "pid"))), "the program still runs");
        Assert.True(Gone(Pid(Path.Combine(TrialDir, "child"))), "the program's child still runs");
    }

    [Fact]
    public void A_cancelled_trial_kills_its_program_and_throws()
    {
        var sweep = Sweep("train.sh", """
            echo $$ > "$SWEEPER_TRIAL_DIR/pid"
            while true; do echo "loss=1"; sleep 0.02; done
            """, metric: "loss", command: "[bash, \"${program}\"]");
        using var cancel = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => Run(sweep, e =>
        {
            if (e.Epoch == 2)
            {
                cancel.Cancel();
            }

            return true;
        }, cancellationToken: cancel.Token));
        Assert.True(Gone(Pid(Path.Combine(TrialDir, "pid"))), "the program still runs");
    }

    [Fact]
    public void A_program_past_its_time_limit_is_killed_and_failed()
    {
        var sweep = Sweep("train.sh", """
            echo $$ > "$SWEEPER_TRIAL_DIR/pid"
            echo "loss=0.5"
            sleep 1000
            """, metric: "loss", command: "[bash, \"${program}\"]", timeout: 1);
        var clock = Stopwatch.StartNew();
        var (finish, epochs, _) = Run(sweep);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20));
        Assert.Equal(TrialState.Failed, finish.State);
        Assert.Contains("time limit of 1 s", finish.Reason, StringComparison.Ordinal);
        Assert.Single(epochs);
        Assert.True(Gone(Pid(Path.Combine(TrialDir, "pid"))));
    }

    [Fact]
    public void Python_is_python_where_it_is_installed_and_else_python3()
    {
        var onlyPython3 = Path.Combine(_dir, "bin3");
        var both = Path.Combine(_dir, "bin");
        var neither = Path.Combine(_dir, "empty");
        foreach (var (dir, names) in new[] { (onlyPython3, new[] { "python3" }), (both, new[] { "python", "python3" }), (neither, Array.Empty<string>()) })
        {
            Directory.CreateDirectory(dir);
            foreach (var name in names)
            {
                File.WriteAllText(Path.Combine(dir, name), "");
            }
        }

        Assert.Equal("python3", ProgramTrialRunner.PythonOn(neither + Path.PathSeparator + onlyPython3));
        Assert.Equal("python", ProgramTrialRunner.PythonOn(onlyPython3 + Path.PathSeparator + both));
        Assert.Null(ProgramTrialRunner.PythonOn(neither));
        Assert.Null(ProgramTrialRunner.PythonOn(null));
    }

    [Fact]
    public void A_non_zero_exit_fails_the_trial_with_its_exit_code_and_the_last_lines_of_its_output()
    {
        var sweep = Sweep("train.py", """
            import sys
            for i in range(30):
                print(f"line {i}")
            print(f"loss={0.5}")
            print("Traceback (most recent call last):", file=sys.stderr)
            print("ValueError: boom", file=sys.stderr)
            sys.exit(3)
            """, metric: "loss", command: "[python3, \"${program}\"]");
        var (finish, _, _) = Run(sweep);

        Assert.Equal(TrialState.Failed, finish.State);
        Assert.StartsWith("the program exited with code 3 after epoch 1", finish.Reason, StringComparison.Ordinal);
        Assert.Contains("ValueError: boom", finish.Reason, StringComparison.Ordinal);
        Assert.Contains("line 29", finish.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("line 5\n", finish.Reason, StringComparison.Ordinal);
        Assert.Equal(ProgramTrialRunner.TailLines, finish.Reason!.Split('\n').Length - 1);
    }

    [Theory]
    [InlineData("loss", "echo '{\"loss\": 1e999}'", "loss = Infinity at epoch 2")]
    [InlineData("val_loss", "echo 'epoch=2 loss=0.4 val_loss=nan'", "val_loss = NaN at epoch 2")]
    [InlineData("loss", "echo 'epoch=2 train_loss=-inf val_loss=0.3'", "train_loss = -Infinity at epoch 2")]
    public void A_metric_that_is_not_a_number_is_a_diverged_trial_stopped_there_and_not_stored(string metric, string badLine, string said)
    {
        var sweep = Sweep("train.sh", "echo 'epoch=1 loss=0.5 val_loss=0.6'\n" + badLine + "\necho 'epoch=3 loss=0.3 val_loss=0.4'\n",
            metric: metric, command: "[bash, \"${program}\"]");
        var (finish, epochs, _) = Run(sweep);

        Assert.Equal(TrialState.Diverged, finish.State);
        Assert.Equal($"the program reported {said}", finish.Reason);
        Assert.Equal(1, finish.Epochs);
        Assert.Single(epochs);
        Assert.Equal(metric == "loss" ? 0.5 : 0.6, finish.Value);
    }

    [Fact]
    public void Output_lines_are_cut_at_a_length_and_the_rest_of_a_long_line_is_skipped_not_kept()
    {
        var text = "a\r\n" + new string('x', 20) + "\n\nlast";
        var lines = new ProgramTrialRunner.BoundedLines(new StringReader(text), 8);
        Assert.Equal("a", lines.ReadLine());
        Assert.Equal("xxxxxxxx…", lines.ReadLine());
        Assert.Equal("", lines.ReadLine());
        Assert.Equal("last", lines.ReadLine());
        Assert.Null(lines.ReadLine());

        // 3 MB on each stream without a newline (a silo grew by gigabytes on such a program), then the metric.
        var sweep = Sweep("train.sh", """
            head -c 3000000 /dev/zero | tr '\0' 'y'
            echo
            head -c 3000000 /dev/zero | tr '\0' 'z' >&2
            echo 'loss=0.25'
            exit 4
            """, metric: "loss", command: "[bash, \"${program}\"]");
        var (finish, epochs, _) = Run(sweep);
        Assert.Equal(0.25, Assert.Single(epochs).Loss);
        Assert.Equal(TrialState.Failed, finish.State);
        Assert.StartsWith("the program exited with code 4 after epoch 1", finish.Reason, StringComparison.Ordinal);
        Assert.True(finish.Reason!.Length < 5_000, $"{finish.Reason.Length} characters");
        Assert.Contains("zzz…", finish.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_program_that_never_reports_the_sweeps_metric_fails_with_a_clear_reason()
    {
        var sweep = Sweep("train.sh", """
            echo '{"accuracy": 0.5}'
            echo "training done"
            """, metric: "val_loss", command: "[bash, \"${program}\"]");
        var (finish, _, _) = Run(sweep);

        Assert.Equal(TrialState.Failed, finish.State);
        Assert.Contains("never reported the sweep's metric 'val_loss'", finish.Reason, StringComparison.Ordinal);
        Assert.Contains("training done", finish.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_program_fails_the_trial_with_what_could_not_be_started()
    {
        var sweep = Sweep("train.sh", "echo loss=1", metric: "loss", command: "[./no-such-program, \"${args}\"]");
        var (finish, _, _) = Run(sweep);

        Assert.Equal(TrialState.Failed, finish.State);
        Assert.Contains("could not start", finish.Reason, StringComparison.Ordinal);
        Assert.Contains("no-such-program", finish.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_resumed_trial_restarts_its_program_and_does_not_report_the_epochs_already_stored()
    {
        var sweep = Sweep("train.sh", """
            echo run >> "$SWEEPER_TRIAL_DIR/runs"
            for i in 1 2 3 4 5; do echo "{\"step\": $i, \"loss\": $i.5}"; done
            """, metric: "loss", command: "[bash, \"${program}\"]");
        var first = Run(sweep, e => e.Epoch < 2);
        Assert.Equal([1, 2], first.Epochs.Select(e => e.Epoch));
        Assert.Equal(2, ProgramTrialRunner.StoredEpochs(first.Checkpoints[^1]));

        var (finish, epochs, _) = Run(sweep, checkpoint: first.Checkpoints[^1]);
        Assert.Equal([3, 4, 5], epochs.Select(e => e.Epoch));
        Assert.Equal([3.5, 4.5, 5.5], epochs.Select(e => e.Loss));
        Assert.Equal((TrialState.Completed, 5, 5.5), (finish.State, finish.Epochs, finish.Value));
        Assert.Equal(["run", "run"], File.ReadAllLines(Path.Combine(TrialDir, "runs")));
    }

    [Fact]
    public void The_args_json_file_holds_the_parameters_and_the_sweep_files_env_reaches_the_program()
    {
        File.WriteAllText(Path.Combine(_dir, "train.sh"), """
            cat "$1" > "$SWEEPER_TRIAL_DIR/args"
            echo "$GREETING" > "$SWEEPER_TRIAL_DIR/greeting"
            echo "loss=1"
            """.ReplaceLineEndings("\n"));
        var sweep = SweepParser.Parse($$"""
            name: p
            program: train.sh
            method: grid
            metric: {name: loss, goal: minimize}
            parameters:
              learning_rate: {value: 0.25}
              layers: {value: 3}
            command: [bash, "${program}", "${args_json_file}"]
            trial:
              workdir: {{_dir}}
              env: {GREETING: hello}
            """, "p.yaml");
        var (finish, _, _) = Run(sweep);

        Assert.Equal(TrialState.Completed, finish.State);
        Assert.Equal(new Dictionary<string, object> { ["learning_rate"] = 0.25, ["layers"] = 3L }, ParamJson.Deserialize(File.ReadAllText(Path.Combine(TrialDir, "args"))));
        Assert.Equal("hello", File.ReadAllText(Path.Combine(TrialDir, "greeting")).Trim());
    }
}
