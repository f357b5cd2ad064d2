using System.Globalization;
using System.Text.Json;
using Sweeper.Core.Trials;

namespace Sweeper.Core.Sweeps;

/// <summary>
/// A study's sweep definition, resolved once from the sweep file when the study is created and kept with it in the
/// store (<see cref="StudyRecord.SweepJson"/>), so that silos, <c>sweeper results</c> and the dashboard read the search
/// space without parsing YAML again (and without re-checking every trial, which costs the parser most of its time on
/// a large grid). The file's text is kept too: it is the user's, and its hash resumes the study.
/// <para>
/// The document is a JSON object (format 2):
/// <c>{"format": 2, "name", "description", "project", "entity", "method", "metric", "goal", "seed", "engine", "device",
/// "bayes": {"startup_trials", "candidates"},
/// "program": null | {"program", "command": [...], "workdir", "env": {name: value}, "timeout_seconds"},
/// "data": {"dataset", "path", "train_size", "val_size", "test_size", "dev_size", "subtract_mean", "bias_column"},
/// "budget": {"max_trials", "max_concurrent", "retries"},
/// "early_terminate": null | {"type", "warmup_epochs", "min_trials", "min_iter", "max_iter", "s", "eta", "strict"},
/// "parameters": [domain, ...], "conditions": [{"when": {name: [value, ...]}, "parameters": [domain, ...]}, ...],
/// "warnings": [{"file", "line", "column", "key", "message"}, ...]}</c>,
/// where a domain is <c>{"name", "value": v}</c>, <c>{"name", "values": [v, ...], "probabilities": null | [p, ...]}</c> or
/// <c>{"name", "distribution", "min", "max", "q", "mu", "sigma"}</c> (q may be null; a whole-number q is written without a
/// point, which makes the q_ kinds draw whole numbers). Parameters keep the file's order (the model block's first),
/// which is the order trials are sampled and gridded in. A value keeps its type: a string, a boolean, a whole number (no
/// point or exponent) or a float (always written with a point or an exponent, so 1.0 stays a float). Line numbers of
/// parameters are not kept (only the parser's errors use them).
/// </para>
/// <para>
/// Format 1 (before W&amp;B's distributions) is still read: its fields are those of format 2 less the new ones (which
/// take their defaults), and its <c>log_uniform</c> took the values as bounds, so it reads as <c>log_uniform_values</c>.
/// </para>
/// </para>
/// </summary>
public static class SweepJson
{
    /// <summary>The format this build writes and reads.</summary>
    public const int Format = 2;

    /// <summary>The resolved definition as a JSON document (see the class). Throws <see cref="ArgumentException"/> for a non-finite float value.</summary>
    public static string Serialize(SweepDefinition sweep)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteNumber("format", Format);
            w.WriteString("name", sweep.Name);
            w.WriteString("description", sweep.Description);
            w.WriteString("project", sweep.Project);
            w.WriteString("entity", sweep.Entity);
            w.WriteString("method", sweep.Method);
            w.WriteString("metric", sweep.Metric);
            w.WriteString("goal", sweep.Goal);
            w.WriteNumber("seed", sweep.Seed);
            w.WriteString("engine", sweep.Engine);
            w.WriteString("device", sweep.Device);
            w.WriteStartObject("bayes");
            w.WriteNumber("startup_trials", sweep.Bayes.StartupTrials);
            w.WriteNumber("candidates", sweep.Bayes.Candidates);
            w.WriteEndObject();
            WriteProgram(w, sweep.Program);

            w.WriteStartObject("data");
            w.WriteString("dataset", sweep.Data.Dataset);
            w.WriteString("path", sweep.Data.Path);
            w.WriteNumber("train_size", sweep.Data.TrainSize);
            w.WriteNumber("val_size", sweep.Data.ValSize);
            w.WriteNumber("test_size", sweep.Data.TestSize);
            w.WriteNumber("dev_size", sweep.Data.DevSize);
            w.WriteBoolean("subtract_mean", sweep.Data.SubtractMean);
            w.WriteBoolean("bias_column", sweep.Data.BiasColumn);
            w.WriteEndObject();

