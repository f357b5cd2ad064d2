using System.Text.Json;

namespace Sweeper.Core.Sweeps;

/// <summary>Trial parameters as a JSON object: numbers, strings and booleans.</summary>
public static class ParamJson
{
    public static string Serialize(IReadOnlyDictionary<string, object> parameters)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            foreach (var (key, value) in parameters)
            {
                switch (value)
                {
                    case double d:
                        w.WriteNumber(key, d);
                        break;
                    case long l:
                        w.WriteNumber(key, l);
                        break;
                    case int i:
                        w.WriteNumber(key, i);
                        break;
                    case bool b:
                        w.WriteBoolean(key, b);
                        break;
                    default:
                        w.WriteString(key, ParamValue.Format(value));
                        break;
                }
            }

            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Integers come back as long, other numbers as double (the catalogue accepts a long where a float is expected).</summary>
    public static IReadOnlyDictionary<string, object> Deserialize(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var result = new Dictionary<string, object>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            result[p.Name] = p.Value.ValueKind switch
            {
                JsonValueKind.Number when p.Value.TryGetInt64(out var l) && !p.Value.GetRawText().Contains('.') && !p.Value.GetRawText().Contains('E', StringComparison.OrdinalIgnoreCase) => l,
                JsonValueKind.Number => p.Value.GetDouble(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => p.Value.GetString() ?? "",
            };
        }

        return result;
    }
}
