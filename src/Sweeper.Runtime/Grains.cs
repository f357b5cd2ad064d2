using Orleans.Concurrency;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>
/// The coordinator grain of one study (key: the study's name). It creates the study and its trials from the sweep file,
/// hands pending trials to free training slots, answers the stopping rule after each epoch, and once every trial is
/// final picks the best completed trial by validation accuracy, has its best checkpoint evaluated once on the test
/// split, and closes the study. Its state is reloaded from the store on every activation: the store is the system of
/// record, so the grain may vanish with its silo at any time and re-activate elsewhere.
/// </summary>
public interface IStudyGrain : IGrainWithStringKey
{
    /// <summary>
    /// Creates the study from the sweep file's text (or finds it: the same file resumes it). Returns the stored study, or
    /// the conflict when the name is taken by another file (nothing is written then).
    /// </summary>
    Task<StudyOpening> OpenAsync(string sweepText, string source);

    /// <summary>
    /// Claims the lowest pending trial for <paramref name="owner"/> (a training slot), or null when there is none now.
    /// Interleaves with every other call: the store's claim is one atomic conditional update, so concurrent claims never
    /// share a trial, and a slow (durable) commit does not hold up the other slots' claims.
    /// </summary>
    [AlwaysInterleave]
    Task<Lease?> NextTrialAsync(string owner);

    /// <summary>
    /// The early-termination rule's answer after a trial's epoch (stored already): <see cref="EpochVerdict.Continue"/>,
    /// <see cref="EpochVerdict.Stop"/> (the median rule prunes it), <see cref="EpochVerdict.Pause"/> (a rung of successive
    /// halving) or <see cref="EpochVerdict.Complete"/> (it reached successive halving's last epoch). Reads only; interleaves.
    /// </summary>
    [AlwaysInterleave]
    Task<EpochVerdict> AfterEpochAsync(int number, EpochRecord metrics);

    /// <summary>A trial reached a final state or was handed back; the study may be done. Interleaves (closing runs once).</summary>
    [OneWay]
    [AlwaysInterleave]
    Task TrialEndedAsync(int number);

    /// <summary>
    /// Housekeeping, called by every silo every second: requeues trials whose lease expired (or whose silo was declared
    /// dead), and closes the study once every trial is final.
    /// </summary>
    Task TickAsync();
}

/// <summary>The answer to <see cref="IStudyGrain.OpenAsync"/>: the study, or why it cannot be opened.</summary>
[GenerateSerializer]
public sealed record StudyOpening(StudyRecord? Study, string? Conflict)
{
    /// <summary>The study; throws <see cref="StudyConflictException"/> when the name belongs to another sweep file.</summary>
    public StudyRecord Get(string name) => Study ?? throw new StudyConflictException(name);
}

/// <summary>A trial's last epoch, its metrics and the checkpoint taken after it, stored together with the trial's outcome.</summary>
[GenerateSerializer]
[Immutable]
public sealed record LastEpoch([property: Id(0)] EpochRecord Metrics, [property: Id(1)] byte[] Checkpoint);

/// <summary>What a trial's owner hears back after reporting an epoch.</summary>
[GenerateSerializer]
public enum EpochVerdict
{
    /// <summary>Stored; train on.</summary>
    Continue,

    /// <summary>Stored; the stopping rule pruned the trial.</summary>
    Stop,

    /// <summary>Not stored: the lease is no longer held (fenced). Abandon the trial.</summary>
    Lost,

    /// <summary>Not stored: the store is unreachable now. Keep the result and report it again.</summary>
    Retry,

    /// <summary>Stored; the trial pauses at a rung of successive halving (its checkpoint kept) until it is promoted.</summary>
    Pause,

    /// <summary>Stored; the trial reached the last epoch successive halving trains it to: it is complete.</summary>
    Complete,
}

/// <summary>
/// One trial (key: <c>study/number</c>), placed on the silo whose training slot claimed it. It holds the trial's lease in
/// the store (renewed by a grain timer; every write names the lease's fencing token), stores each epoch's metrics and
/// checkpoint, asks the coordinator grain whether to go on, and records the outcome. The training itself runs on the
/// slot's dedicated thread, never in a grain turn.
/// </summary>
public interface ITrialGrain : IGrainWithStringKey
{
    /// <summary>
    /// Takes ownership of the trial under <paramref name="lease"/> and returns the checkpoint to resume from (empty for a
    /// fresh start), or null when this activation cannot own it (it lives on another silo than the slot).
    /// <paramref name="claimed"/> is when the slot asked for the trial (on this silo's clock: the grain lives where the
    /// slot is), no later than the lease's start: the first renewal is due a third of a lease after it, not after this
    /// call, which may come late (an activation that waited on a frozen silo's directory partition).
    /// </summary>
    Task<Immutable<byte[]>?> BeginAsync(Lease lease, DateTimeOffset claimed);

    /// <summary>
    /// Stores an epoch's metrics and checkpoint (fenced) and, when <paramref name="askStudy"/> (the study has an
    /// early-termination rule), asks the study grain whether the trial goes on. Every call carries the slot's lease: an
    /// activation that lost its state (Orleans deactivates the grains whose directory entry lived on a silo that died)
    /// takes the lease up again from the call, and the store's fencing decides, as for every write.
    /// </summary>
    Task<EpochVerdict> ReportEpochAsync(Lease lease, EpochRecord metrics, Immutable<byte[]> checkpoint, bool askStudy);

    /// <summary>
    /// Records the trial's outcome (fenced), or its pause at a rung when <paramref name="finish"/>'s state is
    /// <see cref="TrialState.Paused"/>, with <paramref name="last"/>, its last epoch, when that was not stored yet (one
    /// write for both). Lost when the lease moved on; Retry when the store is unreachable.
    /// </summary>
    Task<EpochVerdict> FinishAsync(Lease lease, TrialFinish finish, LastEpoch? last);

    /// <summary>Hands the trial back (pending) without waiting for its lease to expire, e.g. when the silo stops.</summary>
    Task ReleaseAsync(Lease lease, string reason);

    /// <summary>
    /// The slot's keep-alive while it trains (every third of a lease): an activation that holds no lease (activated afresh
    /// after Orleans deactivated the one that did) takes up <paramref name="lease"/> again once the store renews it, so
    /// that the lease is renewed between epochs longer than it. False when this activation does not act for the lease.
    /// </summary>
    Task<bool> HoldAsync(Lease lease);

    /// <summary>
    /// The grain key of trial <paramref name="number"/> of <paramref name="study"/> under the lease of fencing token
    /// <paramref name="token"/>: one grain per claim of the trial, first called, and so placed, by the slot that claimed it
    /// (<see cref="Orleans.Placement.PreferLocalPlacementAttribute"/>). With one key per trial, a trial claimed again on
    /// another silo could find its grain still there: silos' directory caches kept routing its calls to the silo of an
    /// earlier claim, which activated it again there on each call.
    /// </summary>
    static string Key(string study, int number, long token) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{study}/{number}/{token}");
}
