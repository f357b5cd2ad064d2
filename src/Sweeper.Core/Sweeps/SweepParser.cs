using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Sweeper.Core.Sweeps;

/// <summary>
/// Reads and validates sweep definition files: W&amp;B's sweep files as written (method, metric, parameters with every W&amp;B
/// distribution, nested parameters, early_terminate, run_cap, program, command, project, entity), plus what a
/// self-hosted trainer needs (model, data, budget, seed, conditions, engine, device, bayes, trial). Every problem of a
/// file is collected and reported at once, each with file, line, column and key (and a "did you mean" for a misspelt
/// key or value); unknown keys are errors, and a W&amp;B key that means nothing here is a warning kept on the definition.
/// </summary>
public sealed partial class SweepParser
{
    /// <summary>The deepest nesting a sweep file may have (see <see cref="CheckNesting"/>).</summary>
    private const int MaxNesting = 64;

    private static readonly string[] _topKeys =
    [
        "name", "description", "project", "entity", "method", "metric", "model", "data", "parameters", "conditions", "budget", "run_cap",
        "early_terminate", "seed", "engine", "device", "bayes", "program", "command", "trial",
    ];

    /// <summary>W&amp;B keys that mean nothing here: a warning each, never an error.</summary>
    private static readonly string[] _ignoredTopKeys = ["controller", "apiVersion", "kind", "job", "image_uri", "scheduler", "metrics"];

    private static readonly string[] _domainKeys = ["value", "values", "distribution", "min", "max", "q", "mu", "sigma", "probabilities"];

    private readonly string _file;
    private readonly List<SweepFileIssue> _errors = [];
    private readonly List<SweepFileIssue> _warnings = [];

    /// <summary>Required keys that are missing: reported after the errors that have a place.</summary>
    private readonly List<SweepFileIssue> _missing = [];

    /// <summary>True while reading a sweep with a program: parameters are the program's, not the built-in catalogue's.</summary>
    private bool _program;

    /// <summary>Where the trial limit in force is written: run_cap's value, else budget.max_trials's (null: neither is given).</summary>
    private (int Line, int Column, string Key)? _limitAt;

    /// <summary>True when the file gives run_cap or budget.max_trials (a grid without either runs whole).</summary>
    private bool _budgetGiven;

    private SweepParser(string file)
    {
        _file = file;
    }

    public static SweepDefinition ParseFile(string path)
    {
        if (Directory.Exists(path))
        {
            throw new SweepFileException(path, 0, 0, "", "is a folder, not a sweep file; give the YAML file in it, e.g. sweeps/quickstart.yaml.");
        }

        if (!File.Exists(path))
        {
            throw new SweepFileException(path, 0, 0, "", "the sweep file does not exist.");
        }

        return Parse(ReadBounded(path), path);
    }

    /// <summary>The largest sweep file read: W&amp;B's and ours are a few KiB; a megabyte is a wrong file.</summary>
    public const int MaxFileBytes = 1 << 20;

    /// <summary>
    /// The file's text, read up to <see cref="MaxFileBytes"/>: a larger file (or an endless one such as /dev/zero, whose
    /// length reads as 0) is refused instead of read into memory until it runs out.
    /// </summary>
    private static string ReadBounded(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        var buffer = new byte[MaxFileBytes + 1];
        var read = 0;
        while (read < buffer.Length && stream.Read(buffer, read, buffer.Length - read) is var n and > 0)
        {
            read += n;
        }

        if (read > MaxFileBytes)
        {
            throw new SweepFileException(path, 0, 0, "", $"is larger than {MaxFileBytes >> 20} MiB; a sweep file is a few KiB of YAML (is this the right file?).");
        }

        using var reader = new StreamReader(new MemoryStream(buffer, 0, read), System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    /// <summary>Parses and validates a sweep file's text; throws <see cref="SweepFileException"/> with every error found.</summary>
    public static SweepDefinition Parse(string text, string file = "<sweep>")
    {
        var parser = new SweepParser(file);
        var definition = parser.Read(text);
        return parser.CheckTrials(definition);
    }

    /// <summary>Runs one independent part of the reading; its error is kept and the reading goes on with the next part.</summary>
    private T? Try<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (SweepFileException e)
        {
            _errors.AddRange(e.Errors);
            return default;
        }
        catch (AlreadyReported)
        {
            return default;
        }
    }

    /// <summary>Abandons a part whose errors are already kept (e.g. a mapping whose every key was wrong).</summary>
    private sealed class AlreadyReported : Exception;

    private void Try(Action read) => Try(() =>
    {
        read();
        return true;
    });

    private void Warn(YamlNode node, string key, string message) => _warnings.Add(new SweepFileIssue(_file, Line(node), Column(node), key, message));

    private YamlMappingNode Load(string text)
    {
        CheckNesting(text);
        var stream = new YamlStream();
        var reader = new Parser(new StringReader(text));
        try
        {
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            var message = e.InnerException?.Message ?? e.Message;
            if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FirstIndentingTab(text) is var (tabLine, tabColumn))
            {
                throw new SweepFileException(_file, tabLine, tabColumn, "", "not valid YAML: a tab is used as indentation; YAML indents with spaces only (replace the tab with spaces).");
            }

            throw new SweepFileException(_file, Math.Max(1, (int)e.Start.Line), Math.Max(1, (int)e.Start.Column), "", "not valid YAML: " + message);
        }
        catch (ArgumentException)
        {
            // YamlDotNet's document builder fails this way on an entry without a key (a line that starts with ':');
            // the event it stopped at is the end of the mapping, so point at the keyless entry when there is one.
            var lines = SplitLines(text);
            var keyless = Array.FindIndex(lines, l => l.TrimStart(' ', '-').StartsWith(':'));
            if (keyless >= 0)
            {
                throw new SweepFileException(_file, keyless + 1, lines[keyless].IndexOf(':', StringComparison.Ordinal) + 1, "",
                    "not valid YAML: this entry has no key before its ':' (write key: value).");
            }

            var mark = reader.Current?.Start;
            throw new SweepFileException(_file, Math.Max(1, (int)(mark?.Line ?? 1)), Math.Max(1, (int)(mark?.Column ?? 1)), "", "not valid YAML: the structure cannot be read here.");
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner fails this way on some unclosed flow collections; point at the first unbalanced line.
            var lines = text.Split('\n');
            var line = Array.FindIndex(lines, l => l.Count(c => c == '[') != l.Count(c => c == ']') || l.Count(c => c == '{') != l.Count(c => c == '}'));
            throw new SweepFileException(_file, line < 0 ? 1 : line + 1, 1, "", "not valid YAML: an unclosed [ or { (flow collections must close on the same line here).");
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new SweepFileException(_file, 1, 1, "", "a sweep file is a mapping of keys (name, method, parameters, ...).");
        }

        // A second document after '---' would be ignored without a word (W&B reads one sweep per file); an empty one
        // (a trailing '---') is nothing.
        if (stream.Documents.Skip(1).FirstOrDefault(d => d.RootNode is not YamlScalarNode { Value: null or "" }) is { } extra)
        {
            var second = extra.RootNode;
            throw new SweepFileException(_file, Math.Max(1, (int)second.Start.Line), Math.Max(1, (int)second.Start.Column), "",
                $"a second YAML document (after '---'): a sweep file holds one sweep; put each sweep in its own file.");
        }

        return root;
    }

