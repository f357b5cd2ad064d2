using System.Globalization;
using System.Text.Json;

namespace Sweeper.Storage;

/// <summary>
/// A trial's parameters are kept twice: as the JSON object the worker reads, and copied into typed slot columns of the
/// trials table (<c>pn0</c>..: the number, <c>pt0</c>..: the text of a string, boolean or list) so that filters and sorts
/// over 100,000 trials read plain columns instead of parsing JSON per row. A study maps each of its parameter names to
/// a slot (table <c>study_params</c>), in the order the names first appear in its trials. Names past the last slot (a
/// study with more than <see cref="Count"/> parameters; the catalogue has fewer) are still queried, from the JSON.
/// Slot column names are generated here, never taken from user text.
/// </summary>
public static class ParamSlots
{
    /// <summary>Slots per trial.</summary>
    public const int Count = 16;

    /// <summary>"pn0, pt0, pn1, pt1, ..." for INSERT and UPDATE column lists.</summary>
    public static readonly string Columns = string.Join(", ", Enumerable.Range(0, Count).Select(i => $"pn{i}, pt{i}"));

    /// <summary>
    /// The slots PostgreSQL's covering index (<c>trials_keys</c>) holds: besides study, number, state and val_accuracy,
    /// its limit of 32 index columns leaves room for 14 pairs (SQLite's holds them all). A query that reads only those
    /// columns is answered from the index alone, which is a fifth of the table's size.
    /// </summary>
    public const int Covered = 14;

    /// <summary>"pn0, pt0, ..." for the covered slots.</summary>
    public static readonly string CoveredColumns = string.Join(", ", Enumerable.Range(0, Covered).Select(i => $"pn{i}, pt{i}"));

    public static string Number(int slot) => "pn" + slot.ToString(CultureInfo.InvariantCulture);

    public static string Text(int slot) => "pt" + slot.ToString(CultureInfo.InvariantCulture);

    /// <summary>The DDL that adds the slot columns (<paramref name="real"/> and <paramref name="text"/> are the dialect's types).</summary>
    public static IEnumerable<string> AddColumns(string real, string text) =>
        Enumerable.Range(0, Count).SelectMany(i => new[] { $"{Number(i)} {real}", $"{Text(i)} {text}" });

    /// <summary>
    /// The parameter names of a study: <paramref name="declared"/> (the sweep's names, when known) and then those of its
    /// trials, in order of first appearance; the first <see cref="Count"/> get slots.
    /// </summary>
    public static List<string> Names(IEnumerable<string>? declared, IEnumerable<string> parametersJson)
    {
        var names = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in declared ?? [])
        {
            if (seen.Add(name))
            {
                names.Add(name);
            }
        }

        foreach (var json in parametersJson)
        {
            using var doc = JsonDocument.Parse(json);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (seen.Add(p.Name))
                {
                    names.Add(p.Name);
                }
            }
        }

        return names;
    }

    /// <summary>
    /// Fills <paramref name="values"/> (2 x <see cref="Count"/>: number, text per slot) from one trial's parameters
    /// for the slotted <paramref name="names"/>; missing parameters stay null.
    /// </summary>
    public static void Values(string parametersJson, IReadOnlyList<string> names, object?[] values)
    {
        Array.Clear(values);
        using var doc = JsonDocument.Parse(parametersJson);
        var slots = Math.Min(names.Count, Count);
        for (var slot = 0; slot < slots; slot++)
        {
            if (!doc.RootElement.TryGetProperty(names[slot], out var v))
            {
                continue;
            }

            switch (v.ValueKind)
            {
                case JsonValueKind.Number:
                    values[2 * slot] = v.GetDouble();
                    break;
                case JsonValueKind.String:
                    values[(2 * slot) + 1] = v.GetString();
                    break;
                case JsonValueKind.True or JsonValueKind.False:
                    values[(2 * slot) + 1] = v.ValueKind == JsonValueKind.True ? "true" : "false";
                    break;
                case JsonValueKind.Null or JsonValueKind.Undefined:
                    break;
                default:
                    values[(2 * slot) + 1] = v.GetRawText();
                    break;
            }
        }
    }
}
