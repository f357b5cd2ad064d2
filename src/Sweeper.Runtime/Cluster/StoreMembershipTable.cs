using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime.Cluster;

/// <summary>
/// Orleans' membership table kept in Sweeper's own trial store (SQLite or PostgreSQL, through
/// <see cref="IMembershipStore"/>), for the cluster named by <see cref="ClusterOptions.ClusterId"/>.
/// <para>
/// Semantics are those of <see cref="IMembershipTable"/>: <see cref="InsertRowAsync"/> fails (false, nothing written)
/// when the silo is already in the table or the table version's etag is stale; <see cref="UpdateRowAsync"/> when the
/// silo is missing, its row etag is stale or the version etag is; each success writes the row and the new table
/// version atomically, with new etags. Reads return the table version with its etag, read atomically with the rows.
/// <see cref="UpdateIAmAliveAsync"/> is a dirty write of that one column: it changes neither the row's etag nor the
/// table version, so etags read before a heartbeat stay valid. <see cref="CleanupDefunctSiloEntriesAsync"/> deletes
/// the entries that are not Active and whose latest start, IAmAlive or suspect-vote time is before the date.
/// <see cref="InitializeMembershipTableAsync"/> creates the cluster's version row (version 0) only when asked to.
/// Orleans calls the cancellation-aware <c>...Async</c> methods, whose token reaches the store; the tokenless ones
/// (obsolete in the interface) call them with none.
/// </para>
/// <para>
/// Mapping: the silo address as <see cref="SiloAddress.ToParsableString"/>; the status by name; times as UTC (an
/// unspecified kind is taken as UTC, a local time is converted), to the millisecond, read back as
/// <see cref="DateTimeKind.Utc"/>; suspect votes as JSON, to the tick. <see cref="MembershipEntry.RoleName"/>,
/// <see cref="MembershipEntry.UpdateZone"/> and <see cref="MembershipEntry.FaultZone"/> (Azure roles only) are not kept.
/// A <see cref="StoreUnavailableException"/> of the store (after its own retries) propagates: Orleans retries.
/// </para>
/// </summary>
public sealed class StoreMembershipTable : IMembershipTable
{
    private static readonly JsonSerializerOptions _json = new(JsonSerializerDefaults.Web);

    private readonly IMembershipStore _store;
    private readonly string _clusterId;

