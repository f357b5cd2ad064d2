using System.Text.Json;
using System.Text.Json.Serialization;
using Sweeper.Core.Sweeps;

namespace Sweeper.Storage;

/// <summary>
/// What both stores share for their migrations and for the metric columns: the resolved sweep definition of a study
/// stored before schema 5; an epoch's extra metrics as JSON text and its unreported built-in metrics (NaN) as NULL, and
/// each trial's value of its sweep's metric filled in when a store moves to schema 6.
/// </summary>
internal static class StudySweeps
{
    private static readonly JsonSerializerOptions _metricsJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>
    /// Parses the study's stored sweep file once and returns its definition as <see cref="SweepJson"/>, or null when the
    /// file no longer parses (this build's catalogue refuses it): such a study keeps working as far as it can, and whoever
    /// reads its definition (<see cref="SweepJson.Of"/>) gets the parser's error. Never throws for a bad file, so that one
    /// study cannot keep the store from opening.
    /// </summary>
    public static string? Resolve(string study, string sweepText)
    {
        try
        {
            return SweepJson.Serialize(SweepParser.Parse(sweepText, study));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }

    /// <summary>
    /// The migration to schema 6: the statement that fills <c>trials.value</c> of one study (parameter <c>{p}s</c>) from
    /// what was stored before, for the trials that finished or paused: the record's val_accuracy or train_accuracy, or
    /// for the loss the last epoch's. Null when the study's metric is none of those (or its definition cannot be read):
    /// its trials keep no value, as before.
    /// </summary>
    public static string? ValueBackfill(string? sweepJson, string p)
    {
        string metric;
        try
        {
            metric = sweepJson is null ? "" : SweepJson.Deserialize(sweepJson, "").Metric;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }

        var source = metric switch
        {
            "val_accuracy" => "val_accuracy",
            "train_accuracy" => "train_accuracy",
            "train_loss" or "loss" => "(SELECT e.loss FROM epochs e WHERE e.trial_id = trials.id ORDER BY e.epoch DESC LIMIT 1)",
            _ => null,
        };
        return source is null ? null
            : $"UPDATE trials SET value = {source} WHERE study = {p}s AND state IN ('completed', 'pruned', 'diverged', 'failed', 'paused')";
    }

    /// <summary>An epoch's extra metrics as JSON text (non-finite values as "NaN", "Infinity"), or null when it has none.</summary>
    public static object MetricsJson(IReadOnlyDictionary<string, double>? metrics) =>
        metrics is null || metrics.Count == 0 ? DBNull.Value : JsonSerializer.Serialize(metrics, _metricsJson);

    /// <summary>The extra metrics stored by <see cref="MetricsJson"/>; null for NULL.</summary>
    public static IReadOnlyDictionary<string, double>? ReadMetrics(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<Dictionary<string, double>>(json, _metricsJson);

    /// <summary>A built-in epoch metric as stored: NULL for NaN (not reported, e.g. by a program), the largest finite value for an infinity.</summary>
    public static object Metric(double d) => double.IsNaN(d) ? DBNull.Value : double.IsFinite(d) ? d : Math.Sign(d) * double.MaxValue;
}
