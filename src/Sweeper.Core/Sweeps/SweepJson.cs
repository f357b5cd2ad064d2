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
/// The document is a JSON object (format 1):
/// <c>{"format": 1, "name", "description", "method", "metric", "goal", "seed",
/// "data": {"dataset", "path", "train_size", "val_size", "test_size", "dev_size", "subtract_mean", "bias_column"},
/// "budget": {"max_trials", "max_concurrent", "retries"}, "early_terminate": null | {"type", "warmup_epochs", "min_trials"},
/// "parameters": [domain, ...], "conditions": [{"when": {name: [value, ...]}, "parameters": [domain, ...]}, ...]}</c>,
/// where a domain is <c>{"name", "value": v}</c>, <c>{"name", "values": [v, ...]}</c> or
/// <c>{"name", "distribution", "min", "max", "q"}</c> (q may be null). Parameters keep the file's order (the
/// model block's first), which is the order trials are sampled and gridded in. A value keeps its type: a string, a
/// boolean, a whole number (no point or exponent) or a float (always written with a point or an exponent, so 1.0
/// stays a float). Line numbers of the file are not kept (only the parser's errors use them).
/// </para>
/// </summary>
public static class SweepJson
{
    /// <summary>The format this build writes and reads.</summary>
    public const int Format = 1;

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
            w.WriteString("method", sweep.Method);
            w.WriteString("metric", sweep.Metric);
            w.WriteString("goal", sweep.Goal);
            w.WriteNumber("seed", sweep.Seed);

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
            if (format != Format)
            {
                throw new InvalidDataException($"the stored sweep is in format {format}; this build reads format {Format}.");
            }

            var data = root.GetProperty("data");
            var budget = root.GetProperty("budget");
            var et = root.GetProperty("early_terminate");
            return new SweepDefinition
            {
                Name = root.GetProperty("name").GetString()!,
                Description = root.GetProperty("description").GetString(),
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
                },
                Parameters = ReadDomains(root.GetProperty("parameters")),
                Conditions = [.. root.GetProperty("conditions").EnumerateArray().Select(c => new ConditionalBlock(
                    c.GetProperty("when").EnumerateObject().ToDictionary(p => p.Name, p => (IReadOnlyList<object>)[.. p.Value.EnumerateArray().Select(ReadValue)]),
                    ReadDomains(c.GetProperty("parameters")),
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
                    break;
                case Distribution d:
                    w.WriteString("distribution", d.Kind);
                    w.WritePropertyName("min");
                    WriteFloat(w, d.Min);
                    w.WritePropertyName("max");
                    WriteFloat(w, d.Max);
                    w.WritePropertyName("q");
                    if (d.Q is { } q)
                    {
                        WriteFloat(w, q);
                    }
                    else
                    {
                        w.WriteNullValue();
                    }

                    break;
                default:
                    throw new ArgumentException($"{name}: no JSON form for a {domain.GetType().Name} domain.");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static Dictionary<string, ParameterDomain> ReadDomains(JsonElement array)
    {
        var domains = new Dictionary<string, ParameterDomain>();
        foreach (var e in array.EnumerateArray())
        {
            var name = e.GetProperty("name").GetString()!;
            domains.Add(name, e.TryGetProperty("value", out var value) ? new FixedValue(ReadValue(value))
                : e.TryGetProperty("values", out var values) ? new ValueList([.. values.EnumerateArray().Select(ReadValue)])
                : new Distribution(e.GetProperty("distribution").GetString()!, e.GetProperty("min").GetDouble(), e.GetProperty("max").GetDouble(),
                    e.GetProperty("q") is { ValueKind: JsonValueKind.Number } q ? q.GetDouble() : null));
        }

        return domains;
    }

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
