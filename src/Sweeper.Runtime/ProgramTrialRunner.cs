using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>
/// Runs a trial of a sweep with <c>program:</c> (W&amp;B's <c>program</c>/<c>command</c>, Katib's trial template): starts
/// the user's training program in the slot's thread with the trial's parameters (<see cref="ProgramSpec.Build"/>), reads
/// its metrics from its standard output (<see cref="MetricLines"/>), and turns its steps into epochs that the stopping
/// rules judge. The process (and every process it started) is killed when the trial is stopped (median rule, successive
/// halving), cancelled (the trial's lease was lost, the silo is stopping) or runs past the sweep's
/// <c>trial.timeout_seconds</c>.
/// <para>
/// A program has no checkpoint of ours: its "checkpoint" is only the number of epochs already stored. A resumed or
/// promoted trial starts the program again from scratch, with the same arguments, and the epochs it had already
/// reported are not reported again (they are read from its output and skipped).
/// </para>
/// </summary>
public sealed class ProgramTrialRunner : ITrialRunner
{
    /// <summary>How many of the last lines of output (stdout and stderr) a failed trial's reason carries.</summary>
    public const int TailLines = 20;

    private static readonly Lazy<string?> _python = new(() => PythonOn(Environment.GetEnvironmentVariable("PATH")));

    /// <param name="trialRoot">
    /// Where the trials' folders are made (<c>SWEEPER_TRIAL_DIR</c>: root/study/trial-N, also holding
    /// <c>${args_json_file}</c>). Default: sweeper-trials in the system's temporary folder.
    /// </param>
    public ProgramTrialRunner(string? trialRoot = null) => TrialRoot = trialRoot ?? Path.Combine(Path.GetTempPath(), "sweeper-trials");

    public string TrialRoot { get; }

    /// <summary>The folder of one trial (made when it starts, kept after it ends).</summary>
    public string TrialDirectory(string study, int number) =>
        Path.Combine(TrialRoot, Regex.Replace(study, "[^A-Za-z0-9._-]", "_"), "trial-" + number.ToString(CultureInfo.InvariantCulture));

