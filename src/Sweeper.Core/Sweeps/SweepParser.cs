using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Sweeper.Core.Sweeps;

/// <summary>
/// Reads and validates sweep definition files (YAML, in the shape of W&amp;B sweep files plus model, data, budget,
/// seed and conditions). Every error names the file, line, column and key; unknown keys are errors.
/// </summary>
public sealed class SweepParser
{
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
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new SweepFileException(_file, (int)e.Start.Line, (int)e.Start.Column, "", "not valid YAML: " + (e.InnerException?.Message ?? e.Message));
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
                throw Error(paramsNode, $"parameters.{key}", "is also fixed in the model block; give it in one place.");
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
            parameters["model"] = Checked("model", Value(node, "model"), node, "model") is var v ? new FixedValue(v) { Line = Line(node) } : null!;
            return;
        }

        var keys = Keys(node, "model", ["family", .. Hyperparameters.Known.Keys.Where(k => k != "model")]);
        foreach (var (key, valueNode) in keys)
        {
            var name = key == "family" ? "model" : key;
            parameters[name] = new FixedValue(Checked(name, Value(valueNode, $"model.{key}"), valueNode, $"model.{key}")) { Line = Line(valueNode) };
        }
    }

    private List<KeyValuePair<string, ParameterDomain>> ReadParameters(YamlNode node, string path)
    {
        var result = new List<KeyValuePair<string, ParameterDomain>>();
        var keys = Keys(node, path, null);
        foreach (var (name, spec) in keys)
        {
            var key = $"{path}.{name}";
            if (!Hyperparameters.Known.ContainsKey(name))
            {
                throw Error(((YamlMappingNode)node).Children.Keys.First(k => ((YamlScalarNode)k).Value == name), key,
                    $"unknown hyperparameter; known: {string.Join(", ", Hyperparameters.Known.Keys)}.");
            }

            var keyLine = (int)((YamlMappingNode)node).Children.Keys.First(k => ((YamlScalarNode)k).Value == name).Start.Line;
            result.Add(new(name, ReadDomain(name, spec, key) with { Line = keyLine }));
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

        if (min > max)
        {
            throw Error(keys["min"], key + ".min", $"min ({Fmt(min)}) is greater than max ({Fmt(max)}).");
        }

        if (kind == Distribution.LogUniform && min <= 0)
        {
            throw Error(keys["min"], key + ".min", $"log_uniform needs min > 0 (got {Fmt(min)}).");
        }

        if (kind == Distribution.IntUniform && (min != Math.Floor(min) || max != Math.Floor(max)))
        {
            throw Error(keys["min"], key + ".min", "int_uniform needs whole-number min and max.");
        }

        double? q = null;
        if (keys.TryGetValue("q", out var qNode))
        {
            q = Number(qNode, key + ".q");
            if (!(q > 0) || (kind == Distribution.IntUniform && q != Math.Floor(q.Value)))
            {
                throw Error(qNode, key + ".q", $"must be > 0{(kind == Distribution.IntUniform ? " and whole" : "")} (got {Fmt(q.Value)}).");
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
                    throw Error(paramsNode, $"{path}.parameters.{name}", $"{name} is already an unconditional parameter.");
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
            foreach (var (name, domain) in definition.Parameters.Concat(definition.Conditions.SelectMany(c => c.Parameters)))
            {
                if (domain.GridValues is null)
                {
                    throw new SweepFileException(_file, domain.Line, 1, $"parameters.{name}", "a grid needs values (or int_uniform); a continuous distribution has no grid. Use method: random.");
                }
            }

            var count = SearchSpace.GridSize(definition);
            if (count > definition.Budget.MaxTrials)
            {
                throw new SweepFileException(_file, LineOf(definition.SourceText, "max_trials"), 1, "budget.max_trials",
                    $"the grid has {count} trials, more than budget.max_trials = {definition.Budget.MaxTrials}. Raise the budget or shrink the grid.");
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
                var line = definition.Parameters.TryGetValue(key, out var d) ? d.Line
                    : definition.Conditions.SelectMany(c => c.Parameters).FirstOrDefault(kv => kv.Key == key).Value?.Line ?? 1;
                throw new SweepFileException(_file, line, 1, Hyperparameters.Known.ContainsKey(key) ? $"parameters.{key}" : "parameters",
                    $"trial {trial.Number} ({Describe(trial.Parameters)}) is impossible: {e.Message}");
            }
        }
    }

    private static string Describe(IReadOnlyDictionary<string, object> p) => string.Join(", ", p.Select(kv => $"{kv.Key}={ParamValue.Format(kv.Value)}"));

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
        if (hp.Type == ValueType.IntList && value is string s)
        {
            value = s;
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

    private double Number(YamlNode node, string key) => Value(node, key) switch
    {
        double d => d,
        long l => l,
        var other => throw Error(node, key, $"must be a number (got {ParamValue.Format(other)})."),
    };

    private long Integer(YamlNode node, string key, long min, long max)
    {
        var value = Value(node, key);
        if (value is not long l)
        {
            throw Error(node, key, $"must be a whole number (got {ParamValue.Format(value)}).");
        }

        if (l < min || l > max)
        {
            throw Error(node, key, $"must lie in [{min}, {max}] (got {l}).");
        }

        return l;
    }

    private string Scalar(YamlNode node, string key) =>
        node is YamlScalarNode { Value: { } v } ? v : throw Error(node, key, "must be a single value.");

    private string RequiredString(YamlMappingNode root, Dictionary<string, YamlNode> keys, string name, string prefix) =>
        keys.TryGetValue(name, out var node) ? Scalar(node, prefix + name) : throw Error(root, prefix + name, "is required.");

    /// <summary>The children of a mapping by key; a key outside <paramref name="allowed"/> (when given) is an error.</summary>
    private Dictionary<string, YamlNode> Keys(YamlNode node, string path, IReadOnlyCollection<string>? allowed)
    {
        if (node is not YamlMappingNode map)
        {
            throw Error(node, path, "must be a mapping of keys.");
        }

        var result = new Dictionary<string, YamlNode>();
        foreach (var (keyNode, valueNode) in map.Children)
        {
            var key = ((YamlScalarNode)keyNode).Value ?? "";
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

    private static int Line(YamlNode node) => (int)node.Start.Line;

    private SweepFileException Error(YamlNode node, string key, string problem) =>
        new(_file, (int)node.Start.Line, (int)node.Start.Column, key, problem);

    private static string Fmt(double d) => d.ToString("G6", CultureInfo.InvariantCulture);
}