    private SweepDefinition Read(string text)
    {
        var root = Load(text);
        var top = Keys(root, "", _topKeys, _ignoredTopKeys);
        _program = top.ContainsKey("program");

        // W&B's name is optional: without one, the study is named after the file (sweep-grid-hyperband.yaml: sweep-grid-hyperband).
        var name = top.ContainsKey("name") ? Try(() => Scalar(top["name"], "name")) : NameFromFile();
        if (name is not null && !NameRegex().IsMatch(name))
        {
            _errors.Add(top.ContainsKey("name") ? Issue(top["name"], "name", "must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit (it names the study).")
                : Issue(root, "name", $"is needed: the file's name ({Path.GetFileName(_file)}) does not make a study name; give name: with 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit."));
        }

        var method = Try(() => RequiredString(root, top, "method", "", "grid, random or bayes"));
        if (method is not null && method is not ("grid" or "random" or "bayes"))
        {
            _errors.Add(Issue(top["method"], "method", $"must be grid, random or bayes (got {method}){Suggest.DidYouMean(method, ["grid", "random", "bayes"])}."));
            method = null;
        }

        var parameters = new Dictionary<string, ParameterDomain>();
        var fromModelBlock = new HashSet<string>();
        if (top.TryGetValue("model", out var modelNode))
        {
            if (_program)
            {
                _errors.Add(Issue(modelNode, "model", "names a built-in model, but this sweep runs its program; give the program's settings as parameters."));
            }
            else
            {
                Try(() => ReadModelBlock(modelNode, parameters));
                fromModelBlock.UnionWith(parameters.Keys);
            }
        }

        if (!top.TryGetValue("parameters", out var paramsNode))
        {
            _missing.Add(Issue(root, "parameters", "is required: the hyperparameters to search (each with value, values or distribution)."));
        }
        else
        {
            foreach (var (key, domain, keyNode) in ReadParameters(paramsNode, "parameters", ""))
            {
                if (!parameters.TryAdd(key, domain))
                {
                    _errors.Add(Issue(keyNode, $"parameters.{key}", fromModelBlock.Contains(key) ? "is also fixed in the model block; give it in one place."
                        : $"appears twice (a nested parameter and a dotted name both make {key})."));
                }
            }
        }

        var conditions = top.TryGetValue("conditions", out var condNode) ? Try(() => ReadConditions(condNode, parameters)) ?? [] : [];
        var (metric, goal) = top.TryGetValue("metric", out var metricNode) ? Try(() => ReadMetric(metricNode)) : ("val_accuracy", "maximize");
        var budget = top.TryGetValue("budget", out var budgetNode) ? Try(() => ReadBudget(budgetNode)) ?? new Budget() : new Budget();
        var maxTrialsNode = budgetNode is YamlMappingNode givenBudget
            ? givenBudget.Children.FirstOrDefault(kv => kv.Key is YamlScalarNode { Value: "max_trials" }).Value
            : null;
        _budgetGiven = top.ContainsKey("run_cap") || maxTrialsNode is not null;
        _limitAt = maxTrialsNode is not null ? (Line(maxTrialsNode), Column(maxTrialsNode), "budget.max_trials") : null;
        if (top.TryGetValue("run_cap", out var capNode))
        {
            _limitAt = (Line(capNode), Column(capNode), "run_cap");
            var cap = Try(() => (int?)Integer(capNode, "run_cap", 1, 10_000_000));
            if (cap is { } runCap)
            {
                // Compared only with a max_trials that is itself valid (an invalid one has its own error).
                if (maxTrialsNode is YamlScalarNode { Value: var given } && int.TryParse(given, NumberStyles.Integer, CultureInfo.InvariantCulture, out var maxTrials)
                    && maxTrials == budget.MaxTrials && budget.MaxTrials != runCap)
                {
                    _errors.Add(Issue(capNode, "run_cap", $"is {runCap} but budget.max_trials (line {Line(maxTrialsNode)}) is {budget.MaxTrials}; they are the same limit, give one."));
                }

                budget = budget with { MaxTrials = runCap };
            }
        }

        var engine = top.TryGetValue("engine", out var engineNode) ? Try(() => Choice(engineNode, "engine", ["native", "torch"])) ?? "native" : "native";
        var device = top.TryGetValue("device", out var deviceNode) ? Try(() => Choice(deviceNode, "device", ["cpu", "cuda"])) ?? "cpu" : "cpu";
        if (device == "cuda" && engine == "native" && !_program)
        {
            _errors.Add(Issue(deviceNode!, "device", "cuda needs engine: torch; the native engine runs on the CPU."));
        }

        var bayes = new BayesSettings();
        if (top.TryGetValue("bayes", out var bayesNode))
        {
            bayes = Try(() => ReadBayes(bayesNode)) ?? bayes;
            if (method is not null and not "bayes")
            {
                Warn(bayesNode, "bayes", $"is used only by method: bayes (this sweep's method is {method}).");
            }
        }

        var program = _program ? Try(() => ReadProgram(top)) : null;
        if (!_program)
        {
            foreach (var key in new[] { "command", "trial" })
            {
                if (top.TryGetValue(key, out var node))
                {
                    _errors.Add(Issue(node, key, "belongs to a sweep that runs its own program: add program: (e.g. program: train.py)."));
                }
            }
        }
        else if (top.TryGetValue("data", out var programData))
        {
            Warn(programData, "data", "is for the built-in models; a program reads its own data, so this block is not used.");
        }

        if (method == "grid")
        {
            foreach (var (key, domain) in parameters.Select(kv => ($"parameters.{kv.Key}", kv.Value))
                .Concat(conditions.SelectMany((c, i) => c.Parameters.Select(kv => ($"conditions[{i}].parameters.{kv.Key}", kv.Value)))))
            {
                if (domain.GridCount is null)
                {
                    var kind = domain is Distribution dist ? dist.Kind : "this distribution";
                    _errors.Add(new SweepFileIssue(_file, domain.Line, domain.Column, key,
                        $"a grid needs values (or int_uniform or q_uniform); {kind} has no grid. Use method: random."));
                }

                if (domain is ValueList { Probabilities: not null })
                {
                    _errors.Add(new SweepFileIssue(_file, domain.Line, domain.Column, key + ".probabilities", "a grid tries every value once, so probabilities mean nothing in it (W&B refuses them too); use method: random."));
                }
            }
        }

        var definition = new SweepDefinition
        {
            Name = name ?? "",
            Description = top.TryGetValue("description", out var d) ? Try(() => Scalar(d, "description")) : null,
            Project = top.TryGetValue("project", out var p) ? Try(() => Scalar(p, "project")) : null,
            Entity = top.TryGetValue("entity", out var en) ? Try(() => Scalar(en, "entity")) : null,
            Method = method ?? "",
            Metric = metric ?? "val_accuracy",
            Goal = goal ?? "maximize",
            Engine = engine,
            Device = device,
            Bayes = bayes,
            Program = program,
            Data = !_program && top.TryGetValue("data", out var dataNode) ? Try(() => ReadData(dataNode)) ?? new DataSettings() : new DataSettings(),
            Parameters = parameters,
            Conditions = conditions,
            Budget = budget,
            EarlyTerminate = top.TryGetValue("early_terminate", out var et) ? Try(() => ReadEarlyTerminate(et)) : null,
            Seed = top.TryGetValue("seed", out var seedNode) ? Try(() => (ulong)Integer(seedNode, "seed", 0, long.MaxValue)) : 0,
            Warnings = _warnings,
            SourceText = text,
        };
        if (definition.EarlyTerminate is { Type: EarlyTerminate.Hyperband } hyperband && et is not null && MostEpochs(parameters, conditions) is { } most
            && hyperband.Bands() is [var first, ..] && first >= most)
        {
            // A trial is judged at a band it reaches before its last epoch (its last epoch ends it anyway).
            Warn(et, "early_terminate", $"hyperband's first band is at epoch {first}, and no trial trains more than {Fmt(most)} epochs (parameters.epochs): no trial is ever judged or stopped early.");
        }

        ThrowIfErrors();
        return definition;
    }

    /// <summary>The most epochs any trial may be given (the largest value of epochs, in the parameters and the conditions' blocks), or null when epochs is not a parameter.</summary>
    private static double? MostEpochs(Dictionary<string, ParameterDomain> parameters, IReadOnlyList<ConditionalBlock> conditions)
    {
        var domains = conditions.Select(c => c.Parameters.GetValueOrDefault("epochs")).Append(parameters.GetValueOrDefault("epochs")).OfType<ParameterDomain>().ToList();
        if (domains.Count == 0)
        {
            return null;
        }

        double? most = null;
        foreach (var domain in domains)
        {
            double? top = domain switch
            {
                Distribution d => d.Max,
                _ when domain.GridValues is { } values => values.Where(v => v is long or double or int).Select(ParamValue.AsDouble).DefaultIfEmpty(double.NaN).Max(),
                _ => null,
            };
            if (top is not { } t || double.IsNaN(t))
            {
                return null;
            }

            most = Math.Max(most ?? t, t);
        }

        return most;
    }