    public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null)
    {
        var program = sweep.Program ?? throw new InvalidOperationException($"study {lease.Study} runs no program; its trials are built-in models.");
        cancellationToken.ThrowIfCancellationRequested();
        var stored = StoredEpochs(checkpoint);
        var workDir = Path.GetFullPath(program.WorkDir ?? ".");
        if (!Directory.Exists(workDir))
        {
            return Failed(0, $"the program's working directory {workDir} does not exist (trial.workdir, relative to the sweep file's folder)", []);
        }

        var trialDir = TrialDirectory(lease.Study, lease.Number);
        Directory.CreateDirectory(trialDir);
        var parameters = ParamJson.Deserialize(lease.ParametersJson);
        var argsFile = Path.Combine(trialDir, "args.json");
        File.WriteAllText(argsFile, ProgramSpec.ArgsJson(parameters));
        var (argv, environment) = program.Build(parameters, argsFile, OperatingSystem.IsWindows(), BaseEnvironment(lease, trialDir));
        if (argv.Count == 0)
        {
            return Failed(0, "the command is empty", []);
        }

        var start = new ProcessStartInfo
        {
            FileName = Executable(argv[0], workDir),
            WorkingDirectory = workDir,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in argv.Skip(1))
        {
            start.ArgumentList.Add(arg == "python" ? Python() : arg);
        }

        start.Environment.Clear();
        foreach (var (name, text) in environment)
        {
            start.Environment[name] = text;
        }

        // The last lines of each stream, kept apart: stderr is read on another thread, so one shared tail would keep
        // whichever stream happened to be read last, and a traceback could be pushed out by the output before it.
        var tail = new Tail(TailLines);
        var errors = new Tail(TailLines);
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            return Failed(0, $"could not start {Quote(start.FileName)} in {workDir}: {e.Message}", []);
        }

        // Both streams are read line by line with a cap on a line's length: a program that writes hundreds of MB
        // without a newline would otherwise grow the silo by as much.
        var errorReader = new BoundedLines(process.StandardError, MaxLineChars);
        var readingErrors = Task.Factory.StartNew(
            () =>
            {
                while (errorReader.ReadLine() is { } line)
                {
                    errors.Add(line);
                }
            },
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        process.StandardInput.Close();
        var timedOut = false;
        void Kill()
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException or ObjectDisposedException)
            {
                // Exited already (or is exiting, or the trial is over).
            }
        }

        using var onCancel = cancellationToken.Register(Kill);
        using var timer = program.TimeoutSeconds is { } seconds
            ? new Timer(_ =>
            {
                timedOut = true;
                Kill();
            }, null, TimeSpan.FromSeconds(seconds), Timeout.InfiniteTimeSpan)
            : null;

        var steps = new StepReader(sweep.Metric);
        var epochs = 0;
        var stopped = false;
        double? value = null, valAccuracy = null, trainAccuracy = null;
        var clock = Stopwatch.StartNew();

        string? diverged = null;

        // Each finished step becomes the next epoch; returns false once the trial is to stop.
        bool Deliver(Dictionary<string, double> step)
        {
            if (StepReader.NotANumber(step, sweep.Metric) is { } bad)
            {
                // As with our own models: a run whose metric is no longer a number has diverged. It stops here, and the
                // step is not stored (nothing after it would be either).
                diverged = $"the program reported {bad.Name} = {bad.Value.ToString(CultureInfo.InvariantCulture)} at epoch {epochs + 1}";
                return false;
            }

            epochs++;
            var record = StepReader.Epoch(epochs, step, clock.Elapsed.TotalSeconds);
            value = record.ValueOf(sweep.Metric) ?? value;
            valAccuracy = double.IsNaN(record.ValAccuracy) ? valAccuracy : record.ValAccuracy;
            trainAccuracy = double.IsNaN(record.TrainAccuracy) ? trainAccuracy : record.TrainAccuracy;
            clock.Restart();
            if (epochs <= stored)
            {
                return true; // reported by an earlier attempt: stored already
            }

            var reached = epochs;
            return onEpoch(record, () => Marker(reached));
        }

        var output = new BoundedLines(process.StandardOutput, MaxLineChars);
        try
        {
            while (output.ReadLine() is { } line)
            {
                tail.Add(line);
                if (stopped || MetricLines.Parse(line) is not { } metrics)
                {
                    continue; // after a stop, the output is only drained until the process is gone
                }

                foreach (var step in steps.Add(metrics))
                {
                    if (!Deliver(step))
                    {
                        stopped = true;
                        Kill();
                        break;
                    }
                }
            }

            process.WaitForExit();
        }
        finally
        {
            if (!process.HasExited)
            {
                // Left by an exception (the lease was lost): the process must not outlive its trial.
                Kill();
                process.WaitForExit(10_000);
            }

            // The rest of stderr (a child the program left behind may hold the pipe: not for long).
            readingErrors.Wait(TimeSpan.FromSeconds(5));
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (diverged is not null)
        {
            return new TrialFinish(TrialState.Diverged, valAccuracy, trainAccuracy, epochs, diverged, value);
        }

        if (stopped)
        {
            return new TrialFinish(TrialState.Pruned, valAccuracy, trainAccuracy, epochs, $"stopped after epoch {epochs}; its process was killed", value);
        }

        if (timedOut)
        {
            return Failed(epochs, $"ran past its time limit of {program.TimeoutSeconds} s (trial.timeout_seconds) and was killed after epoch {epochs}", Tail.Last(tail, errors, TailLines), value);
        }

        if (steps.Flush() is { } last && !Deliver(last))
        {
            return diverged is not null
                ? new TrialFinish(TrialState.Diverged, valAccuracy, trainAccuracy, epochs, diverged, value)
                : new TrialFinish(TrialState.Pruned, valAccuracy, trainAccuracy, epochs, $"stopped after epoch {epochs}", value);
        }

        if (process.ExitCode != 0)
        {
            return Failed(epochs, $"the program exited with code {process.ExitCode} after epoch {epochs}", Tail.Last(tail, errors, TailLines), value);
        }

        if (!steps.SawMetric)
        {
            return Failed(epochs, $"the program exited with code 0 but never reported the sweep's metric '{sweep.Metric}' (print a JSON object per line, e.g. {{\"{sweep.Metric}\": 0.5}}, or {sweep.Metric}=0.5 on its standard output)",
                Tail.Last(tail, errors, TailLines), value);
        }

        return new TrialFinish(TrialState.Completed, valAccuracy, trainAccuracy, epochs, null, value);
    }

    public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) =>
        throw new InvalidOperationException("a training program's trial cannot be evaluated on the test split: its model lives in the program.");

    /// <summary>How many epochs the trial's earlier attempts stored (its "checkpoint": see <see cref="Marker"/>); 0 without one.</summary>
    public static int StoredEpochs(byte[]? checkpoint)
    {
        if (checkpoint is null || checkpoint.Length == 0)
        {
            return 0;
        }

        try
        {
            using var json = JsonDocument.Parse(checkpoint);
            return json.RootElement.TryGetProperty("program_epochs", out var n) && n.TryGetInt32(out var epochs) ? epochs : 0;
        }
        catch (JsonException)
        {
            return 0;
        }
    }

    /// <summary>A program trial's checkpoint: only how many epochs were stored, so that a restart does not report them again.</summary>
    public static byte[] Marker(int epochs) => Encoding.UTF8.GetBytes($"{{\"program_epochs\":{epochs.ToString(CultureInfo.InvariantCulture)}}}");

    private static TrialFinish Failed(int epochs, string what, IReadOnlyList<string> lines, double? value = null) =>
        new(TrialState.Failed, null, null, epochs, lines.Count == 0 ? what : $"{what}; last lines of its output:\n{string.Join('\n', lines)}", value);

    /// <summary>The silo's environment with the trial's own variables (the sweep file's trial.env is laid over it by Build).</summary>
    private static Dictionary<string, string> BaseEnvironment(Lease lease, string trialDir)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            environment[(string)e.Key] = (string?)e.Value ?? "";
        }

        // Python buffers a pipe's output in blocks: without this, metrics would arrive only when the program ends, too
        // late for any stopping rule. A sweep file may still set it otherwise (trial.env).
        environment["PYTHONUNBUFFERED"] = "1";
        environment["SWEEPER_STUDY"] = lease.Study;
        environment["SWEEPER_TRIAL"] = lease.Number.ToString(CultureInfo.InvariantCulture);
        environment["SWEEPER_TRIAL_DIR"] = trialDir;
        return environment;
    }

    /// <summary>The program to start: a path relative to the working directory when it names a folder, else looked up on PATH.</summary>
    private static string Executable(string first, string workDir)
    {
        if (first == "python")
        {
            return Python();
        }

        return first.Contains('/', StringComparison.Ordinal) && !Path.IsPathRooted(first) ? Path.GetFullPath(Path.Combine(workDir, first)) : first;
    }

    /// <summary>W&amp;B's <c>${interpreter}</c> is python; where only python3 is installed, that one.</summary>
    private static string Python() => _python.Value ?? "python";

    /// <summary>The Python that W&amp;B's <c>python</c> means on <paramref name="path"/> (a PATH value): python, else python3, else null.</summary>
    public static string? PythonOn(string? path)
    {
        var folders = (path ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return new[] { "python", "python3" }.FirstOrDefault(name => folders.Any(d => File.Exists(Path.Combine(d, name))));
    }

    /// <summary>
    /// What would keep every trial of a program sweep from starting on this machine, found before a study exists: the
    /// working folder (trial.workdir), the executable the command starts (not on PATH, missing, or not executable) and
    /// the program file the command names. Each comes with the sweep file's key. Empty when the trials can start here
    /// (or the sweep runs no program).
    /// </summary>
    public static IReadOnlyList<(string Key, string Message)> StartProblems(SweepDefinition sweep, string sweepFile)
    {
        if (WithWorkDir(sweep, sweepFile).Program is not { } program)
        {
            return [];
        }

        var workDir = Path.GetFullPath(program.WorkDir ?? ".");
        if (!Directory.Exists(workDir))
        {
            return [("trial.workdir", $"the folder {workDir} does not exist")];
        }

        var (argv, environment) = program.Build(new Dictionary<string, object>(), "args.json", OperatingSystem.IsWindows(), program.Env.ContainsKey("PATH") ? null : new Dictionary<string, string> { ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "" });
        if (argv.Count == 0)
        {
            return [("command", "the command is empty")];
        }

        // /usr/bin/env starts its first argument, found on PATH.
        var started = argv[0] == "/usr/bin/env" && argv.Count > 1 ? argv[1] : argv[0];
        started = started == "python" ? Python() : started;
        var key = started == program.Program ? "program" : "command";
        var problems = new List<(string, string)>();
        if (Unstartable(started, workDir, environment.GetValueOrDefault("PATH", "")) is { } why)
        {
            problems.Add((key, why));
        }

        if (key == "command" && argv.Contains(program.Program) && !File.Exists(Path.Combine(workDir, program.Program)))
        {
            problems.Add(("program", $"{program.Program}: no such file in {workDir} (the program is found relative to trial.workdir, by default the sweep file's folder)"));
        }

        return problems;
    }

    /// <summary>
    /// <paramref name="sweep"/> with its program's working folder made absolute: the folder of the sweep file
    /// <paramref name="source"/>, or trial.workdir taken from there. A source that is not a file here leaves it to the
    /// silo's current folder.
    /// </summary>
    public static SweepDefinition WithWorkDir(SweepDefinition sweep, string source)
    {
        if (sweep.Program is not { } program || !File.Exists(source))
        {
            return sweep;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(source))!;
        return sweep with { Program = program with { WorkDir = Path.GetFullPath(Path.Combine(folder, program.WorkDir ?? ".")) } };
    }

    /// <summary>Why <paramref name="name"/> (a path, or a name looked up on <paramref name="path"/>) cannot be started, or null.</summary>
    private static string? Unstartable(string name, string workDir, string path)
    {
        static bool CanRun(string file) => OperatingSystem.IsWindows() || (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        if (name.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.IsPathRooted(name) ? name : Path.GetFullPath(Path.Combine(workDir, name));
            return !File.Exists(full) ? $"{name}: no such file ({full})"
                : !CanRun(full) ? $"{name} is not executable: chmod +x {full}, or start it through its interpreter (command: [bash, \"${{program}}\"])"
                : null;
        }

        var onPath = path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, name)).FirstOrDefault(f => File.Exists(f) && CanRun(f));
        if (onPath is not null)
        {
            return null;
        }

        return File.Exists(Path.Combine(workDir, name))
            ? $"{name} is not on PATH; to start the file {name} in {workDir}, write ./{name}"
            : $"{name}: not found on PATH";
    }

    /// <summary>The longest line of a program's output kept (in characters); the rest of a longer line is skipped.</summary>
    public const int MaxLineChars = 1 << 16;

    /// <summary>
    /// Lines of a stream, each cut at a length: characters past it are read and dropped up to the line's end, so that
    /// memory stays bounded whatever the program writes. A cut line ends with "…".
    /// </summary>
    public sealed class BoundedLines(TextReader reader, int maxChars)
    {
        private readonly char[] _buffer = new char[8192];
        private int _start, _end;

        public string? ReadLine()
        {
            var line = new StringBuilder();
            var cut = false;
            while (true)
            {
                if (_start == _end)
                {
                    _end = reader.Read(_buffer, 0, _buffer.Length);
                    _start = 0;
                    if (_end <= 0)
                    {
                        _end = 0;
                        return line.Length > 0 || cut ? Finish(line, cut) : null;
                    }
                }

                var span = _buffer.AsSpan(_start, _end - _start);
                var newline = span.IndexOf('\n');
                var piece = newline >= 0 ? span[..newline] : span;
                var room = maxChars - line.Length;
                if (piece.Length > room)
                {
                    cut = true;
                }

                line.Append(piece[..Math.Min(room, piece.Length)]);
                _start += newline >= 0 ? newline + 1 : span.Length;
                if (newline >= 0)
                {
                    return Finish(line, cut);
                }
            }
        }

        private static string Finish(StringBuilder line, bool cut)
        {
            if (line.Length > 0 && line[^1] == '\r')
            {
                line.Length--;
            }

            return cut ? line.Append('…').ToString() : line.ToString();
        }
    }

    private static string Quote(string s) => s.Contains(' ', StringComparison.Ordinal) ? $"\"{s}\"" : s;

    /// <summary>The last lines of one of a process's output streams.</summary>
    private sealed class Tail(int capacity)
    {
        private readonly Queue<string> _lines = new();

        public void Add(string line)
        {
            lock (_lines)
            {
                _lines.Enqueue(line.Length > 500 ? line[..500] + "…" : line);
                while (_lines.Count > capacity)
                {
                    _lines.Dequeue();
                }
            }
        }

        public IReadOnlyList<string> Lines()
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }

        /// <summary>
        /// At most <paramref name="count"/> last lines: the standard output's, then the standard error's (where a
        /// traceback goes), which get every line they have as long as the output keeps at least half.
        /// </summary>
        public static IReadOnlyList<string> Last(Tail output, Tail errors, int count)
        {
            var (o, e) = (output.Lines(), errors.Lines());
            var fromErrors = Math.Min(e.Count, count - Math.Min(o.Count, count / 2));
            var fromOutput = Math.Min(o.Count, count - fromErrors);
            return [.. o.Skip(o.Count - fromOutput), .. e.Skip(e.Count - fromErrors)];
        }
    }
}

