using Orleans;

namespace Sweeper.Core.Trials;

/// <summary>
/// The life of a trial. Allowed transitions: Pending → Running (claim); Running → Completed | Pruned | Diverged |
/// Failed (finish, by the lease holder); Running → Pending (lease expired or released; attempts are kept);
/// Running → Failed (lease expired past the retry budget); Running → Paused (at a rung of successive halving, by the
/// lease holder) → Pending (promoted) or Pruned (not promoted when the search ends). Final states never change.
/// </summary>
[GenerateSerializer]
public enum TrialState
{
    Pending,
    Running,
    Completed,
    Pruned,
    Diverged,
    Failed,

    /// <summary>Stopped at a rung of successive halving with its checkpoint kept; promoted back to pending, or pruned when the study ends.</summary>
    Paused,
}

public static class TrialStates
{
    public static bool IsFinal(this TrialState state) => state is TrialState.Completed or TrialState.Pruned or TrialState.Diverged or TrialState.Failed;

    public static string ToText(this TrialState state) => state.ToString().ToLowerInvariant();

    public static TrialState Parse(string text) => Enum.Parse<TrialState>(text, ignoreCase: true);
}

/// <summary>
/// A study: one sweep file's search, created once and resumed by name. <paramref name="SweepText"/> is the file as the
/// user wrote it (its hash, <paramref name="SweepHash"/>, resumes the study); <paramref name="SweepJson"/> is the
/// definition resolved from it when the study was created (read it with <see cref="Sweeps.SweepJson.Of"/>): null only
/// for a study from before schema 5 whose file no longer parsed when the store was migrated.
/// </summary>
[GenerateSerializer]
public sealed record StudyRecord(
    string Name,
    string SweepHash,
    string SweepText,
    string? SweepJson,
    string Method,
    int TrialCount,
    DateTimeOffset CreatedAt,
    bool Closed,
    int? MaxRunning,
    int Retries);

/// <summary>
/// A new study and the trials it starts with. <paramref name="SweepJson"/> is the definition resolved from
/// <paramref name="SweepText"/> (<see cref="Sweeps.SweepJson.Serialize"/>), stored as given. <paramref name="MaxRunning"/>
/// caps the trials running at once (null: no cap); <paramref name="Retries"/> is each trial's retry budget after lost
/// leases.
/// </summary>
public sealed record NewStudy(string Name, string SweepHash, string SweepText, string SweepJson, string Method, IReadOnlyList<NewTrial> Trials, int? MaxRunning = null, int Retries = 2)
{
    /// <summary>
    /// The study's size: <see cref="Trials"/>' count, unless its sampler proposes trials as slots free up (Bayesian
    /// search), when it starts with few or none and grows to this many (<see cref="ITrialStore.AddTrialAsync"/>).
    /// </summary>
    public int? PlannedTrials { get; init; }

    /// <summary>Every parameter name the study's trials may have (so that trials added later find their query columns); null: those of <see cref="Trials"/>.</summary>
    public IReadOnlyList<string>? ParameterNames { get; init; }

    public int TrialCount => PlannedTrials ?? Trials.Count;
}

/// <summary>A trial to create: its number, parameters (JSON object) and seed.</summary>
public sealed record NewTrial(int Number, string ParametersJson, ulong Seed);

/// <summary>A trial as stored.</summary>
public sealed record TrialRecord(
    long Id,
    string Study,
    int Number,
    string ParametersJson,
    ulong Seed,
    TrialState State,
    int Attempts,
    string? Owner,
    long LeaseToken,
    DateTimeOffset? LeaseExpiresAt,
    int EpochsDone,
    double? ValAccuracy,
    double? TrainAccuracy,
    string? Reason,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt)
{
    /// <summary>The trial's final value of the sweep's metric, as its finish (or pause) recorded it; null when it has none yet (or was stored before schema 6).</summary>
    public double? Value { get; init; }
}

