namespace Sweeper.Core.Trials;

/// <summary>
/// A cluster membership table kept in the trial store: one version row per cluster and one row per member (a silo
/// of the runtime), with optimistic concurrency by etags. It knows nothing of the runtime that uses it; the runtime
/// maps its own membership entries to <see cref="MemberRow"/>.
/// <para>
/// Every method is one atomic transaction and may be called concurrently from any number of threads and
/// processes. Etags are opaque strings: each successful insert or update gives the table version and the written
/// row a new etag, never used before (a fresh GUID); <see cref="UpdateIAmAliveAsync"/> changes neither. A write
/// whose expectation fails returns false and writes nothing. The PostgreSQL store retries transient failures and
/// then throws <see cref="StoreUnavailableException"/>; a conditional write retried after a lost commit answer
/// still reports its success.
/// </para>
/// </summary>
public interface IMembershipStore
{
    /// <summary>Creates the cluster's version row (version 0, a fresh etag) if it is missing; otherwise changes nothing.</summary>
    Task InitMembershipAsync(string clusterId, CancellationToken cancellationToken = default);

    /// <summary>
    /// The cluster's table version and etag with its members (all of them, or only the one at
    /// <paramref name="address"/> when given, possibly none), ordered by address and read atomically. A cluster
    /// whose version row is missing (never initialized, or deleted) reads as version 0 with an empty etag and no
    /// members; no write expecting that etag succeeds.
    /// </summary>
    Task<MembershipSnapshot> ReadMembersAsync(string clusterId, string? address, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds <paramref name="row"/> (its <see cref="MemberRow.Etag"/> is ignored) and sets the table version to
    /// <paramref name="newVersion"/>, both with one new etag. Returns false, writing nothing, when the address is
    /// already a member of the cluster or the table's version etag is not <paramref name="expectedVersionEtag"/>.
    /// </summary>
    Task<bool> InsertMemberAsync(string clusterId, MemberRow row, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces every column of the member at <paramref name="row"/>'s address (its <see cref="MemberRow.Etag"/> is
    /// ignored) and sets the table version to <paramref name="newVersion"/>, both with one new etag. Returns false,
    /// writing nothing, when the member is missing, its etag is not <paramref name="expectedRowEtag"/>, or the
    /// table's version etag is not <paramref name="expectedVersionEtag"/>.
    /// </summary>
    Task<bool> UpdateMemberAsync(string clusterId, MemberRow row, string expectedRowEtag, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sets the member's <see cref="MemberRow.IAmAliveTime"/> to <paramref name="at"/> without any etag check (a
    /// dirty write): no other column, not its etag, not the table version. A missing member is not an error.
    /// </summary>
    Task UpdateIAmAliveAsync(string clusterId, string address, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes the cluster's defunct members: those whose <see cref="MemberRow.Status"/> is not
    /// <see cref="MemberRow.ActiveStatus"/> and whose last known update (the latest of their start, IAmAlive and
    /// latest suspect times) is before <paramref name="before"/>. The table version is not changed. Returns how many.
    /// </summary>
    Task<int> DeleteDefunctMembersAsync(string clusterId, DateTimeOffset before, CancellationToken cancellationToken = default);

    /// <summary>Deletes every member of the cluster and its version row (other clusters are untouched).</summary>
    Task DeleteMembersAsync(string clusterId, CancellationToken cancellationToken = default);
}

/// <summary>
/// One member of a cluster as stored. Times are kept to the millisecond (stored as UTC Unix milliseconds).
/// </summary>
/// <param name="Address">The member's address in its parsable text form (the key within the cluster).</param>
/// <param name="Status">The member's status name; <see cref="ActiveStatus"/> marks a live member, never cleaned up.</param>
/// <param name="HostName">The host the member runs on.</param>
/// <param name="SiloName">The member's name within the cluster.</param>
/// <param name="ProxyPort">The port clients connect to (0: none).</param>
/// <param name="StartTime">When the member started.</param>
/// <param name="IAmAliveTime">When the member last said it was alive.</param>
/// <param name="SuspectTimes">The votes suspecting the member, as text (JSON) the store does not read; null when none.</param>
/// <param name="LatestSuspectTime">The time of the latest of those votes, null when none (used by defunct cleanup).</param>
/// <param name="Etag">The row's etag, set by the store on every insert and update; ignored when writing.</param>
public sealed record MemberRow(
    string Address,
    string Status,
    string HostName,
    string SiloName,
    int ProxyPort,
    DateTimeOffset StartTime,
    DateTimeOffset IAmAliveTime,
    string? SuspectTimes,
    DateTimeOffset? LatestSuspectTime,
    string Etag = "")
{
    /// <summary>The status of a live member: <see cref="IMembershipStore.DeleteDefunctMembersAsync"/> never deletes it.</summary>
    public const string ActiveStatus = "Active";
}

/// <summary>A cluster's table version, its etag and members (all or one), read in one snapshot.</summary>
public sealed record MembershipSnapshot(int Version, string VersionEtag, IReadOnlyList<MemberRow> Members);