/// <summary>
/// Turns a program's metric lines into steps. A line with a step key (<c>step</c>, <c>epoch</c> or <c>_step</c>)
/// belongs to that step: the step ends as soon as it has the sweep's metric (so that the stopping rule judges it at once),
/// or when a line names another step, or when the program ends; lines naming a step that has ended are not read. Without
/// step keys, a line that reports the sweep's metric ends a step, with whatever the lines before it reported since the
/// last one; and on any line without a step key, a metric that the open step already has begins a new step.
/// </summary>
public sealed class StepReader(string metric)
{
    /// <summary>The keys that number a step (not metrics themselves).</summary>
    public static readonly IReadOnlyList<string> StepKeys = ["step", "epoch", "_step"];

    private Dictionary<string, double> _pending = new(StringComparer.Ordinal);
    private double? _step;
    private double? _ended;

    /// <summary>Whether any line reported the sweep's metric.</summary>
    public bool SawMetric { get; private set; }

    /// <summary>The steps one line of metrics ends (none, one or two).</summary>
    public IReadOnlyList<Dictionary<string, double>> Add(IReadOnlyDictionary<string, double> line)
    {
        SawMetric |= line.ContainsKey(metric);
        double? step = StepKeys.Where(line.ContainsKey).Select(k => (double?)line[k]).FirstOrDefault();
        var ended = new List<Dictionary<string, double>>();
        if (step is { } numbered && numbered == _ended)
        {
            return ended; // more of a step already reported: it is not reported twice
        }

        // A new step begins with another step number, or, on a line without one, with a metric the open step has already.
        var begins = _pending.Count > 0 && (step is { } s ? _step is { } current && s != current : line.Keys.Any(k => !StepKeys.Contains(k) && _pending.ContainsKey(k)));
        if (begins)
        {
            ended.Add(Take());
        }

        _step = step ?? (begins ? null : _step);
        foreach (var (name, value) in line)
        {
            if (!StepKeys.Contains(name))
            {
                _pending[name] = value;
            }
        }

        // The report of the sweep's metric ends the step.
        if (_pending.ContainsKey(metric) && (step is not null || _step is null))
        {
            ended.Add(Take());
        }

        return ended;
    }

