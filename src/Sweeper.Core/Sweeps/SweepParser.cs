using System.Globalization;
using System.Numerics;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Sweeper.Core.Sweeps;

/// <summary>
/// Reads and validates sweep definition files (YAML, in the shape of W&amp;B sweep files plus model, data, budget,
/// seed and conditions). Every error names the file, line, column and key; unknown keys are errors.
/// </summary>
public sealed class SweepParser
{
    /// <summary>The deepest nesting a sweep file may have (see <see cref="CheckNesting"/>).</summary>
    private const int MaxNesting = 64;

    private static readonly string[] _topKeys = ["name", "description", "method", "metric", "model", "data", "parameters", "conditions", "budget", "early_terminate", "seed"];
    private readonly string _file;

    private SweepParser(string file)
    {
        _file = file;
    }

    public static SweepDefinition ParseFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new SweepFileException(path, 0, 0, "", "the sweep file does not exist.");
        }

        return Parse(File.ReadAllText(path), path);
    }

    public static SweepDefinition Parse(string text, string file = "<sweep>")
    {
        var parser = new SweepParser(file);
        var definition = parser.Read(text);
        parser.CheckTrials(definition);
        return definition;
    }

    private SweepDefinition Read(string text)
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

        var top = Keys(root, "", _topKeys);
        var name = RequiredString(root, top, "name", "");
        if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"))
        {
            throw Error(top["name"], "name", "must be 1-100 letters, digits, '_', '.' or '-' (it names the study).");
        }

        var method = RequiredString(root, top, "method", "");
        if (method is not ("grid" or "random"))
        {
            throw Error(top["method"], "method", $"must be grid or random (got {method}).");
        }

        var parameters = new Dictionary<string, ParameterDomain>();
        if (top.TryGetValue("model", out var modelNode))
        {
            ReadModelBlock(modelNode, parameters);
        }

        if (!top.TryGetValue("parameters", out var paramsNode))
        {
            throw Error(root, "parameters", "is required: the hyperparameters to search (each with value, values or distribution).");
        }

        foreach (var (key, domain) in ReadParameters(paramsNode, "parameters"))
        {
            if (parameters.ContainsKey(key))
            {
                throw Error(KeyNode(paramsNode, key), $"parameters.{key}", "is also fixed in the model block; give it in one place.");
            }

            parameters[key] = domain;
        }

        var conditions = top.TryGetValue("conditions", out var condNode) ? ReadConditions(condNode, parameters) : [];
        var (metric, goal) = top.TryGetValue("metric", out var metricNode) ? ReadMetric(metricNode) : ("val_accuracy", "maximize");
        return new SweepDefinition
        {
            Name = name,
            Description = top.TryGetValue("description", out var d) ? Scalar(d, "description") : null,
            Method = method,
            Metric = metric,
            Goal = goal,
            Data = top.TryGetValue("data", out var dataNode) ? ReadData(dataNode) : new DataSettings(),
            Parameters = parameters,
            Conditions = conditions,
            Budget = top.TryGetValue("budget", out var budgetNode) ? ReadBudget(budgetNode) : new Budget(),
            EarlyTerminate = top.TryGetValue("early_terminate", out var et) ? ReadEarlyTerminate(et) : null,
            Seed = top.TryGetValue("seed", out var seedNode) ? (ulong)Integer(seedNode, "seed", 0, long.MaxValue) : 0,
            SourceText = text,
        };
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
            parameters[name] = new FixedValue(Checked(name, Value(valueNode, $"model.{key}"), valueNode, $"model.{key}")) { Line = Line(valueNode), Column = Column(valueNode) };
        }
    }

    private List<KeyValuePair<string, ParameterDomain>> ReadParameters(YamlNode node, string path)
    {
        var result = new List<KeyValuePair<string, ParameterDomain>>();
        var keys = Keys(node, path, null);
        foreach (var (name, spec) in keys)
        {
            var key = $"{path}.{name}";
            var keyNode = KeyNode(node, name);
            if (!Hyperparameters.Known.ContainsKey(name))
            {
                throw Error(keyNode, key, $"unknown hyperparameter; known: {string.Join(", ", Hyperparameters.Known.Keys)}.");
            }

            result.Add(new(name, ReadDomain(name, spec, key) with { Line = Line(keyNode), Column = Column(keyNode) }));
        }

        return result;
    }

    private ParameterDomain ReadDomain(string name, YamlNode node, string key)
    {
        var keys = Keys(node, key, ["value", "values", "distribution", "min", "max", "q"]);
        var line = Line(node);
        if (keys.TryGetValue("value", out var valueNode))
        {
            if (keys.Count > 1)
            {
                throw Error(node, key, "value cannot be combined with values or a distribution.");
            }

            return new FixedValue(Checked(name, Value(valueNode, key + ".value"), valueNode, key + ".value")) { Line = line };
        }

        if (keys.TryGetValue("values", out var valuesNode))
        {
            if (keys.Count > 1)
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

            return new ValueList(values) { Line = line };
        }

        if (!keys.ContainsKey("min") || !keys.ContainsKey("max"))
        {
            throw Error(node, key, "needs value, values, or a distribution with min and max.");
        }

        var hp = Hyperparameters.Known[name];
        if (hp.Type is not (ValueType.Float or ValueType.Int))
        {
            throw Error(node, key, $"{name} takes value or values, not a distribution.");
        }

        var min = Number(keys["min"], key + ".min");
        var max = Number(keys["max"], key + ".max");
        var kind = keys.TryGetValue("distribution", out var distNode) ? Scalar(distNode, key + ".distribution")
            : hp.Type == ValueType.Int ? Distribution.IntUniform : Distribution.Uniform;
        if (!Distribution.Kinds.Contains(kind))
        {
            throw Error(keys["distribution"], key + ".distribution", $"must be one of {string.Join(", ", Distribution.Kinds)} (got {kind}).");
        }

        if (hp.Type == ValueType.Int && kind != Distribution.IntUniform)
        {
            throw Error(keys["distribution"], key + ".distribution", $"{name} is a whole number: use int_uniform.");
        }

        foreach (var (bound, value) in new[] { ("min", min), ("max", max) })
        {
            if (!double.IsFinite(value))
            {
                throw Error(keys[bound], $"{key}.{bound}", $"must be a finite number (got {ParamValue.Format(value)}).");
            }
        }

        if (min > max)
        {
            throw Error(keys["min"], key + ".min", $"min ({Fmt(min)}) is greater than max ({Fmt(max)}).");
        }

        if (kind == Distribution.LogUniform && min <= 0)
        {
            throw Error(keys["min"], key + ".min", $"log_uniform needs min > 0 (got {Fmt(min)}).");
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

        double? q = null;
        if (keys.TryGetValue("q", out var qNode))
        {
            q = Number(qNode, key + ".q");
            if (!double.IsFinite(q.Value) || !(q > 0) || (kind == Distribution.IntUniform && q != Math.Floor(q.Value)))
            {
                throw Error(qNode, key + ".q", $"must be a finite number > 0{(kind == Distribution.IntUniform ? ", and whole for int_uniform" : "")} (got {ParamValue.Format(q.Value)}).");
            }

            var distribution = new Distribution(kind, min, max, q);
            var count = kind == Distribution.IntUniform ? distribution.GridCount!.Value : distribution.QuantizedCount!.Value;
            if (!double.IsFinite(count))
            {
                throw Error(qNode, key + ".q", $"q = {Fmt(q.Value)} is too small to round values in [{Fmt(min)}, {Fmt(max)}] to (min / q or max / q is past the largest double).");
            }

            if (count < 2)
            {
                var which = kind == Distribution.IntUniform ? "min, min + q, ... up to max" : "the multiples of q between min and max";
                var leaves = count == 1 ? $"leaves 1 value in [{Fmt(min)}, {Fmt(max)}] ({which}), so every trial would get that value"
                    : $"leaves no value in [{Fmt(min)}, {Fmt(max)}] to round to ({which})";
                throw Error(qNode, key + ".q", $"q = {Fmt(q.Value)} {leaves}; q must leave at least two values: use a smaller q (or value: for a constant).");
            }
        }

        foreach (var (bound, value) in new[] { ("min", min), ("max", max) })
        {
            var problem = hp.Check(kind == Distribution.IntUniform ? (object)(long)value : value);
            if (problem is not null)
            {
                throw Error(keys[bound], $"{key}.{bound}", $"{name} {problem}.");
            }
        }

        return new Distribution(kind, min, max, q) { Line = line };
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
                    throw Error(valueNode, $"{path}.when.{name}", $"{name} is not a parameter of this sweep (conditions can only test unconditional parameters).");
                }

                when[name] = valueNode is YamlSequenceNode list
                    ? list.Children.Select((n, k) => Checked(name, Value(n, $"{path}.when.{name}[{k}]"), n, $"{path}.when.{name}[{k}]")).ToList()
                    : [Checked(name, Value(valueNode, $"{path}.when.{name}"), valueNode, $"{path}.when.{name}")];
            }

            var blockParams = new Dictionary<string, ParameterDomain>();
            foreach (var (name, domain) in ReadParameters(paramsNode, path + ".parameters"))
            {
                if (parameters.ContainsKey(name))
                {
                    throw Error(KeyNode(paramsNode, name), $"{path}.parameters.{name}", $"{name} is already an unconditional parameter.");
                }

                blockParams[name] = domain;
            }

            blocks.Add(new ConditionalBlock(when, blockParams, Line(item)));
        }

        return blocks;
    }

    private (string, string) ReadMetric(YamlNode node)
    {
        var keys = Keys(node, "metric", ["name", "goal"]);
        var name = keys.TryGetValue("name", out var n) ? Scalar(n, "metric.name") : "val_accuracy";
        var goal = keys.TryGetValue("goal", out var g) ? Scalar(g, "metric.goal") : "maximize";
        if (name != "val_accuracy")
        {
            throw Error(n!, "metric.name", $"only val_accuracy is supported for selecting the best trial (got {name}); the test split is never used for selection.");
        }

        if (goal != "maximize")
        {
            throw Error(g!, "metric.goal", $"val_accuracy is maximized (got {goal}).");
        }

        return (name, goal);
    }

    private DataSettings ReadData(YamlNode node)
    {
        var keys = Keys(node, "data", ["dataset", "path", "train_size", "val_size", "test_size"]);
        var data = new DataSettings();
        if (keys.TryGetValue("dataset", out var ds) && Scalar(ds, "data.dataset") != "cifar10")
        {
            throw Error(ds, "data.dataset", "only cifar10 is supported.");
        }

        data = data with
        {
            Path = keys.TryGetValue("path", out var p) ? Scalar(p, "data.path") : null,
            TrainSize = keys.TryGetValue("train_size", out var t) ? (int)Integer(t, "data.train_size", 1, 50_000) : data.TrainSize,
            ValSize = keys.TryGetValue("val_size", out var v) ? (int)Integer(v, "data.val_size", 1, 50_000) : data.ValSize,
            TestSize = keys.TryGetValue("test_size", out var te) ? (int)Integer(te, "data.test_size", 1, 10_000) : data.TestSize,
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
            MaxTrials = keys.TryGetValue("max_trials", out var m) ? (int)Integer(m, "budget.max_trials", 1, 10_000_000) : budget.MaxTrials,
            MaxConcurrent = keys.TryGetValue("max_concurrent", out var c) ? (int)Integer(c, "budget.max_concurrent", 1, 100_000) : null,
            Retries = keys.TryGetValue("retries", out var r) ? (int)Integer(r, "budget.retries", 0, 100) : budget.Retries,
        };
    }

    private EarlyTerminate ReadEarlyTerminate(YamlNode node)
    {
        var keys = Keys(node, "early_terminate", ["type", "warmup_epochs", "min_trials"]);
        var et = new EarlyTerminate();
        var type = keys.TryGetValue("type", out var t) ? Scalar(t, "early_terminate.type") : et.Type;
        if (type is not ("median" or "none"))
        {
            throw Error(t!, "early_terminate.type", $"must be median or none (got {type}).");
        }

        return et with
        {
            Type = type,
            WarmupEpochs = keys.TryGetValue("warmup_epochs", out var w) ? (int)Integer(w, "early_terminate.warmup_epochs", 0, 1_000_000) : et.WarmupEpochs,
            MinTrials = keys.TryGetValue("min_trials", out var m) ? (int)Integer(m, "early_terminate.min_trials", 1, 1_000_000) : et.MinTrials,
        };
    }

    /// <summary>Checks that the search yields trials within the budget and that every trial is a valid configuration.</summary>
    private void CheckTrials(SweepDefinition definition)
    {
        if (definition.Method == "grid")
        {
            var axes = Axes(definition).ToList();
            foreach (var (key, domain) in axes)
            {
                if (domain.GridCount is null)
                {
                    throw new SweepFileException(_file, domain.Line, domain.Column, key, "a grid needs values (or int_uniform); a continuous distribution has no grid. Use method: random.");
                }
            }

            var shape = SearchSpace.CountGrid(definition);
            if (shape.Trials > SearchSpace.MaxGridTrials)
            {
                var (largestKey, largest) = axes.MaxBy(a => a.Domain.GridCount!.Value);
                throw new SweepFileException(_file, largest.Line, largest.Column, largestKey,
                    $"the grid has {Count(shape.Trials)} trials, more than the {Count(SearchSpace.MaxGridTrials)} a grid may have. {DescribeAxes(definition, shape)}. " +
                    "Shrink the largest axes (fewer values, a larger q) or use method: random.");
            }

            if (shape.Trials > definition.Budget.MaxTrials)
            {
                throw new SweepFileException(_file, LineOf(definition.SourceText, "max_trials"), 1, "budget.max_trials",
                    $"the grid has {shape.Trials} trials, more than budget.max_trials = {definition.Budget.MaxTrials}. Raise the budget or shrink the grid.");
            }
        }

        var sampler = SearchSpace.CreateSampler(definition);
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

    private static int LineOf(string text, string key)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].TrimStart().StartsWith(key + ":", StringComparison.Ordinal))
            {
                return i + 1;
            }
        }

        return 1;
    }

    private object Checked(string name, object value, YamlNode node, string key)
    {
        var hp = Hyperparameters.Known[name];
        if (hp.Type is ValueType.Float or ValueType.Int && QuotedNumber(node) is { } quoted)
        {
            throw Error(node, key, $"{name} {QuotedNumberProblem(hp.Type == ValueType.Int ? "a whole number" : "a number", quoted)}");
        }

        var problem = hp.Check(value is long l && hp.Type == ValueType.Float ? (double)l : value);
        if (problem is not null)
        {
            throw Error(node, key, $"{name} {problem}.");
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

    private string RequiredString(YamlMappingNode root, Dictionary<string, YamlNode> keys, string name, string prefix) =>
        keys.TryGetValue(name, out var node) ? Scalar(node, prefix + name) : throw Error(root, prefix + name, "is required.");

    /// <summary>The children of a mapping by key; a key outside <paramref name="allowed"/> (when given) is an error, and so is a key that is not a plain name.</summary>
    private Dictionary<string, YamlNode> Keys(YamlNode node, string path, IReadOnlyCollection<string>? allowed)
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
                throw Error(keyNode, path, $"a key must be a plain name such as learning_rate, but this one is {what}" +
                    (allowed is null ? "." : $"; expected one of {string.Join(", ", allowed)}."));
            }

            var key = scalarKey.Value ?? "";
            var full = path.Length == 0 ? key : $"{path}.{key}";
            if (allowed is not null && !allowed.Contains(key))
            {
                throw Error(keyNode, full, $"unknown key; expected one of {string.Join(", ", allowed)}.");
            }

            if (!result.TryAdd(key, valueNode))
            {
                throw Error(keyNode, full, "appears twice.");
            }
        }

        return result;
    }

    /// <summary>The key node named <paramref name="name"/> of a mapping that <see cref="Keys"/> has read.</summary>
    private static YamlNode KeyNode(YamlNode map, string name) =>
        ((YamlMappingNode)map).Children.Keys.First(k => k is YamlScalarNode s && (s.Value ?? "") == name);

    private static int Line(YamlNode node) => Math.Max(1, (int)node.Start.Line);

    private static int Column(YamlNode node) => Math.Max(1, (int)node.Start.Column);

    private SweepFileException Error(YamlNode node, string key, string problem) =>
        new(_file, Line(node), Column(node), key, problem);

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