/// <summary>
/// Proof that a training slot holds a trial. <see cref="Token"/> is the fencing token: it grows with every claim, and the
/// store rejects any write that names an older one. <see cref="HasCheckpoint"/> tells whether an earlier attempt
/// left a checkpoint to resume from (so a fresh trial costs no extra read).
/// </summary>
[GenerateSerializer]
public sealed record Lease(long TrialId, string Study, int Number, string ParametersJson, ulong Seed, string Owner, long Token, int Attempt, bool HasCheckpoint = true);

/// <summary>
/// What one epoch of training reports: the engine's solver produces it, a trial's grain sends it on, the store keeps it
/// under the trial (whose id is the lease's or the query's, not repeated here).
/// </summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Loss">Mean training loss over the epoch's minibatches.</param>
/// <param name="TrainAccuracy">Accuracy on a sample of the training split after the epoch.</param>
/// <param name="ValAccuracy">Accuracy on the validation split after the epoch.</param>
/// <param name="LearningRate">The rate used during the epoch (before its decay).</param>
/// <param name="Seconds">Wall time of the epoch, its evaluation included.</param>
/// <param name="Metrics">
/// Other named metrics of the epoch (a training program reports any names: val_loss, accuracy, ...); null when there are
/// none. A program's epoch holds NaN in the built-in fields it did not report.
/// </param>
[GenerateSerializer]
public sealed record EpochRecord(int Epoch, double Loss, double TrainAccuracy, double ValAccuracy, double LearningRate, double Seconds,
    IReadOnlyDictionary<string, double>? Metrics = null)
{
    /// <summary>
    /// The value of <paramref name="metric"/> in this epoch: a built-in field (val_accuracy, train_accuracy, train_loss or
    /// loss, learning_rate) when it holds a number, else the named extra metric; null when the epoch has neither.
    /// </summary>
    public double? ValueOf(string metric)
    {
        double? builtIn = metric switch
        {
            "val_accuracy" => ValAccuracy,
            "train_accuracy" => TrainAccuracy,
            "train_loss" or "loss" => Loss,
            "learning_rate" => LearningRate,
            _ => null,
        };
        if (builtIn is { } b && !double.IsNaN(b))
        {
            return b;
        }

        return Metrics is not null && Metrics.TryGetValue(metric, out var v) && !double.IsNaN(v) ? v : null;
    }

    /// <summary>Equal fields and equal extra metrics (compared by name and value, not by reference).</summary>
    public bool Equals(EpochRecord? other) =>
        other is not null && Epoch == other.Epoch && Loss.Equals(other.Loss) && TrainAccuracy.Equals(other.TrainAccuracy) && ValAccuracy.Equals(other.ValAccuracy)
        && LearningRate.Equals(other.LearningRate) && Seconds.Equals(other.Seconds) && SameMetrics(Metrics, other.Metrics);

    public override int GetHashCode() => HashCode.Combine(Epoch, Loss, TrainAccuracy, ValAccuracy, LearningRate, Seconds, Metrics?.Count ?? 0);

    private static bool SameMetrics(IReadOnlyDictionary<string, double>? a, IReadOnlyDictionary<string, double>? b) =>
        (a is null || a.Count == 0) ? b is null || b.Count == 0
        : b is not null && a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v.Equals(kv.Value));
}

/// <summary>
/// How a lease holder finishes a trial. <paramref name="Value"/> is the trial's value of the sweep's metric (what the
/// study selects and TPE learns by), stored as the trial's <c>value</c>; null when it has none.
/// </summary>
[GenerateSerializer]
public sealed record TrialFinish(TrialState State, double? ValAccuracy, double? TrainAccuracy, int Epochs, string? Reason, double? Value = null);