    /// <summary>The step still open when the program ended, if it reported anything.</summary>
    public Dictionary<string, double>? Flush() => _pending.Count > 0 ? Take() : null;

    private Dictionary<string, double> Take()
    {
        var step = _pending;
        _pending = new Dictionary<string, double>(StringComparer.Ordinal);
        _ended = _step;
        _step = null;
        return step;
    }

    /// <summary>
    /// The sweep's <paramref name="metric"/> as the step reports it, when that is nan or +-inf (for loss, either of
    /// loss and train_loss); null when it is a number or not reported. Other fields may be nan (a program's own
    /// conventions), as W&amp;B and Katib take them.
    /// </summary>
    public static (string Name, double Value)? NotANumber(IReadOnlyDictionary<string, double> step, string metric)
    {
        ReadOnlySpan<string> names = metric is "loss" or "train_loss" ? ["loss", "train_loss"] : [metric];
        foreach (var name in names)
        {
            if (step.TryGetValue(name, out var v) && !double.IsFinite(v))
            {
                return (name, v);
            }
        }

        return null;
    }

    /// <summary>
    /// One step as epoch <paramref name="number"/>: loss (or train_loss), train_accuracy, val_accuracy and learning_rate
    /// fill the built-in fields (NaN when not reported); every other name is an extra metric.
    /// </summary>
    public static EpochRecord Epoch(int number, IReadOnlyDictionary<string, double> step, double seconds)
    {
        var extras = new Dictionary<string, double>(StringComparer.Ordinal);
        var lossKey = step.ContainsKey("loss") ? "loss" : "train_loss";
        foreach (var (name, value) in step)
        {
            if (name != lossKey && name is not ("train_accuracy" or "val_accuracy" or "learning_rate"))
            {
                extras[name] = value;
            }
        }

        double Get(string key) => step.TryGetValue(key, out var v) ? v : double.NaN;
        return new EpochRecord(number, Get(lossKey), Get("train_accuracy"), Get("val_accuracy"), Get("learning_rate"), seconds, extras.Count == 0 ? null : extras);
    }
}

