namespace Sweeper.Core.Trials;

/// <summary>
/// The only shared state of Sweeper: studies, trials, leases, epoch metrics, checkpoints, workers and events.
/// <para>
/// Thread safety: every method may be called concurrently, from any number of threads and processes (one store
/// instance per process is enough). Each method is one transaction.
/// </para>
/// <para>
/// Leases: <see cref="ClaimAsync"/> takes a pending trial with one atomic conditional update and reports whether it
/// won; callers that lose simply get null and move on. Lease expiry is judged by the store's clock, never a
/// slot's. Every write by a lease holder names its <see cref="Lease"/>; a write whose fencing token is no longer the
/// trial's current one, or whose trial is no longer running, throws <see cref="LeaseLostException"/> and changes
/// nothing (fencing).
/// </para>
/// <para>State transitions: see <see cref="TrialState"/>. Only the lease holder finishes a running trial; only
/// <see cref="RequeueExpiredAsync"/> takes a trial back from a holder whose lease expired.</para>
/// </summary>
public interface ITrialStore : IAsyncDisposable
{
    /// <summary>
    /// Creates the study with its trials, or returns the existing one when a study of that name was created from
    /// the same sweep file (same hash): running a file again resumes it. Throws <see cref="StudyConflictException"/>
    /// when the name exists with another file. Nothing is written on failure.
    /// </summary>
    Task<StudyRecord> CreateStudyAsync(NewStudy study, CancellationToken cancellationToken = default);

