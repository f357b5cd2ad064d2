using System.Data.Common;
using Sweeper.Core.Trials;

namespace Sweeper.Storage;

/// <summary>
/// The statements and row mapping of the membership tables (<see cref="IMembershipStore"/>), the same in both
/// stores' SQL but for the parameter prefix (<c>$</c> for SQLite, <c>@</c> for PostgreSQL). Tables (migration 4):
/// <c>membership_version (cluster, version, etag)</c>, one row per cluster, and <c>members (cluster, address, ...,
/// etag)</c>, keyed by cluster and address. Times are UTC Unix milliseconds.
/// </summary>
internal static class MembershipSql
{
    private const string Columns = "address, status, host_name, silo_name, proxy_port, start_time, i_am_alive_time, suspect_times, latest_suspect_time, etag";

    /// <summary>A fresh etag: unique across clusters, writes and stores, so an etag of a deleted row or version never matches again.</summary>
    public static string NewEtag() => Guid.NewGuid().ToString("N");

    /// <summary>The version row joined to the members (or the one at <c>{p}a</c>): one statement, so one snapshot.</summary>
    public static string Read(string p, bool oneMember) =>
        $"""
        SELECT v.version, v.etag, m.address, m.status, m.host_name, m.silo_name, m.proxy_port, m.start_time, m.i_am_alive_time, m.suspect_times, m.latest_suspect_time, m.etag
        FROM membership_version v LEFT JOIN members m ON m.cluster = v.cluster{(oneMember ? $" AND m.address = {p}a" : "")}
        WHERE v.cluster = {p}c ORDER BY m.address
        """;

    public static string Init(string p) => $"INSERT INTO membership_version (cluster, version, etag) VALUES ({p}c, 0, {p}e) ON CONFLICT (cluster) DO NOTHING";

    public static string VersionEtag(string p) => $"SELECT etag FROM membership_version WHERE cluster = {p}c";

    public static string RowEtag(string p) => $"SELECT etag FROM members WHERE cluster = {p}c AND address = {p}a";

    public static string SetVersion(string p) => $"UPDATE membership_version SET version = {p}v, etag = {p}e WHERE cluster = {p}c";

    public static string Insert(string p) =>
        $"INSERT INTO members (cluster, {Columns}) VALUES ({p}c, {p}a, {p}status, {p}host, {p}silo, {p}proxy, {p}start, {p}alive, {p}suspects, {p}suspected, {p}e) ON CONFLICT (cluster, address) DO NOTHING";

    public static string Update(string p) =>
        $"""
        UPDATE members SET status = {p}status, host_name = {p}host, silo_name = {p}silo, proxy_port = {p}proxy, start_time = {p}start, i_am_alive_time = {p}alive,
            suspect_times = {p}suspects, latest_suspect_time = {p}suspected, etag = {p}e
        WHERE cluster = {p}c AND address = {p}a AND etag = {p}expected
        """;

    public static string IAmAlive(string p) => $"UPDATE members SET i_am_alive_time = {p}t WHERE cluster = {p}c AND address = {p}a";

    /// <summary>Not active, and the latest of start, IAmAlive and latest suspect vote before <c>{p}b</c>.</summary>
    public static string DeleteDefunct(string p) =>
        $"""
        DELETE FROM members WHERE cluster = {p}c AND status <> {p}active
            AND start_time < {p}b AND i_am_alive_time < {p}b AND (latest_suspect_time IS NULL OR latest_suspect_time < {p}b)
        """;

    public static string DeleteMembers(string p) => $"DELETE FROM members WHERE cluster = {p}c";

    public static string DeleteVersion(string p) => $"DELETE FROM membership_version WHERE cluster = {p}c";

    /// <summary>
    /// The parameters of <see cref="Insert"/> and <see cref="Update"/> (the latter also needs <c>expected</c>), their names
    /// prefixed with <paramref name="p"/> (SQLite's parameters are named with their <c>$</c>, Npgsql's without the <c>@</c>).
    /// </summary>
    public static (string Name, object? Value)[] Row(string p, string clusterId, MemberRow row, string etag) =>
    [
        (p + "c", clusterId), (p + "a", row.Address), (p + "status", row.Status), (p + "host", row.HostName), (p + "silo", row.SiloName),
        (p + "proxy", row.ProxyPort), (p + "start", row.StartTime.ToUnixTimeMilliseconds()), (p + "alive", row.IAmAliveTime.ToUnixTimeMilliseconds()),
        (p + "suspects", (object?)row.SuspectTimes ?? DBNull.Value), (p + "suspected", (object?)row.LatestSuspectTime?.ToUnixTimeMilliseconds() ?? DBNull.Value),
        (p + "e", etag),
    ];

    /// <summary>One line of <see cref="Read"/>: the version and its etag, and the member when there is one.</summary>
    public static (int Version, string Etag, MemberRow? Member) ReadLine(DbDataReader r) => (r.GetInt32(0), r.GetString(1), r.IsDBNull(2) ? null : new MemberRow(
        r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt32(6), Time(r.GetInt64(7)), Time(r.GetInt64(8)),
        r.IsDBNull(9) ? null : r.GetString(9), r.IsDBNull(10) ? null : Time(r.GetInt64(10)), r.GetString(11)));

    /// <summary>The snapshot from the lines of <see cref="Read"/>; no line at all means the cluster has no version row.</summary>
    public static MembershipSnapshot Snapshot(IReadOnlyList<(int Version, string Etag, MemberRow? Member)> lines) =>
        lines.Count == 0
            ? new MembershipSnapshot(0, "", [])
            : new MembershipSnapshot(lines[0].Version, lines[0].Etag, [.. lines.Where(l => l.Member is not null).Select(l => l.Member!)]);

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
}