/// <summary>
/// Reads metrics from one line of a program's standard output, as W&amp;B's logged dictionaries and Katib's stdout
/// collector write them: a JSON object (its number-valued keys; other values are ignored), or <c>name=value</c> pairs
/// anywhere in the line (<c>epoch=3 loss=0.41 val_accuracy=0.62</c>, also <c>Epoch 3: loss=0.41, acc=0.5</c>). Any
/// other line is the program's own log, and null.
/// </summary>
public static partial class MetricLines
{
    public static Dictionary<string, double>? Parse(string line)
    {
        var text = line.Trim();
        if (text.StartsWith('{') && text.EndsWith('}'))
        {
            try
            {
                using var json = JsonDocument.Parse(text);
                var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (var property in json.RootElement.EnumerateObject())
                {
                    if (property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetDouble(out var v))
                    {
                        metrics[property.Name] = v;
                    }
                }

                return metrics.Count == 0 ? null : metrics;
            }
            catch (JsonException)
            {
                // Not JSON after all: perhaps name=value pairs.
            }
        }

        Dictionary<string, double>? pairs = null;
        foreach (Match m in PairRegex().Matches(text))
        {
            var raw = m.Groups[2].Value;
            var v = raw.ToLowerInvariant() switch
            {
                "nan" => double.NaN,
                "inf" or "+inf" => double.PositiveInfinity,
                "-inf" => double.NegativeInfinity,
                _ => double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            (pairs ??= new Dictionary<string, double>(StringComparer.Ordinal))[m.Groups[1].Value] = v;
        }

        return pairs;
    }

    // name=value: a name of word characters, dots, dashes and slashes (val/loss, lr-0); a number (or nan, inf) that ends
    // the token (so that 1.2.3, a version, or x=1e, a word, are not read as numbers).
    [GeneratedRegex(@"(?<![\w.\-/])([A-Za-z_][\w.\-/]*)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf|nan)(?![\w.])", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PairRegex();
}