    Task<StudyRecord?> GetStudyAsync(string name, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<StudyRecord>> ListStudiesAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Atomically takes the lowest-numbered pending trial of <paramref name="study"/> (or of any open study when
    /// null, oldest study first) for <paramref name="owner"/>, unless the study's MaxRunning trials already run.
    /// The fencing token (<see cref="Lease.Token"/>, column lease_epoch) and attempt count grow by one. Returns null when there is nothing to take (or another worker
    /// won the race).
    /// </summary>
    Task<Lease?> ClaimAsync(string? study, string owner, TimeSpan leaseDuration, CancellationToken cancellationToken = default);

    /// <summary>Extends the lease to now + duration. Throws <see cref="LeaseLostException"/> if it is no longer held.</summary>
    Task RenewAsync(Lease lease, TimeSpan leaseDuration, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records one epoch's metrics and, when given, the checkpoint taken after it, in one transaction, and renews
    /// the lease. Reporting an epoch again (after a resume) replaces it. Fenced.
    /// </summary>
    Task ReportEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TimeSpan leaseDuration, CancellationToken cancellationToken = default);

    /// <summary>Moves the trial to a final state with its summary. Fenced: a finished trial is never finished twice.</summary>
    Task FinishAsync(Lease lease, TrialFinish finish, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records the trial's last epoch (its metrics and checkpoint, as <see cref="ReportEpochAsync"/> does) and finishes it
    /// (as <see cref="FinishAsync"/> does), in one transaction: one commit, where a trial that ends right after its last
    /// epoch would otherwise take two. Fenced as both are; a retry after a commit whose answer was lost finds it done.
    /// </summary>
    Task FinishAfterEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TrialFinish finish, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds one pending trial to an open study, for a sampler that proposes trials as slots free up. Returns false, and
    /// writes nothing, when the study already has a trial of that number (another proposer won) or is closed.
    /// </summary>
    Task<bool> AddTrialAsync(string study, NewTrial trial, CancellationToken cancellationToken = default);

    /// <summary>
    /// Pauses a running trial at a rung of successive halving: state paused (not final), its summary so far recorded, its
    /// checkpoint kept, its lease given up (the attempt is not counted, as for a hand-back). Fenced.
    /// </summary>
    Task PauseAsync(Lease lease, TrialFinish summary, CancellationToken cancellationToken = default);

    /// <summary>Promotes a paused trial: pending again, so that a slot resumes it from its checkpoint. False when it is not paused.</summary>
    Task<bool> PromoteAsync(long trialId, string reason, CancellationToken cancellationToken = default);

    /// <summary>Moves every paused trial of the study to <paramref name="state"/> (final) with <paramref name="reason"/>, when the search is over. Returns how many.</summary>
    Task<int> EndPausedAsync(string study, TrialState state, string reason, CancellationToken cancellationToken = default);

    /// <summary>Every trial of the study that reported epoch <paramref name="epoch"/>, whatever its state: its number and that epoch's metrics (for successive halving's rungs).</summary>
    Task<IReadOnlyList<(int Number, EpochRecord Metrics)>> GetEpochOfTrialsAsync(string study, int epoch, CancellationToken cancellationToken = default);

    /// <summary>Gives the trial back (pending) without waiting for the lease to expire, e.g. on Ctrl-C. Its attempt is not counted. Fenced.</summary>
    Task ReleaseAsync(Lease lease, string reason, CancellationToken cancellationToken = default);

    /// <summary>
    /// Running trials of the study whose lease expired go back to pending, or to failed with the reason kept once
    /// they have had 1 + the study's Retries attempts. Returns how many trials were requeued or failed.
    /// </summary>
    Task<int> RequeueExpiredAsync(string study, CancellationToken cancellationToken = default);

    /// <summary>
    /// Expires the leases of every running trial (of any study) whose owner starts with <paramref name="ownerPrefix"/>
    /// (compared character by character, no wildcards): their lease expiry becomes a second before now by the store's
    /// clock, so the next <see cref="RequeueExpiredAsync"/> of each study requeues them, or fails them past their retry
    /// budget, exactly as if their leases had run out. Nothing else changes (the holders are fenced out only once the
    /// trials are requeued); other owners' trials, trials that are not running and leases already expired are untouched.
    /// Returns how many leases it cut short, so of several callers racing on one prefix only the first counts them. Throws <see cref="ArgumentException"/> for an empty prefix (which would match every owner).
    /// </summary>
    Task<int> ExpireLeasesOfOwnerAsync(string ownerPrefix, CancellationToken cancellationToken = default);

    /// <summary>The latest checkpoint of a trial and the epoch it was taken after, or null.</summary>
    Task<(int Epoch, byte[] Data)?> GetCheckpointAsync(long trialId, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<TrialRecord>> GetTrialsAsync(string study, CancellationToken cancellationToken = default);

    Task<TrialRecord?> GetTrialAsync(long trialId, CancellationToken cancellationToken = default);

    /// <summary>
    /// The study's trials that match <paramref name="query"/>'s filter, sorted (then by number) and paged, with the
    /// number of matches before paging (-1 when the query says not to count them). The query is turned into parameterized SQL; nothing of it is pasted into SQL.
    /// </summary>
    Task<(IReadOnlyList<TrialRecord> Trials, int Total)> QueryTrialsAsync(string study, Queries.TrialQuery query, CancellationToken cancellationToken = default);

    /// <summary>
    /// The trials matching <paramref name="query"/>'s filter, grouped by the value of <paramref name="field"/> (a trial
    /// field or a parameter), with counts and the best and mean validation accuracy of each group; best groups first
    /// (then by value), paged by the query's offset and limit (counted in groups). The query's sort is not used.
    /// </summary>
    Task<IReadOnlyList<Queries.TrialGroup>> GroupTrialsAsync(string study, Queries.TrialQuery query, string field, CancellationToken cancellationToken = default);

    Task<StateCounts> CountStatesAsync(string study, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<EpochRecord>> GetEpochsAsync(long trialId, CancellationToken cancellationToken = default);

    /// <summary>
    /// The metrics at <paramref name="epoch"/> of the study's completed trials (for the median stopping rule, which
    /// reads the sweep's metric from them: a built-in field or a program's own metric).
    /// </summary>
    Task<IReadOnlyList<EpochRecord>> GetCompletedEpochsAtAsync(string study, int epoch, CancellationToken cancellationToken = default);

    /// <summary>Stores the study's result and closes it. Only once: a second call returns false and changes nothing.</summary>
    Task<bool> CloseStudyAsync(StudyResult result, CancellationToken cancellationToken = default);

    Task<StudyResult?> GetResultAsync(string study, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records that the worker is alive (inserted on its first heartbeat, with the store's time as its start): the
    /// time, the trial it runs (null: none) and its number of training slots (0 by default for rows written before slots
    /// were recorded).
    /// </summary>
    Task HeartbeatWorkerAsync(string workerId, string host, int pid, long? currentTrialId, int slots, CancellationToken cancellationToken = default);

    /// <summary>
    /// Records that the worker stopped of its own accord, at the store's time (<see cref="WorkerRecord.StoppedAt"/>), so
    /// that a clean stop is told apart from a death. A missing worker is not an error; a later heartbeat leaves the mark.
    /// </summary>
    Task MarkWorkerStoppedAsync(string workerId, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<WorkerRecord>> GetWorkersAsync(CancellationToken cancellationToken = default);

    Task AddEventAsync(string study, long? trialId, string kind, string message, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<(DateTimeOffset At, long? TrialId, string Kind, string Message)>> GetEventsAsync(string study, CancellationToken cancellationToken = default);
}