    public StoreMembershipTable(IMembershipStore store, IOptions<ClusterOptions> clusterOptions)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(clusterOptions);
        _store = store;
        _clusterId = clusterOptions.Value.ClusterId is { Length: > 0 } id
            ? id
            : throw new ArgumentException("the cluster id (ClusterOptions.ClusterId) is not set.", nameof(clusterOptions));
    }

    /// <summary>The cluster whose membership this table holds.</summary>
    public string ClusterId => _clusterId;

    [Obsolete("Use InitializeMembershipTableAsync instead.")]
    public Task InitializeMembershipTable(bool tryInitTableVersion) => InitializeMembershipTableAsync(tryInitTableVersion, CancellationToken.None);

    public Task InitializeMembershipTableAsync(bool tryInitTableVersion, CancellationToken cancellationToken) =>
        tryInitTableVersion ? _store.InitMembershipAsync(_clusterId, cancellationToken) : Task.CompletedTask;

    [Obsolete("Use DeleteMembershipTableEntriesAsync instead.")]
    public Task DeleteMembershipTableEntries(string clusterId) => DeleteMembershipTableEntriesAsync(clusterId, CancellationToken.None);

    public Task DeleteMembershipTableEntriesAsync(string clusterId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(clusterId);
        return _store.DeleteMembersAsync(clusterId, cancellationToken);
    }

    [Obsolete("Use CleanupDefunctSiloEntriesAsync instead.")]
    public Task CleanupDefunctSiloEntries(DateTimeOffset beforeDate) => CleanupDefunctSiloEntriesAsync(beforeDate, CancellationToken.None);

    public Task CleanupDefunctSiloEntriesAsync(DateTimeOffset beforeDate, CancellationToken cancellationToken) =>
        _store.DeleteDefunctMembersAsync(_clusterId, beforeDate, cancellationToken);

    [Obsolete("Use ReadRowAsync instead.")]
    public Task<MembershipTableData> ReadRow(SiloAddress key) => ReadRowAsync(key, CancellationToken.None);

    public async Task<MembershipTableData> ReadRowAsync(SiloAddress key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return ToData(await _store.ReadMembersAsync(_clusterId, key.ToParsableString(), cancellationToken));
    }

    [Obsolete("Use ReadAllAsync instead.")]
    public Task<MembershipTableData> ReadAll() => ReadAllAsync(CancellationToken.None);

    public async Task<MembershipTableData> ReadAllAsync(CancellationToken cancellationToken) =>
        ToData(await _store.ReadMembersAsync(_clusterId, null, cancellationToken));

    [Obsolete("Use InsertRowAsync instead.")]
    public Task<bool> InsertRow(MembershipEntry entry, TableVersion tableVersion) => InsertRowAsync(entry, tableVersion, CancellationToken.None);

    public Task<bool> InsertRowAsync(MembershipEntry entry, TableVersion tableVersion, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(tableVersion);
        return _store.InsertMemberAsync(_clusterId, ToRow(entry), tableVersion.Version, tableVersion.VersionEtag, cancellationToken);
    }

    [Obsolete("Use UpdateRowAsync instead.")]
    public Task<bool> UpdateRow(MembershipEntry entry, string etag, TableVersion tableVersion) => UpdateRowAsync(entry, etag, tableVersion, CancellationToken.None);

    public Task<bool> UpdateRowAsync(MembershipEntry entry, string etag, TableVersion tableVersion, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(etag);
        ArgumentNullException.ThrowIfNull(tableVersion);
        return _store.UpdateMemberAsync(_clusterId, ToRow(entry), etag, tableVersion.Version, tableVersion.VersionEtag, cancellationToken);
    }

    [Obsolete("Use UpdateIAmAliveAsync instead.")]
    public Task UpdateIAmAlive(MembershipEntry entry) => UpdateIAmAliveAsync(entry, CancellationToken.None);

    public Task UpdateIAmAliveAsync(MembershipEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return _store.UpdateIAmAliveAsync(_clusterId, entry.SiloAddress.ToParsableString(), Utc(entry.IAmAliveTime), cancellationToken);
    }

    /// <summary>The row stored for <paramref name="entry"/> (its etag is the store's business).</summary>
    public static MemberRow ToRow(MembershipEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var votes = entry.SuspectTimes?.Select(v => new SuspectVote(v.Item1.ToParsableString(), Utc(v.Item2).UtcDateTime)).ToList();
        return new MemberRow(
            entry.SiloAddress.ToParsableString(),
            entry.Status.ToString(),
            entry.HostName ?? "",
            entry.SiloName ?? "",
            entry.ProxyPort,
            Utc(entry.StartTime),
            Utc(entry.IAmAliveTime),
            votes is null ? null : JsonSerializer.Serialize(votes, _json),
            votes is { Count: > 0 } ? new DateTimeOffset(votes.Max(v => v.At)) : null);
    }

    /// <summary>The entry a stored row stands for, with its times in UTC.</summary>
    public static MembershipEntry ToEntry(MemberRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return new MembershipEntry
        {
            SiloAddress = SiloAddress.FromParsableString(row.Address),
            Status = Enum.Parse<SiloStatus>(row.Status),
            HostName = row.HostName,
            SiloName = row.SiloName,
            ProxyPort = row.ProxyPort,
            StartTime = row.StartTime.UtcDateTime,
            IAmAliveTime = row.IAmAliveTime.UtcDateTime,
            SuspectTimes = row.SuspectTimes is null ? null
                : [.. JsonSerializer.Deserialize<List<SuspectVote>>(row.SuspectTimes, _json)!
                    .Select(v => Tuple.Create(SiloAddress.FromParsableString(v.Silo), DateTime.SpecifyKind(v.At, DateTimeKind.Utc)))],
        };
    }

    /// <summary>The silos (parsable addresses) whose suspect votes <paramref name="row"/> holds, in order; empty when none.</summary>
    public static IReadOnlyList<string> Suspecters(MemberRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return row.SuspectTimes is null ? [] : [.. JsonSerializer.Deserialize<List<SuspectVote>>(row.SuspectTimes, _json)!.Select(v => v.Silo)];
    }

    private static MembershipTableData ToData(MembershipSnapshot snapshot) =>
        new([.. snapshot.Members.Select(m => Tuple.Create(ToEntry(m), m.Etag))], new TableVersion(snapshot.Version, snapshot.VersionEtag));

    /// <summary>A time as UTC: a local one converted, an unspecified one taken as UTC already (as Orleans does).</summary>
    private static DateTimeOffset Utc(DateTime time) =>
        new(time.Kind == DateTimeKind.Local ? time.ToUniversalTime() : DateTime.SpecifyKind(time, DateTimeKind.Utc));

    /// <summary>One suspect vote as kept in <see cref="MemberRow.SuspectTimes"/>: the voter's parsable address and the UTC time.</summary>
    private sealed record SuspectVote(string Silo, DateTime At);
}

/// <summary>Registration of <see cref="StoreMembershipTable"/>.</summary>
public static class StoreMembershipExtensions
{
    /// <summary>
    /// Registers a <see cref="StoreMembershipTable"/> over <paramref name="store"/> as the (singleton)
    /// <see cref="IMembershipTable"/>, for the cluster of the configured <see cref="ClusterOptions"/>. The store's
    /// lifetime stays the caller's.
    /// </summary>
    public static IServiceCollection AddStoreMembership(this IServiceCollection services, IMembershipStore store)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(store);
        return services.AddSingleton<IMembershipTable>(sp => new StoreMembershipTable(store, sp.GetRequiredService<IOptions<ClusterOptions>>()));
    }
}