            w.WriteStartObject("budget");
            w.WriteNumber("max_trials", sweep.Budget.MaxTrials);
            WriteNullable(w, "max_concurrent", sweep.Budget.MaxConcurrent);
            w.WriteNumber("retries", sweep.Budget.Retries);
            w.WriteEndObject();

            if (sweep.EarlyTerminate is { } et)
            {
                w.WriteStartObject("early_terminate");
                w.WriteString("type", et.Type);
                w.WriteNumber("warmup_epochs", et.WarmupEpochs);
                w.WriteNumber("min_trials", et.MinTrials);
                WriteNullable(w, "min_iter", et.MinIter);
                WriteNullable(w, "max_iter", et.MaxIter);
                WriteNullable(w, "s", et.S);
                w.WritePropertyName("eta");
                WriteFloat(w, et.Eta);
                w.WriteBoolean("strict", et.Strict);
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("early_terminate");
            }

            w.WritePropertyName("parameters");
            WriteDomains(w, sweep.Parameters);
            w.WriteStartArray("conditions");
            foreach (var block in sweep.Conditions)
            {
                w.WriteStartObject();
                w.WriteStartObject("when");
                foreach (var (name, values) in block.When)
                {
                    w.WriteStartArray(name);
                    foreach (var value in values)
                    {
                        WriteValue(w, value);
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
                w.WritePropertyName("parameters");
                WriteDomains(w, block.Parameters);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("warnings");
            foreach (var warning in sweep.Warnings)
            {
                w.WriteStartObject();
                w.WriteString("file", warning.File);
                w.WriteNumber("line", warning.Line);
                w.WriteNumber("column", warning.Column);
                w.WriteString("key", warning.Key);
                w.WriteString("message", warning.Message);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>
    /// Reads a document written by <see cref="Serialize"/> back into the definition, with <paramref name="sourceText"/>
    /// (the stored sweep file) as its source. Throws <see cref="InvalidDataException"/> for another format or a
    /// document that is not one.
    /// </summary>
    public static SweepDefinition Deserialize(string json, string sourceText)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var format = root.GetProperty("format").GetInt32();
            if (format is not (1 or Format))
            {
                throw new InvalidDataException($"the stored sweep is in format {format}; this build reads formats 1 and {Format}.");
            }

            var data = root.GetProperty("data");
            var budget = root.GetProperty("budget");
            var et = root.GetProperty("early_terminate");
            return new SweepDefinition
            {
                Name = root.GetProperty("name").GetString()!,
                Description = root.GetProperty("description").GetString(),
                Project = Optional(root, "project")?.GetString(),
                Entity = Optional(root, "entity")?.GetString(),
                Engine = Optional(root, "engine")?.GetString() ?? "native",
                Device = Optional(root, "device")?.GetString() ?? "cpu",
                Bayes = Optional(root, "bayes") is { } bayes
                    ? new BayesSettings { StartupTrials = bayes.GetProperty("startup_trials").GetInt32(), Candidates = bayes.GetProperty("candidates").GetInt32() }
                    : new BayesSettings(),
                Program = ReadProgram(Optional(root, "program")),
                Warnings = Optional(root, "warnings") is { } warnings
                    ? [.. warnings.EnumerateArray().Select(x => new SweepFileIssue(x.GetProperty("file").GetString()!, x.GetProperty("line").GetInt32(), x.GetProperty("column").GetInt32(),
                        x.GetProperty("key").GetString()!, x.GetProperty("message").GetString()!))]
                    : [],
                Method = root.GetProperty("method").GetString()!,
                Metric = root.GetProperty("metric").GetString()!,
                Goal = root.GetProperty("goal").GetString()!,
                Seed = root.GetProperty("seed").GetUInt64(),
                Data = new DataSettings
                {
                    Dataset = data.GetProperty("dataset").GetString()!,
                    Path = data.GetProperty("path").GetString(),
                    TrainSize = data.GetProperty("train_size").GetInt32(),
                    ValSize = data.GetProperty("val_size").GetInt32(),
                    TestSize = data.GetProperty("test_size").GetInt32(),
                    DevSize = data.GetProperty("dev_size").GetInt32(),
                    SubtractMean = data.GetProperty("subtract_mean").GetBoolean(),
                    BiasColumn = data.GetProperty("bias_column").GetBoolean(),
                },
                Budget = new Budget
                {
                    MaxTrials = budget.GetProperty("max_trials").GetInt32(),
                    MaxConcurrent = budget.GetProperty("max_concurrent") is { ValueKind: JsonValueKind.Number } max ? max.GetInt32() : null,
                    Retries = budget.GetProperty("retries").GetInt32(),
                },
                EarlyTerminate = et.ValueKind == JsonValueKind.Null ? null : new EarlyTerminate
                {
                    Type = et.GetProperty("type").GetString()!,
                    WarmupEpochs = et.GetProperty("warmup_epochs").GetInt32(),
                    MinTrials = et.GetProperty("min_trials").GetInt32(),
                    MinIter = OptionalInt(et, "min_iter"),
                    MaxIter = OptionalInt(et, "max_iter"),
                    S = OptionalInt(et, "s"),
                    Eta = Optional(et, "eta")?.GetDouble() ?? 3,
                    Strict = Optional(et, "strict")?.GetBoolean() ?? false,
                },
                Parameters = ReadDomains(root.GetProperty("parameters"), format),
                Conditions = [.. root.GetProperty("conditions").EnumerateArray().Select(c => new ConditionalBlock(
                    c.GetProperty("when").EnumerateObject().ToDictionary(p => p.Name, p => (IReadOnlyList<object>)[.. p.Value.EnumerateArray().Select(ReadValue)]),
                    ReadDomains(c.GetProperty("parameters"), format),
                    0))],
                SourceText = sourceText,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"the stored sweep is not a sweep document: {e.Message}", e);
        }
    }

    /// <summary>
    /// The study's resolved sweep definition, from its stored document. A study whose document is missing (its sweep
    /// file no longer parsed when the store was migrated to keep documents) has its file parsed, which throws
    /// <see cref="SweepFileException"/> saying what is wrong with it.
    /// </summary>
    public static SweepDefinition Of(StudyRecord study) =>
        study.SweepJson is { } json ? Deserialize(json, study.SweepText) : SweepParser.Parse(study.SweepText, study.Name);

    private static void WriteDomains(Utf8JsonWriter w, IReadOnlyDictionary<string, ParameterDomain> domains)
    {
        w.WriteStartArray();
        foreach (var (name, domain) in domains)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            switch (domain)
            {
                case FixedValue f:
                    w.WritePropertyName("value");
                    WriteValue(w, f.Value);
                    break;
                case ValueList list:
                    w.WriteStartArray("values");
                    foreach (var value in list.Values)
                    {
                        WriteValue(w, value);
                    }

                    w.WriteEndArray();
                    if (list.Probabilities is { } probabilities)
                    {
                        w.WriteStartArray("probabilities");
                        foreach (var p in probabilities)
                        {
                            WriteFloat(w, p);
                        }

                        w.WriteEndArray();
                    }
                    else
                    {
                        w.WriteNull("probabilities");
                    }

                    break;
                case Distribution d:
                    w.WriteString("distribution", d.Kind);
                    w.WritePropertyName("min");
                    WriteFloat(w, d.Min);
                    w.WritePropertyName("max");
                    WriteFloat(w, d.Max);
                    w.WritePropertyName("q");
                    if (d.Q is { } q && d.WholeQ)
                    {
                        w.WriteNumberValue((long)q);
                    }
                    else if (d.Q is { } fq)
                    {
                        WriteFloat(w, fq);
                    }
                    else
                    {
                        w.WriteNullValue();
                    }

                    w.WritePropertyName("mu");
                    WriteFloat(w, d.Mu);
                    w.WritePropertyName("sigma");
                    WriteFloat(w, d.Sigma);
                    break;
                default:
                    throw new ArgumentException($"{name}: no JSON form for a {domain.GetType().Name} domain.");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static Dictionary<string, ParameterDomain> ReadDomains(JsonElement array, int format)
    {
        var domains = new Dictionary<string, ParameterDomain>();
        foreach (var e in array.EnumerateArray())
        {
            var name = e.GetProperty("name").GetString()!;
            domains.Add(name, e.TryGetProperty("value", out var value) ? new FixedValue(ReadValue(value))
                : e.TryGetProperty("values", out var values) ? new ValueList([.. values.EnumerateArray().Select(ReadValue)])
                {
                    Probabilities = Optional(e, "probabilities") is { } p ? [.. p.EnumerateArray().Select(x => x.GetDouble())] : null,
                }
                : ReadDistribution(e, format));
        }

        return domains;
    }

    private static Distribution ReadDistribution(JsonElement e, int format)
    {
        var kind = e.GetProperty("distribution").GetString()!;
        if (format == 1 && kind == Distribution.LogUniform)
        {
            // Format 1's log_uniform took its bounds as the values themselves: W&B's log_uniform_values.
            kind = Distribution.LogUniformValues;
        }

        var q = e.GetProperty("q");
        return new Distribution(kind, e.GetProperty("min").GetDouble(), e.GetProperty("max").GetDouble(), q.ValueKind == JsonValueKind.Number ? q.GetDouble() : null)
        {
            WholeQ = format > 1 && q.ValueKind == JsonValueKind.Number && q.GetRawText().AsSpan().IndexOfAny('.', 'e', 'E') < 0,
            Mu = Optional(e, "mu")?.GetDouble() ?? 0,
            Sigma = Optional(e, "sigma")?.GetDouble() ?? 1,
        };
    }

    /// <summary>A property that is present and not null, else null.</summary>
    private static JsonElement? Optional(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static int? OptionalInt(JsonElement e, string name) => Optional(e, name)?.GetInt32();

    private static void WriteProgram(Utf8JsonWriter w, ProgramSpec? program)
    {
        if (program is null)
        {
            w.WriteNull("program");
            return;
        }

        w.WriteStartObject("program");
        w.WriteString("program", program.Program);
        w.WriteStartArray("command");
        foreach (var part in program.Command)
        {
            w.WriteStringValue(part);
        }

        w.WriteEndArray();
        w.WriteString("workdir", program.WorkDir);
        w.WriteStartObject("env");
        foreach (var (k, v) in program.Env)
        {
            w.WriteString(k, v);
        }

        w.WriteEndObject();
        WriteNullable(w, "timeout_seconds", program.TimeoutSeconds);
        w.WriteEndObject();
    }

    private static ProgramSpec? ReadProgram(JsonElement? e) => e is not { } p ? null : new ProgramSpec
    {
        Program = p.GetProperty("program").GetString()!,
        Command = [.. p.GetProperty("command").EnumerateArray().Select(x => x.GetString()!)],
        WorkDir = Optional(p, "workdir")?.GetString(),
        Env = p.GetProperty("env").EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetString()!),
        TimeoutSeconds = OptionalInt(p, "timeout_seconds"),
    };

    private static void WriteValue(Utf8JsonWriter w, object value)
    {
        switch (value)
        {
            case double d:
                WriteFloat(w, d);
                break;
            case long l:
                w.WriteNumberValue(l);
                break;
            case int i:
                w.WriteNumberValue(i);
                break;
            case bool b:
                w.WriteBooleanValue(b);
                break;
            case string s:
                w.WriteStringValue(s);
                break;
            default:
                throw new ArgumentException($"no JSON form for the value {ParamValue.Format(value)} ({value.GetType().Name}).");
        }
    }

    /// <summary>Shortest round-trip text, always with a point or an exponent (so that the reader knows a float).</summary>
    private static void WriteFloat(Utf8JsonWriter w, double d)
    {
        if (!double.IsFinite(d))
        {
            throw new ArgumentException($"a sweep's numbers are finite (got {d}).");
        }

        var text = d.ToString("R", CultureInfo.InvariantCulture);
        w.WriteRawValue(text.AsSpan().IndexOfAny('.', 'E') >= 0 ? text : text + ".0");
    }

    private static object ReadValue(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number when e.GetRawText().AsSpan().IndexOfAny('.', 'e', 'E') >= 0 => e.GetDouble(),
        JsonValueKind.Number => e.GetInt64(),
        _ => throw new FormatException($"a parameter value is a string, a boolean or a number, not {e.ValueKind}."),
    };

    private static void WriteNullable(Utf8JsonWriter w, string name, int? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }
}