/// <summary>The outcome of a study: the selection rule, the chosen trial, and the one test-set evaluation.</summary>
[GenerateSerializer]
public sealed record StudyResult(
    string Study,
    string SelectionRule,
    string Metric,
    long? BestTrialId,
    int? BestTrialNumber,
    double? ValAccuracy,
    double? TestAccuracy,
    int TestExamples,
    DateTimeOffset? TestEvaluatedAt,
    string? Note);

/// <summary>
/// A worker process (a silo) as it last reported; <paramref name="Slots"/> is how many trials it can train at once (0: not
/// reported); <paramref name="StoppedAt"/> is when it said it stopped of its own accord (Ctrl-C, SIGTERM, its sweep done),
/// null while it runs or when it ended without saying so (killed, declared dead).
/// </summary>
public sealed record WorkerRecord(string Id, string Host, int Pid, DateTimeOffset StartedAt, DateTimeOffset LastHeartbeat, long? CurrentTrialId, int Slots, DateTimeOffset? StoppedAt = null);

/// <summary>Counts of trials by state.</summary>
public sealed record StateCounts(int Pending, int Running, int Completed, int Pruned, int Diverged, int Failed, int Paused = 0)
{
    public int Total => Pending + Running + Paused + Completed + Pruned + Diverged + Failed;

    public int Final => Completed + Pruned + Diverged + Failed;
}

/// <summary>The lease holder's epoch is no longer current: another worker owns the trial, or it was requeued or finished.</summary>
public sealed class LeaseLostException(Lease lease, string detail)
    : Exception($"lease on trial {lease.Number} of study {lease.Study} (fencing token {lease.Token}, owner {lease.Owner}) is no longer held: {detail}")
{
    public Lease Lease { get; } = lease;

    /// <summary>
    /// Why <paramref name="lease"/> is no longer held, from the trial's row now (<paramref name="state"/>, its fencing
    /// token and owner). A slot whose lease ran out (its silo paused, or cut off) may have claimed the trial again itself:
    /// then the owner is the same and only the token says that the lease is a newer one.
    /// </summary>
    public static string Detail(Lease lease, string state, long token, string? owner) =>
        (state, owner) switch
        {
            ("running", { } o) when o == lease.Owner && token > lease.Token =>
                $"its lease ran out and the same slot claimed the trial again (fencing token {token}); the older claim's writes are refused",
            ("running", { } o) when token > lease.Token => $"its lease ran out and {o} claimed the trial (fencing token {token})",
            ("pending", _) => $"its lease ran out and the trial is pending again (fencing token {token})",
            ("failed", { } o) when o == lease.Owner && token == lease.Token =>
                "the trial was failed under this very lease (its lease ran out with the trial's retries spent, or its failure was recorded)",
            _ => $"the trial is now {state} (fencing token {token}, owner {owner ?? "none"})",
        };
}

/// <summary>
/// The store could not be reached even after the store's own retries (network cut, database down). Nothing was
/// written; the caller may try again later. A worker keeps its trial and keeps trying until the write succeeds or
/// fencing says the trial moved on.
/// </summary>
public sealed class StoreUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>The store's schema is newer than this program understands.</summary>
public sealed class SchemaTooNewException(int found, int supported)
    : Exception($"the store's schema version is {found}, newer than this program understands ({supported}); upgrade sweeper.");

/// <summary>The store takes only reads (a PostgreSQL standby, or a database set read-only) and its schema is older than this program's: it cannot be brought up to date here.</summary>
public sealed class ReadOnlySchemaTooOldException(int found, int supported)
    : Exception("the server takes only reads here (a standby, or default_transaction_read_only on) and "
        + (found == 0 ? "the database holds no store yet" : $"the store's schema version is {found}, older than this program's ({supported})")
        + "; open it once at the primary's address, which brings it up to date.");

/// <summary>A study of that name exists with a different sweep file.</summary>
public sealed class StudyConflictException(string name)
    : Exception($"study '{name}' already exists with a different sweep file; rename the study (name:) or use another store.");