    private void ThrowIfErrors()
    {
        if (_errors.Count + _missing.Count > 0)
        {
            throw new SweepFileException([.. _errors.Distinct().OrderBy(e => e.Line).ThenBy(e => e.Column), .. _missing]);
        }
    }

    /// <summary>The study name a file without name: gets: its file name without the extension, other characters as '-'.</summary>
    private string NameFromFile()
    {
        var stem = Path.GetFileNameWithoutExtension(_file.Replace('\\', '/').Split('/')[^1]);
        var cleaned = new string([.. stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '-')]).Trim('-', '.', '_');
        return cleaned.Length > 100 ? cleaned[..100] : cleaned;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex NameRegex();

    /// <summary>W&amp;B's rule for parameter names, with dots for nesting.</summary>
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.-]*$")]
    private static partial Regex ParameterNameRegex();

    private string Choice(YamlNode node, string key, string[] allowed)
    {
        var value = Scalar(node, key);
        return allowed.Contains(value) ? value : throw Error(node, key, $"must be {string.Join(" or ", allowed)} (got {value}){Suggest.DidYouMean(value, allowed)}.");
    }

    private void ReadModelBlock(YamlNode node, Dictionary<string, ParameterDomain> parameters)
    {
        if (node is YamlScalarNode)
        {
            parameters["model"] = new FixedValue(Checked("model", Value(node, "model"), node, "model")) { Line = Line(node), Column = Column(node) };
            return;
        }

        var keys = Keys(node, "model", ["family", .. Hyperparameters.Known.Keys.Where(k => k != "model")]);
        foreach (var (key, valueNode) in keys)
        {
            var name = key == "family" ? "model" : key;
            Try(() => parameters[name] = new FixedValue(Checked(name, Value(valueNode, $"model.{key}"), valueNode, $"model.{key}")) { Line = Line(valueNode), Column = Column(valueNode) });
        }
    }

    /// <summary>
    /// The parameters of a <c>parameters:</c> mapping, flattened: W&amp;B's nested <c>{name: {parameters: {...}}}</c>
    /// becomes <c>name.inner</c>. A parameter's error is kept and the next parameter is read.
    /// </summary>
    private List<(string Name, ParameterDomain Domain, YamlNode KeyNode)> ReadParameters(YamlNode node, string path, string prefix)
    {
        var result = new List<(string, ParameterDomain, YamlNode)>();
        var keys = Try(() => Keys(node, path, null));
        if (keys is null)
        {
            return result;
        }

        if (keys.Count == 0 && prefix.Length == 0 && node is YamlMappingNode { Children.Count: 0 })
        {
            _errors.Add(Issue(node, path, "is empty; give at least one parameter."));
        }

        foreach (var (name, spec) in keys)
        {
            var key = $"{path}.{name}";
            var keyNode = KeyNode(node, name);
            var full = prefix + name;
            if (spec is YamlMappingNode nested && nested.Children.Keys.Any(k => k is YamlScalarNode { Value: "parameters" }))
            {
                if (nested.Children.Count > 1)
                {
                    _errors.Add(Issue(keyNode, key, "a nested parameter has only parameters: inside (W&B's {name: {parameters: {...}}})."));
                    continue;
                }

                result.AddRange(ReadParameters(nested.Children[new YamlScalarNode("parameters")], key + ".parameters", full + "."));
                continue;
            }

            if (_program)
            {
                if (!ParameterNameRegex().IsMatch(full))
                {
                    _errors.Add(Issue(keyNode, key, "a parameter's name starts with a letter or '_' and has only letters, digits, '_', '.' and '-' (W&B's rule)."));
                    continue;
                }
            }
            else if (!Hyperparameters.Known.ContainsKey(full))
            {
                _errors.Add(Issue(keyNode, key, $"unknown hyperparameter{Suggest.DidYouMean(full, Hyperparameters.Known.Keys)}; the built-in models know {string.Join(", ", Hyperparameters.Known.Keys)} (a sweep with a program: takes any name)."));
                continue;
            }

            var domain = Try(() => ReadDomain(full, spec, key));
            if (domain is not null)
            {
                result.Add((full, domain with { Line = Line(keyNode), Column = Column(keyNode) }, keyNode));
            }
        }

        return result;
    }

    private ParameterDomain ReadDomain(string name, YamlNode node, string key)
    {
        var keys = Keys(node, key, _domainKeys);
        if (keys.Count == 0 && node is YamlMappingNode { Children.Count: > 0 })
        {
            throw new AlreadyReported();
        }

        var line = Line(node);
        var hp = _program ? null : Hyperparameters.Known[name];
        var kind = keys.TryGetValue("distribution", out var distNode) ? Scalar(distNode, key + ".distribution") : null;
        if (kind is not null && !Distribution.AllKinds.Contains(kind))
        {
            throw Error(distNode!, key + ".distribution", $"must be one of {string.Join(", ", Distribution.AllKinds)} (got {kind}){Suggest.DidYouMean(kind, Distribution.AllKinds)}.");
        }

        void Only(string what, string[] allowed)
        {
            var extra = keys.Keys.Where(k => !allowed.Contains(k)).ToList();
            if (extra.Count > 0)
            {
                throw Error(KeyNode(node, extra[0]), $"{key}.{extra[0]}", $"{what} takes {string.Join(", ", allowed)}, not {string.Join(", ", extra)}.");
            }
        }

        if (keys.TryGetValue("value", out var valueNode))
        {
            if (keys.Count > 1 && !(keys.Count == 2 && kind == Distribution.Constant))
            {
                throw Error(node, key, "value cannot be combined with values or a distribution.");
            }

            return new FixedValue(Checked(name, Value(valueNode, key + ".value"), valueNode, key + ".value")) { Line = line };
        }

        if (kind == Distribution.Constant)
        {
            throw Error(distNode!, key, "distribution: constant needs value: x.");
        }

        if (keys.TryGetValue("values", out var valuesNode))
        {
            if (keys.Keys.Any(k => k is not ("values" or "probabilities" or "distribution")) || (kind is not null and not Distribution.Categorical))
            {
                throw Error(node, key, "values cannot be combined with value or a distribution.");
            }

            if (valuesNode is not YamlSequenceNode seq)
            {
                throw Error(valuesNode, key + ".values", "must be a list, e.g. [1e-3, 1e-4].");
            }

            if (seq.Children.Count == 0)
            {
                throw Error(valuesNode, key + ".values", "is empty; give at least one value.");
            }

            var values = seq.Children.Select((n, i) => Checked(name, Value(n, $"{key}.values[{i}]"), n, $"{key}.values[{i}]")).ToList();
            var duplicate = values.GroupBy(ParamValue.Format).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
            {
                throw Error(valuesNode, key + ".values", $"lists {duplicate.Key} twice.");
            }

            IReadOnlyList<double>? probabilities = null;
            if (keys.TryGetValue("probabilities", out var probNode))
            {
                if (probNode is not YamlSequenceNode probSeq || probSeq.Children.Count != values.Count)
                {
                    throw Error(probNode, key + ".probabilities", $"must be a list of {values.Count} numbers, one per value.");
                }

                probabilities = [.. probSeq.Children.Select((n, i) => Number(n, $"{key}.probabilities[{i}]"))];
                var bad = probabilities.Select((v, i) => (v, i)).FirstOrDefault(x => !(x.v >= 0) || !double.IsFinite(x.v), (-1, -1));
                if (bad.i >= 0)
                {
                    throw Error(probSeq.Children[bad.i], $"{key}.probabilities[{bad.i}]", $"must be a number >= 0 (got {ParamValue.Format(bad.v)}).");
                }

                if (Math.Abs(probabilities.Sum() - 1) > 1e-6)
                {
                    throw Error(probNode, key + ".probabilities", $"must sum to 1 (they sum to {Fmt(probabilities.Sum())}).");
                }
            }

            return new ValueList(values) { Line = line, Probabilities = probabilities };
        }

        if (kind == Distribution.Categorical)
        {
            throw Error(distNode!, key, "distribution: categorical needs values: [...].");
        }

        if (keys.ContainsKey("probabilities"))
        {
            throw Error(KeyNode(node, "probabilities"), key + ".probabilities", "goes with values: (a categorical parameter).");
        }

        if (hp is not null && hp.Type is not (ValueType.Float or ValueType.Int))
        {
            throw Error(node, key, $"{name} takes value or values, not a distribution.");
        }

        if (kind is null)
        {
            if (!keys.ContainsKey("min") || !keys.ContainsKey("max"))
            {
                throw Error(node, key, "needs value, values, or a distribution with min and max.");
            }

            // W&B's rule: whole-number min and max mean int_uniform, otherwise uniform (a built-in whole-number parameter is always int_uniform).
            var wholeBounds = ScalarValue(keys["min"], key + ".min") is long && ScalarValue(keys["max"], key + ".max") is long;
            kind = hp?.Type == ValueType.Int || wholeBounds ? Distribution.IntUniform : Distribution.Uniform;
            if (hp?.Type == ValueType.Float && wholeBounds)
            {
                Warn(node, key, $"min and max are whole numbers, so this is int_uniform (W&B's rule) and {name} takes only whole values; write {Text(keys["min"])}.0 for a uniform range.");
            }
        }

        if (Distribution.IsGaussian(kind))
        {
            Only(kind, Distribution.IsQuantized(kind) ? ["distribution", "mu", "sigma", "q"] : ["distribution", "mu", "sigma"]);
        }
        else
        {
            Only(kind, Distribution.TakesQ(kind) ? ["distribution", "min", "max", "q"] : ["distribution", "min", "max"]);
            foreach (var bound in new[] { "min", "max" })
            {
                if (!keys.ContainsKey(bound))
                {
                    throw Error(node, key, $"{kind} needs min and max.");
                }
            }
        }

        double Finite(string part, double fallback)
        {
            if (!keys.TryGetValue(part, out var partNode))
            {
                return fallback;
            }

            var value = Number(partNode, $"{key}.{part}");
            return double.IsFinite(value) ? value : throw Error(partNode, $"{key}.{part}", $"must be a finite number (got {ParamValue.Format(value)}).");
        }

        var min = Finite("min", 0);
        var max = Finite("max", 0);
        var mu = Finite("mu", 0);
        var sigma = Finite("sigma", 1);
        if (sigma < 0)
        {
            throw Error(keys["sigma"], key + ".sigma", $"must be >= 0 (got {Fmt(sigma)}).");
        }

        if (min > max)
        {
            throw Error(keys["min"], key + ".min", $"min ({Fmt(min)}) is greater than max ({Fmt(max)}).");
        }

        if (kind is Distribution.LogUniformValues or Distribution.InvLogUniformValues or Distribution.QLogUniformValues && min <= 0)
        {
            throw Error(keys["min"], key + ".min", $"{kind} needs min > 0 (got {Fmt(min)}): its min and max are the values, and a log needs them positive.");
        }

        if (kind is Distribution.LogUniform or Distribution.QLogUniform or Distribution.InvLogUniform)
        {
            CheckExponents(kind, min, max, keys, key);
        }

        if (hp?.Type == ValueType.Int && kind != Distribution.IntUniform && !(Distribution.IsQuantized(kind) && keys.TryGetValue("q", out var wq) && ScalarValue(wq, key + ".q") is long))
        {
            throw Error(distNode ?? node, key + ".distribution", $"{name} is a whole number: use int_uniform (or a q_ distribution with a whole q).");
        }

        if (kind == Distribution.IntUniform)
        {
            foreach (var (bound, value) in new[] { ("min", min), ("max", max) })
            {
                if (value != Math.Floor(value))
                {
                    throw Error(keys[bound], $"{key}.{bound}", $"int_uniform needs whole-number min and max (got {Text(keys[bound])}).");
                }

                // The file's text, not the double: 9007199254740993 reads as the double 2^53.
                if (Math.Abs(value) > Distribution.MaxExactInteger || ScalarValue(keys[bound], $"{key}.{bound}") is long exact && (exact > (long)Distribution.MaxExactInteger || exact < -(long)Distribution.MaxExactInteger))
                {
                    throw Error(keys[bound], $"{key}.{bound}",
                        $"{Text(keys[bound])} is beyond ±2^53 (±9007199254740992): numbers in a sweep file are read as doubles, which cannot hold every whole number that large, so int_uniform's min and max must lie within ±2^53.");
                }
            }
        }

        double? q = Distribution.IsQuantized(kind) ? 1.0 : null;
        var wholeQ = false;
        if (keys.TryGetValue("q", out var qNode))
        {
            q = Number(qNode, key + ".q");
            wholeQ = Distribution.IsQuantized(kind) && ScalarValue(qNode, key + ".q") is long;
            if (!double.IsFinite(q.Value) || !(q > 0) || (kind == Distribution.IntUniform && q != Math.Floor(q.Value)))
            {
                throw Error(qNode, key + ".q", $"must be a finite number > 0{(kind == Distribution.IntUniform ? ", and whole for int_uniform" : "")} (got {ParamValue.Format(q.Value)}).");
            }
        }

        var distribution = new Distribution(kind, min, max, q) { Mu = mu, Sigma = sigma, WholeQ = wholeQ, Line = line };
        if (qNode is not null && kind != Distribution.IntUniform || Distribution.IsQuantized(kind))
        {
            var count = distribution.QuantizedCount ?? 2;
            var countAt = qNode ?? distNode ?? node;
            var (from, to) = distribution.Unrounded();
            if (!double.IsFinite(count))
            {
                throw Error(countAt, key + ".q", $"q = {Fmt(q!.Value)} is too small to round values in [{Fmt(from)}, {Fmt(to)}] to (min / q or max / q is past the largest double).");
            }

            if (count < 2)
            {
                var which = Distribution.IsQuantized(kind) ? "the multiples of q that draws round to" : "the multiples of q between min and max";
                var range = $"[{Fmt(from)}, {Fmt(to)}]";
                var leaves = count == 1 ? $"leaves 1 value in {range} ({which}), so every trial would get that value"
                    : $"leaves no value in {range} to round to ({which})";
                throw Error(countAt, key + ".q", $"q = {Fmt(q!.Value)} {leaves}; q must leave at least two values: use a smaller q (or value: for a constant).");
            }
        }
        else if (kind == Distribution.IntUniform && q is not null && distribution.GridCount < 2)
        {
            throw Error(qNode!, key + ".q", $"q = {Fmt(q.Value)} leaves 1 value in [{Fmt(min)}, {Fmt(max)}] (min, min + q, ... up to max), so every trial would get that value; q must leave at least two values: use a smaller q (or value: for a constant).");
        }

        var (low, high) = distribution.Extremes;
        if (!double.IsFinite(low) || !double.IsFinite(high))
        {
            throw Error(node, key, $"{kind} can draw values past the largest double ({Fmt(low)} to {Fmt(high)}); narrow it.");
        }

        if (distribution.Whole && (Math.Abs(low) > Distribution.MaxExactInteger || Math.Abs(high) > Distribution.MaxExactInteger))
        {
            throw Error(qNode ?? node, key, $"{kind} with a whole q draws whole numbers, which must stay within ±2^53 (draws reach {Fmt(low)} to {Fmt(high)}).");
        }

        if (hp is not null)
        {
            foreach (var (bound, value) in new[] { ("min", low), ("max", high) })
            {
                var problem = hp.Check(distribution.Whole ? (object)(long)value : value);
                if (problem is not null)
                {
                    var at = keys.TryGetValue(bound, out var boundNode) ? boundNode : node;
                    var where = keys.ContainsKey(bound) && value == (bound == "min" ? min : max) ? "" : $" ({kind} draws from {Fmt(low)} to {Fmt(high)})";
                    throw Error(at, keys.ContainsKey(bound) ? $"{key}.{bound}" : key, $"{name} {problem}{where}.");
                }
            }
        }

        return distribution;
    }

    /// <summary>
    /// log_uniform's min and max are natural-log exponents (W&amp;B's meaning). Bounds that only make sense as the values
    /// themselves (the old reading, e.g. 1e-5..1e-2, whose exponents give values all near 1.0) are an error naming
    /// log_uniform_values, and so are exponents whose exp is past the largest double.
    /// </summary>
    private void CheckExponents(string kind, double min, double max, Dictionary<string, YamlNode> keys, string key)
    {
        var values = kind.Replace("log_uniform", "log_uniform_values", StringComparison.Ordinal);
        if (Math.Max(Math.Abs(min), Math.Abs(max)) > 709)
        {
            var at = Math.Abs(max) >= Math.Abs(min) ? "max" : "min";
            throw Error(keys[at], $"{key}.{at}", $"{kind}'s min and max are natural-log exponents (values exp(min)..exp(max)), and exp({Fmt(at == "max" ? max : min)}) is past the largest double; for bounds that are the values themselves use distribution: {values}.");
        }

        if (min > 0 && max <= 1 && max / min >= 10)
        {
            var (low, high) = kind == Distribution.InvLogUniform ? (Math.Exp(-max), Math.Exp(-min)) : (Math.Exp(min), Math.Exp(max));
            throw Error(keys["min"], $"{key}.min",
                $"{kind}'s min and max are natural-log exponents (W&B's meaning): [{Fmt(min)}, {Fmt(max)}] gives values from {Fmt(low)} to {Fmt(high)}, all near 1.0. These bounds look like the values themselves: use distribution: {values} (or exponents, e.g. min: {Fmt(Math.Log(min))}, max: {Fmt(Math.Log(max))}).");
        }
    }

    /// <summary>
    /// Warns about a condition's values that the parameter never takes (a value outside its list, or any one value of a
    /// continuous range, which a draw equals almost never), and about values given twice.
    /// </summary>
    private void WarnNeverMatches(YamlNode node, string key, string name, ParameterDomain domain, IReadOnlyList<object> tested)
    {
        var texts = tested.Select(ParamValue.Format).ToList();
        var distinct = texts.Distinct().ToList();
        if (distinct.Count < texts.Count)
        {
            Warn(node, key, "lists a value twice.");
        }

        if (domain.GridCount is not null)
        {
            var never = distinct.Where(t => !domain.GridContains(t)).ToList();
            if (never.Count > 0)
            {
                var values = domain.GridCount <= 20 ? $" ({string.Join(", ", domain.GridValues!.Select(ParamValue.Format))})" : "";
                Warn(node, key, $"{name} never takes {string.Join(" or ", never)}{values}" + (never.Count == distinct.Count ? ": this block never applies." : "."));
            }
        }
        else if (domain is Distribution { Kind: not (Distribution.IntUniform or Distribution.QUniform or Distribution.QLogUniform or Distribution.QLogUniformValues or Distribution.QNormal or Distribution.QLogNormal) })
        {
            Warn(node, key, $"{name} is drawn from a continuous range, which a draw equals almost never: this block almost never applies (test a parameter with values, or use q_ distributions).");
        }
    }

    private List<ConditionalBlock> ReadConditions(YamlNode node, Dictionary<string, ParameterDomain> parameters)
    {
        if (node is not YamlSequenceNode seq)
        {
            throw Error(node, "conditions", "must be a list of {when: {...}, parameters: {...}} blocks.");
        }

        var blocks = new List<ConditionalBlock>();
        for (var i = 0; i < seq.Children.Count; i++)
        {
            var path = $"conditions[{i}]";
            var item = seq.Children[i];
            Try(() =>
            {
                var keys = Keys(item, path, ["when", "parameters"]);
                if (!keys.TryGetValue("when", out var whenNode) || !keys.TryGetValue("parameters", out var paramsNode))
                {
                    throw Error(item, path, "needs both when and parameters.");
                }

                var when = new Dictionary<string, IReadOnlyList<object>>();
                foreach (var (name, valueNode) in Keys(whenNode, path + ".when", null))
                {
                    if (!parameters.ContainsKey(name))
                    {
                        _errors.Add(Issue(valueNode, $"{path}.when.{name}", $"{name} is not a parameter of this sweep (conditions can only test unconditional parameters){Suggest.DidYouMean(name, parameters.Keys)}."));
                        continue;
                    }

                    Try(() => when[name] = valueNode is YamlSequenceNode list
                        ? list.Children.Select((n, k) => Checked(name, Value(n, $"{path}.when.{name}[{k}]"), n, $"{path}.when.{name}[{k}]")).ToList()
                        : [Checked(name, Value(valueNode, $"{path}.when.{name}"), valueNode, $"{path}.when.{name}")]);
                    if (when.TryGetValue(name, out var tested))
                    {
                        WarnNeverMatches(valueNode, $"{path}.when.{name}", name, parameters[name], tested);
                    }
                }

                var blockParams = new Dictionary<string, ParameterDomain>();
                foreach (var (name, domain, keyNode) in ReadParameters(paramsNode, path + ".parameters", ""))
                {
                    if (parameters.ContainsKey(name))
                    {
                        _errors.Add(Issue(keyNode, $"{path}.parameters.{name}", $"{name} is already an unconditional parameter."));
                        continue;
                    }

                    blockParams[name] = domain;
                }

                blocks.Add(new ConditionalBlock(when, blockParams, Line(item)));
            });
        }

        return blocks;
    }

    private (string?, string?) ReadMetric(YamlNode node)
    {
        var keys = Keys(node, "metric", ["name", "goal"], ["target", "impute", "impute_while_running"]);
        if (!keys.TryGetValue("name", out var n))
        {
            throw Error(node, "metric.name", "is required: the metric that picks the best trial (e.g. val_accuracy).");
        }

        var name = Scalar(n, "metric.name");
        string goal;
        if (keys.TryGetValue("goal", out var g))
        {
            goal = Scalar(g, "metric.goal");
            if (goal is not ("minimize" or "maximize"))
            {
                throw Error(g, "metric.goal", $"must be minimize or maximize (got {goal}){Suggest.DidYouMean(goal, ["minimize", "maximize"])}.");
            }
        }
        else
        {
            goal = "minimize";
            if (name.Contains("acc", StringComparison.OrdinalIgnoreCase))
            {
                Warn(n, "metric.goal", $"is not given, so {name} is minimized (W&B's default goal); write goal: maximize to pick the most accurate trial.");
            }
        }

        if (!_program && !SweepDefinition.BuiltInMetrics.Contains(name))
        {
            var why = name.StartsWith("test", StringComparison.Ordinal) ? " (the test split is never used for selection)" : "";
            throw Error(n, "metric.name", $"the built-in models record {string.Join(", ", SweepDefinition.BuiltInMetrics)}, not {name}{why}{Suggest.DidYouMean(name, SweepDefinition.BuiltInMetrics)}; a sweep with a program: may select by any metric its program prints.");
        }

        return (name, goal);
    }

    private DataSettings ReadData(YamlNode node)
    {
        var keys = Keys(node, "data", ["dataset", "path", "train_size", "val_size", "test_size"]);
        var data = new DataSettings();
        if (keys.TryGetValue("dataset", out var ds) && Scalar(ds, "data.dataset") != "cifar10")
        {
            _errors.Add(Issue(ds, "data.dataset", "only cifar10 is supported."));
        }

        data = data with
        {
            Path = keys.TryGetValue("path", out var p) ? Try(() => Scalar(p, "data.path")) : null,
            TrainSize = keys.TryGetValue("train_size", out var t) ? Try(() => (int?)Integer(t, "data.train_size", 1, 50_000)) ?? data.TrainSize : data.TrainSize,
            ValSize = keys.TryGetValue("val_size", out var v) ? Try(() => (int?)Integer(v, "data.val_size", 1, 50_000)) ?? data.ValSize : data.ValSize,
            TestSize = keys.TryGetValue("test_size", out var te) ? Try(() => (int?)Integer(te, "data.test_size", 1, 10_000)) ?? data.TestSize : data.TestSize,
        };
        if (data.TrainSize + data.ValSize > 50_000)
        {
            throw Error(node, "data", $"train_size + val_size = {data.TrainSize + data.ValSize} exceeds the 50,000 CIFAR-10 training images.");
        }

        return data;
    }

    private Budget ReadBudget(YamlNode node)
    {
        var keys = Keys(node, "budget", ["max_trials", "max_concurrent", "retries"]);
        var budget = new Budget();
        return budget with
        {
            MaxTrials = keys.TryGetValue("max_trials", out var m) ? Try(() => (int?)Integer(m, "budget.max_trials", 1, 10_000_000)) ?? budget.MaxTrials : budget.MaxTrials,
            MaxConcurrent = keys.TryGetValue("max_concurrent", out var c) ? Try(() => (int?)Integer(c, "budget.max_concurrent", 1, 100_000)) : null,
            Retries = keys.TryGetValue("retries", out var r) ? Try(() => (int?)Integer(r, "budget.retries", 0, 100)) ?? budget.Retries : budget.Retries,
        };
    }

    private BayesSettings ReadBayes(YamlNode node)
    {
        var keys = Keys(node, "bayes", ["startup_trials", "candidates"]);
        var bayes = new BayesSettings();
        return bayes with
        {
            StartupTrials = keys.TryGetValue("startup_trials", out var s) ? Try(() => (int?)Integer(s, "bayes.startup_trials", 0, 1_000_000)) ?? bayes.StartupTrials : bayes.StartupTrials,
            Candidates = keys.TryGetValue("candidates", out var c) ? Try(() => (int?)Integer(c, "bayes.candidates", 1, 1_000_000)) ?? bayes.Candidates : bayes.Candidates,
        };
    }

    private static readonly string[] _medianKeys = ["warmup_epochs", "min_trials"];
    private static readonly string[] _hyperbandKeys = ["min_iter", "max_iter", "s", "eta", "strict"];

    private EarlyTerminate ReadEarlyTerminate(YamlNode node)
    {
        var keys = Keys(node, "early_terminate", ["type", .. _medianKeys, .. _hyperbandKeys]);
        var et = new EarlyTerminate();
        var type = keys.TryGetValue("type", out var t) ? Scalar(t, "early_terminate.type") : et.Type;
        string[] types = [EarlyTerminate.Median, EarlyTerminate.Hyperband, EarlyTerminate.None];
        if (!types.Contains(type))
        {
            throw Error(t!, "early_terminate.type", $"must be median, hyperband or none (got {type}){Suggest.DidYouMean(type, types)}.");
        }

        var foreign = type == EarlyTerminate.Hyperband ? _medianKeys : type == EarlyTerminate.Median ? _hyperbandKeys : [.. _medianKeys, .. _hyperbandKeys];
        foreach (var key in keys.Keys.Where(foreign.Contains))
        {
            _errors.Add(Issue(KeyNode(node, key), $"early_terminate.{key}", $"belongs to {(_medianKeys.Contains(key) ? "type: median" : "type: hyperband")}, not to type: {type}."));
        }

        int? Int(string key, long min, long max) => keys.TryGetValue(key, out var n) ? Try(() => (int?)Integer(n, $"early_terminate.{key}", min, max)) : null;
        if (type != EarlyTerminate.Hyperband)
        {
            return et with
            {
                Type = type,
                WarmupEpochs = Int("warmup_epochs", 0, 1_000_000) ?? et.WarmupEpochs,
                MinTrials = Int("min_trials", 1, 1_000_000) ?? et.MinTrials,
            };
        }

        var eta = et.Eta;
        if (keys.TryGetValue("eta", out var etaNode))
        {
            eta = Try(() => (double?)Number(etaNode, "early_terminate.eta")) ?? et.Eta;
            if (!(eta > 1) || !double.IsFinite(eta))
            {
                _errors.Add(Issue(etaNode, "early_terminate.eta", $"must be a number > 1 (got {ParamValue.Format(eta)}): each band keeps the best 1/eta of the trials."));
                eta = et.Eta;
            }
        }

        var strict = false;
        if (keys.TryGetValue("strict", out var strictNode))
        {
            if (Try(() => ScalarValue(strictNode, "early_terminate.strict")) is bool b)
            {
                strict = b;
            }
            else
            {
                _errors.Add(Issue(strictNode, "early_terminate.strict", $"must be true or false (got {Text(strictNode)})."));
            }
        }

        var minIter = Int("min_iter", 1, 1_000_000);
        var maxIter = Int("max_iter", 1, 1_000_000);
        var s = Int("s", 1, 100);
        if (keys.ContainsKey("min_iter") == keys.ContainsKey("max_iter"))
        {
            throw Error(keys.ContainsKey("max_iter") ? KeyNode(node, "max_iter") : node, "early_terminate",
                "hyperband needs exactly one of min_iter (the first band; then min_iter·eta, min_iter·eta², ...) or max_iter with s (s bands counted back from max_iter), as W&B does.");
        }

        if (keys.ContainsKey("max_iter") && !keys.ContainsKey("s"))
        {
            throw Error(KeyNode(node, "max_iter"), "early_terminate.s", "max_iter needs s: how many bands to count back from max_iter (max_iter/eta, max_iter/eta², ...).");
        }

        if (keys.ContainsKey("min_iter") && keys.TryGetValue("s", out var sNode))
        {
            Warn(sNode, "early_terminate.s", "is used only with max_iter; with min_iter the bands go on from min_iter by factors of eta.");
        }

        var result = et with { Type = type, MinIter = minIter, MaxIter = maxIter, S = s, Eta = eta, Strict = strict };
        if (maxIter is { } mi && result.Bands().Count == 0)
        {
            throw Error(KeyNode(node, "max_iter"), "early_terminate.max_iter", $"max_iter / eta = {Fmt(mi / eta)} is below 1, so hyperband has no band; raise max_iter or lower eta.");
        }

        return result;
    }

    private ProgramSpec ReadProgram(Dictionary<string, YamlNode> top)
    {
        var programNode = top["program"];
        var program = Scalar(programNode, "program");
        if (program.Trim().Length == 0)
        {
            throw Error(programNode, "program", "is empty; name the training script, e.g. train.py.");
        }

        var spec = new ProgramSpec { Program = program };
        if (top.TryGetValue("command", out var commandNode))
        {
            var command = Try(() =>
            {
                if (commandNode is not YamlSequenceNode seq || seq.Children.Count == 0)
                {
                    throw Error(commandNode, "command", "must be a non-empty list, e.g. [\"${env}\", \"${interpreter}\", \"${program}\", \"${args}\"].");
                }

                var parts = new List<string>();
                for (var i = 0; i < seq.Children.Count; i++)
                {
                    var part = Scalar(seq.Children[i], $"command[{i}]");
                    foreach (Match m in MacroRegex().Matches(part))
                    {
                        if (!ProgramSpec.Macros.Contains(m.Value) && !m.Value.StartsWith("${envvar:", StringComparison.Ordinal))
                        {
                            _errors.Add(Issue(seq.Children[i], $"command[{i}]", $"unknown macro {m.Value}{Suggest.DidYouMean(m.Value, ProgramSpec.Macros)}; known: {string.Join(", ", ProgramSpec.Macros)}, ${{envvar:NAME}}."));
                        }
                    }

                    parts.Add(part);
                }

                return parts;
            });
            spec = spec with { Command = command ?? spec.Command };
        }

        if (top.TryGetValue("trial", out var trialNode))
        {
            var keys = Keys(trialNode, "trial", ["workdir", "env", "timeout_seconds"]);
            var env = new Dictionary<string, string>();
            if (keys.TryGetValue("env", out var envNode))
            {
                foreach (var (k, v) in Keys(envNode, "trial.env", null))
                {
                    Try(() => env[k] = Scalar(v, $"trial.env.{k}"));
                }
            }

            spec = spec with
            {
                WorkDir = keys.TryGetValue("workdir", out var w) ? Try(() => Scalar(w, "trial.workdir")) : null,
                Env = env,
                TimeoutSeconds = keys.TryGetValue("timeout_seconds", out var ts) ? Try(() => (int?)Integer(ts, "trial.timeout_seconds", 1, 100_000_000)) : null,
            };
        }

        return spec;
    }

    [GeneratedRegex(@"\$\{[^}]*\}")]
    private static partial Regex MacroRegex();

    /// <summary>
    /// Checks that the search yields trials within the budget and that every trial is a valid configuration. A grid
    /// without run_cap or budget.max_trials runs whole (as W&amp;B's does): its budget becomes its size.
    /// </summary>
    private SweepDefinition CheckTrials(SweepDefinition definition)
    {
        if (definition.Method == "grid")
        {
            var axes = Axes(definition).ToList();
            var shape = SearchSpace.CountGrid(definition);
            if (shape.Trials > SearchSpace.MaxGridTrials)
            {
                var (largestKey, largest) = axes.MaxBy(a => a.Domain.GridCount!.Value);
                throw new SweepFileException(_file, largest.Line, largest.Column, largestKey,
                    $"the grid has {Count(shape.Trials)} trials, more than the {Count(SearchSpace.MaxGridTrials)} a grid may have. {DescribeAxes(definition, shape)}. " +
                    "Shrink the largest axes (fewer values, a larger q) or use method: random.");
            }

            if (!_budgetGiven)
            {
                definition = definition with { Budget = definition.Budget with { MaxTrials = (int)shape.Trials } };
            }
            else if (shape.Trials > definition.Budget.MaxTrials)
            {
                var (line, column, key) = _limitAt ?? (1, 1, "budget.max_trials");
                throw new SweepFileException(_file, line, column, key,
                    $"the grid has {shape.Trials} trials, more than {key} = {definition.Budget.MaxTrials}. Raise the budget or shrink the grid.");
            }
        }

        if (definition.Program is not null)
        {
            return definition;
        }

        var sampler = definition.Method == "grid" ? (ISampler)new GridSampler() : new RandomSampler();
        foreach (var trial in sampler.Propose(definition, Math.Min(definition.Budget.MaxTrials, 2_000)))
        {
            try
            {
                Hyperparameters.Resolve(trial.Parameters, trial.Seed);
            }
            catch (ArgumentException e)
            {
                var key = e.Message.Split(':')[0];
                var domain = definition.Parameters.TryGetValue(key, out var d) ? d
                    : definition.Conditions.SelectMany(c => c.Parameters).FirstOrDefault(kv => kv.Key == key).Value;
                throw new SweepFileException(_file, domain?.Line ?? 1, domain?.Column ?? 1, Hyperparameters.Known.ContainsKey(key) ? $"parameters.{key}" : "parameters",
                    $"trial {trial.Number} ({Describe(trial.Parameters)}) is impossible: {e.Message}");
            }
        }

        return definition;
    }

    private static string Describe(IReadOnlyDictionary<string, object> p) => string.Join(", ", p.Select(kv => $"{kv.Key}={ParamValue.Format(kv.Value)}"));

    /// <summary>Every parameter with its key in the file: the unconditional ones, then those of each conditions block.</summary>
    private static IEnumerable<(string Key, ParameterDomain Domain)> Axes(SweepDefinition definition) =>
        definition.Parameters.Select(kv => ($"parameters.{kv.Key}", kv.Value))
            .Concat(definition.Conditions.SelectMany((c, i) => c.Parameters.Select(kv => ($"conditions[{i}].parameters.{kv.Key}", kv.Value))));

    /// <summary>"Axes: a (2 values) × b (1,000 values); conditions[0], for 1 of the 2,000 points: c (3 values)".</summary>
    private static string DescribeAxes(SweepDefinition definition, GridShape shape)
    {
        static string Axis(KeyValuePair<string, ParameterDomain> kv) => $"{kv.Key} ({Count(kv.Value.GridCount ?? 1)} value{(kv.Value.GridCount == 1 ? "" : "s")})";

        var parts = new List<string> { "Axes: " + (definition.Parameters.Count == 0 ? "none" : string.Join(" × ", definition.Parameters.Select(Axis))) };
        for (var i = 0; i < definition.Conditions.Count; i++)
        {
            if (shape.BlockPoints[i] > 0 && definition.Conditions[i].Parameters.Count > 0)
            {
                parts.Add($"conditions[{i}], for {Count(shape.BlockPoints[i])} of the {Count(shape.Points)} points: {string.Join(" × ", definition.Conditions[i].Parameters.Select(Axis))}");
            }
        }

        return string.Join("; ", parts);
    }

    private static string Count(BigInteger n) => n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>A value checked against the built-in catalogue (as given for a program's parameter).</summary>
    private object Checked(string name, object value, YamlNode node, string key)
    {
        if (_program)
        {
            return value;
        }

        var hp = Hyperparameters.Known[name];
        if (hp.Type is ValueType.Float or ValueType.Int && QuotedNumber(node) is { } quoted)
        {
            throw Error(node, key, $"{name} {QuotedNumberProblem(hp.Type == ValueType.Int ? "a whole number" : "a number", quoted)}");
        }

        var problem = hp.Check(value is long l && hp.Type == ValueType.Float ? (double)l : value);
        if (problem is not null)
        {
            var hint = hp.Type == ValueType.Choice && value is string s ? Suggest.DidYouMean(s, hp.Choices!) : "";
            throw Error(node, key, $"{name} {problem}{hint}.");
        }

        return value is long l2 && hp.Type == ValueType.Float ? (double)l2 : value;
    }

    /// <summary>A scalar as double, long, bool or string; a list of whole numbers (hidden_sizes) as "100,100".</summary>
    private object Value(YamlNode node, string key)
    {
        if (node is YamlSequenceNode seq)
        {
            var parts = seq.Children.Select((n, i) => Integer(n, $"{key}[{i}]", 1, int.MaxValue).ToString(CultureInfo.InvariantCulture));
            return string.Join(",", parts);
        }

        return ScalarValue(node, key);
    }

    /// <summary>A single scalar as double, long, bool or string (quoted text is always a string).</summary>
    private object ScalarValue(YamlNode node, string key)
    {
        if (node is not YamlScalarNode scalar || scalar.Value is null)
        {
            throw Error(node, key, "must be a single value.");
        }

        var text = scalar.Value;
        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted)
        {
            return text;
        }

        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l))
        {
            return l;
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            return d;
        }

        return text switch
        {
            "true" => true,
            "false" => false,
            _ => text,
        };
    }

    private double Number(YamlNode node, string key) => ScalarValue(node, key) switch
    {
        double d => d,
        long l => l,
        _ when QuotedNumber(node) is { } quoted => throw Error(node, key, QuotedNumberProblem("a number", quoted)),
        var other => throw Error(node, key, $"must be a number (got {ParamValue.Format(other)})."),
    };

    private long Integer(YamlNode node, string key, long min, long max)
    {
        var value = ScalarValue(node, key);
        if (value is not long l)
        {
            throw Error(node, key, QuotedNumber(node) is { } quoted ? QuotedNumberProblem("a whole number", quoted) : $"must be a whole number (got {ParamValue.Format(value)}).");
        }

        if (l < min || l > max)
        {
            throw Error(node, key, $"must lie in [{min}, {max}] (got {l}).");
        }

        return l;
    }

    /// <summary>The text of a quoted scalar that would be a number without its quotes; else null.</summary>
    private static string? QuotedNumber(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted, Value: { } text }
            && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out _) ? text : null;

    private static string QuotedNumberProblem(string what, string quoted) =>
        $"must be {what}, but \"{quoted}\" is in quotes, which makes it a string: numbers are written without quotes ({quoted}).";

    /// <summary>A scalar's text as the file gives it, for messages.</summary>
    private static string Text(YamlNode node) => node is YamlScalarNode { Value: { } text } ? text : node.ToString();

    private string Scalar(YamlNode node, string key) =>
        node is YamlScalarNode { Value: { } v } ? v : throw Error(node, key, "must be a single value.");

    /// <summary>A required key's text; when it is missing the error goes to the end of the list (it has no place in the file).</summary>
    private string? RequiredString(YamlMappingNode root, Dictionary<string, YamlNode> keys, string name, string prefix, string? choices = null)
    {
        if (keys.TryGetValue(name, out var node))
        {
            return Scalar(node, prefix + name);
        }

        _missing.Add(Issue(root, prefix + name, choices is null ? "is required." : $"is required: {choices}."));
        return null;
    }

    /// <summary>
    /// The children of a mapping by key. A key outside <paramref name="allowed"/> (when given) is an error with a "did you
    /// mean", one in <paramref name="ignored"/> a warning; so is a key that is not a plain name, or one given twice. Such
    /// keys are left out and the others read, so that every error of a mapping is reported at once.
    /// </summary>
    private Dictionary<string, YamlNode> Keys(YamlNode node, string path, IReadOnlyCollection<string>? allowed, IReadOnlyCollection<string>? ignored = null)
    {
        if (node is not YamlMappingNode map)
        {
            throw Error(node, path, "must be a mapping of keys.");
        }

        var result = new Dictionary<string, YamlNode>();
        foreach (var (keyNode, valueNode) in map.Children)
        {
            if (keyNode is not YamlScalarNode scalarKey)
            {
                var what = keyNode is YamlSequenceNode ? "a list" : keyNode is YamlMappingNode ? "a mapping" : "not a plain name";
                _errors.Add(Issue(keyNode, path, $"a key must be a plain name such as learning_rate, but this one is {what}" +
                    (allowed is null ? "." : $"; expected one of {string.Join(", ", allowed)}.")));
                continue;
            }

            var key = scalarKey.Value ?? "";
            var full = path.Length == 0 ? key : $"{path}.{key}";
            if (ignored is not null && ignored.Contains(key))
            {
                _warnings.Add(Issue(keyNode, full, "is a W&B key that means nothing here; it is ignored."));
                continue;
            }

            if (allowed is not null && !allowed.Contains(key))
            {
                _errors.Add(Issue(keyNode, full, $"unknown key{Suggest.DidYouMean(key, allowed)}; expected one of {string.Join(", ", allowed)}."));
                continue;
            }

            if (!result.TryAdd(key, valueNode))
            {
                _errors.Add(Issue(keyNode, full, "appears twice."));
            }
        }

        return result;
    }

    /// <summary>The key node named <paramref name="name"/> of a mapping that <see cref="Keys"/> has read.</summary>
    private static YamlNode KeyNode(YamlNode map, string name) =>
        ((YamlMappingNode)map).Children.Keys.First(k => k is YamlScalarNode s && (s.Value ?? "") == name);

    private static int Line(YamlNode node) => Math.Max(1, (int)node.Start.Line);

    private static int Column(YamlNode node) => Math.Max(1, (int)node.Start.Column);

    private SweepFileIssue Issue(YamlNode node, string key, string problem) => new(_file, Line(node), Column(node), key, problem);

    private SweepFileException Error(YamlNode node, string key, string problem) => new([Issue(node, key, problem)]);

    /// <summary>
    /// Refuses nesting deeper than <see cref="MaxNesting"/> before the YAML reader sees it: the reader recurses once per
    /// level, and a few thousand levels (a line of "- - - ..." or of "[[[...") overflow its stack, which ends the process
    /// instead of raising an error. The depth is estimated from the text: enclosing indentation levels, plus the block
    /// indicators ("- ", "? ", ": ") that open nodes on the line, plus open flow brackets; quoted text, comments and block
    /// scalars are skipped.
    /// </summary>
    private void CheckNesting(string text)
    {
        var lines = SplitLines(text);
        var indents = new Stack<int>();
        var flow = 0;
        int? blockScalarIndent = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var indent = 0;
            while (indent < line.Length && line[indent] == ' ')
            {
                indent++;
            }

            var blank = line.AsSpan(indent).TrimStart(" \t").IsEmpty || line.AsSpan(indent).TrimStart(" \t")[0] == '#';
            if (blockScalarIndent is { } scalarIndent)
            {
                if (blank || indent > scalarIndent)
                {
                    continue;
                }

                blockScalarIndent = null;
            }

            if (blank)
            {
                continue;
            }

            if (flow == 0)
            {
                while (indents.Count > 0 && indents.Peek() >= indent)
                {
                    indents.Pop();
                }

                indents.Push(indent);
            }

            var opened = 0;
            var nodeStart = true;
            for (var c = indent; c < line.Length; c++)
            {
                var ch = line[c];
                var spaceAfter = c + 1 == line.Length || line[c + 1] is ' ' or '\t';
                if (ch is ' ' or '\t')
                {
                    continue;
                }

                if (ch == '#' && (c == 0 || line[c - 1] is ' ' or '\t'))
                {
                    break;
                }

                if (ch is '\'' or '"')
                {
                    c = ClosingQuote(line, c);
                    nodeStart = false;
                    continue;
                }

                if (ch is '[' or '{' && (flow > 0 || nodeStart))
                {
                    flow++;
                }
                else if (ch is ']' or '}' && flow > 0)
                {
                    flow--;
                    nodeStart = false;
                    continue;
                }
                else if (ch == ',' && flow > 0)
                {
                }
                else if (ch == ':' && (spaceAfter || flow > 0))
                {
                    opened += flow == 0 ? 1 : 0;
                }
                else if (ch is '-' or '?' && spaceAfter && (nodeStart || flow > 0))
                {
                    opened += flow == 0 ? 1 : 0;
                }
                else if (ch is '|' or '>' && nodeStart && flow == 0)
                {
                    blockScalarIndent = indent;
                    break;
                }
                else if (ch is '&' or '!' && nodeStart)
                {
                    // An anchor or a tag comes before its node: skip it and stay at the node's start.
                    while (c + 1 < line.Length && line[c + 1] is not (' ' or '\t' or ',' or '[' or ']' or '{' or '}'))
                    {
                        c++;
                    }

                    continue;
                }
                else
                {
                    nodeStart = false;
                    continue;
                }

                nodeStart = true;
                if (indents.Count + opened + flow > MaxNesting)
                {
                    throw new SweepFileException(_file, i + 1, c + 1, "", $"nested more than {MaxNesting} levels deep; a sweep file needs a few.");
                }
            }
        }
    }

    /// <summary>The index of the quote that closes the one at <paramref name="open"/> on this line ('' and \" escape), or the line's last index.</summary>
    private static int ClosingQuote(string line, int open)
    {
        var quote = line[open];
        for (var c = open + 1; c < line.Length; c++)
        {
            if (quote == '"' && line[c] == '\\')
            {
                c++;
            }
            else if (line[c] == quote)
            {
                if (quote == '\'' && c + 1 < line.Length && line[c + 1] == '\'')
                {
                    c++;
                    continue;
                }

                return c;
            }
        }

        return line.Length - 1;
    }

    private static string[] SplitLines(string text) => text.Split(["\r\n", "\n", "\r"], StringSplitOptions.None);

    /// <summary>Line and column (1-based) of the first tab in a line's indentation, or null.</summary>
    private static (int Line, int Column)? FirstIndentingTab(string text)
    {
        var lines = SplitLines(text);
        for (var i = 0; i < lines.Length; i++)
        {
            var indentation = lines[i].Length - lines[i].TrimStart(' ', '\t').Length;
            var tab = lines[i].IndexOf('\t', 0, indentation);
            if (tab >= 0)
            {
                return (i + 1, tab + 1);
            }
        }

        return null;
    }

    private static string Fmt(double d) => d.ToString("G6", CultureInfo.InvariantCulture);
}
