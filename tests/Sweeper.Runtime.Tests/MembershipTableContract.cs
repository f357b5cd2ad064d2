using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Configuration;
using Orleans.Runtime;
using Sweeper.Core.Trials;
using Sweeper.Runtime.Cluster;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>One fresh database of a store backend; every <see cref="OpenAsync"/> is another store (another connection) on it.</summary>
public interface IMembershipDatabase : IAsyncDisposable
{
    Task<ITrialStore> OpenAsync();
}

/// <summary>
/// The contract of Orleans' <see cref="IMembershipTable"/> as <see cref="StoreMembershipTable"/> keeps it on a store.
/// Each backend's class only provides a fresh database.
/// </summary>
public abstract class MembershipTableContract
{
    private static int _port = 20_000;

    protected abstract IMembershipDatabase CreateDatabase();

    /// <summary>Now in UTC to the millisecond (what the stores keep).</summary>
    private static DateTime Now
    {
        get
        {
            var now = DateTime.UtcNow;
            return new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);
        }
    }

    private static SiloAddress NewSilo(int generation = 1) =>
        SiloAddress.New(new IPEndPoint(IPAddress.Loopback, Interlocked.Increment(ref _port)), generation);

    private static MembershipEntry Entry(SiloStatus status = SiloStatus.Joining, DateTime? time = null, string name = "silo") => new()
    {
        SiloAddress = NewSilo(),
        Status = status,
        HostName = "host-a",
        SiloName = name,
        ProxyPort = 30_000,
        StartTime = time ?? Now,
        IAmAliveTime = time ?? Now,
    };

    private static StoreMembershipTable Table(ITrialStore store, string cluster = "c1") =>
        new((IMembershipStore)store, Options.Create(new ClusterOptions { ClusterId = cluster }));

    private static async Task<(MembershipEntry Entry, string Etag, TableVersion Version)> RowAsync(IMembershipTable table, SiloAddress silo)
    {
        var data = await table.ReadRowAsync(silo, CancellationToken.None);
        var (entry, etag) = Assert.Single(data.Members);
        return (entry, etag, data.Version);
    }

    private static void AssertSame(MembershipEntry expected, MembershipEntry actual)
    {
        Assert.Equal(expected.SiloAddress, actual.SiloAddress);
        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.HostName, actual.HostName);
        Assert.Equal(expected.SiloName, actual.SiloName);
        Assert.Equal(expected.ProxyPort, actual.ProxyPort);
        Assert.Equal(expected.StartTime, actual.StartTime);
        Assert.Equal(expected.IAmAliveTime, actual.IAmAliveTime);
        Assert.Equal(DateTimeKind.Utc, actual.StartTime.Kind);
        Assert.Equal(DateTimeKind.Utc, actual.IAmAliveTime.Kind);
        Assert.Equal(expected.SuspectTimes?.Select(v => (v.Item1, v.Item2)), actual.SuspectTimes?.Select(v => (v.Item1, v.Item2)));
        Assert.All(actual.SuspectTimes ?? [], v => Assert.Equal(DateTimeKind.Utc, v.Item2.Kind));
    }

    /// <summary>An initialized table with one joining silo's entry, its etag and the table version after it.</summary>
    private static async Task<(StoreMembershipTable Table, MembershipEntry Entry, string Etag, TableVersion Version)> JoiningAsync(ITrialStore store)
    {
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var entry = Entry(SiloStatus.Joining);
        Assert.True(await table.InsertRowAsync(entry, (await table.ReadAllAsync(default)).Version.Next(), default));
        var (_, etag, version) = await RowAsync(table, entry.SiloAddress);
        return (table, entry, etag, version);
    }

    [Fact]
    public async Task Membership_init_is_idempotent_and_gives_an_empty_table_at_version_0()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var first = await table.ReadAllAsync(default);
        await table.InitializeMembershipTableAsync(true, default);
        await table.InitializeMembershipTableAsync(false, default);
        var second = await table.ReadAllAsync(default);

        Assert.Equal(0, first.Version.Version);
        Assert.False(string.IsNullOrEmpty(first.Version.VersionEtag));
        Assert.Equal(first.Version, second.Version);
        Assert.Empty(second.Members);
    }

    [Fact]
    public async Task An_inserted_entry_reads_back_with_every_field_by_row_and_in_the_whole_table()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var before = await table.ReadAllAsync(default);
        var entry = Entry(SiloStatus.Active, name: "silo-ü");
        entry.StartTime = Now.AddMinutes(-3);
        entry.AddSuspector(NewSilo(7), new DateTime(2026, 5, 4, 3, 2, 1, DateTimeKind.Utc).AddTicks(1234567)); // votes keep every tick
        entry.AddSuspector(NewSilo(8), Now);

        Assert.True(await table.InsertRowAsync(entry, before.Version.Next(), default));

        var (row, etag, version) = await RowAsync(table, entry.SiloAddress);
        AssertSame(entry, row);
        Assert.False(string.IsNullOrEmpty(etag));
        Assert.Equal(1, version.Version);
        Assert.NotEqual(before.Version.VersionEtag, version.VersionEtag);
        var all = await table.ReadAllAsync(default);
        var (inAll, etagInAll) = Assert.Single(all.Members);
        AssertSame(entry, inAll);
        Assert.Equal((etag, version), (etagInAll, all.Version));

        // Another silo is not in the table; its row reads empty, at the same version.
        var missing = await table.ReadRowAsync(NewSilo(), default);
        Assert.Empty(missing.Members);
        Assert.Equal(version, missing.Version);
    }

    [Fact]
    public async Task Membership_times_of_any_kind_are_stored_as_utc()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var entry = Entry();
        var utc = Now;
        entry.StartTime = utc.ToLocalTime();
        entry.IAmAliveTime = DateTime.SpecifyKind(utc, DateTimeKind.Unspecified);
        Assert.True(await table.InsertRowAsync(entry, (await table.ReadAllAsync(default)).Version.Next(), default));

        var (row, _, _) = await RowAsync(table, entry.SiloAddress);
        Assert.Equal((utc, DateTimeKind.Utc), (row.StartTime, row.StartTime.Kind));
        Assert.Equal((utc, DateTimeKind.Utc), (row.IAmAliveTime, row.IAmAliveTime.Kind));
    }

    [Fact]
    public async Task Membership_insert_fails_when_the_table_version_etag_is_stale_and_writes_nothing()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var v0 = (await table.ReadAllAsync(default)).Version;
        var first = Entry();
        Assert.True(await table.InsertRowAsync(first, v0.Next(), default));
        var after = await table.ReadAllAsync(default);

        Assert.False(await table.InsertRowAsync(Entry(), v0.Next(), default));
        Assert.False(await table.InsertRowAsync(Entry(), new TableVersion(1, "not-an-etag"), default));

        var now = await table.ReadAllAsync(default);
        Assert.Equal(after.Version, now.Version);
        Assert.Equal(first.SiloAddress, Assert.Single(now.Members).Item1.SiloAddress);
    }

    [Fact]
    public async Task Membership_insert_fails_when_the_silo_is_already_in_the_table()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var (table, entry, etag, version) = await JoiningAsync(store);

        var again = Entry(SiloStatus.Active);
        again.SiloAddress = entry.SiloAddress;
        Assert.False(await table.InsertRowAsync(again, version.Next(), default));

        var (row, etagAfter, versionAfter) = await RowAsync(table, entry.SiloAddress);
        AssertSame(entry, row);
        Assert.Equal((etag, version), (etagAfter, versionAfter));
    }

    [Fact]
    public async Task Membership_update_with_the_current_etags_replaces_the_entry_and_changes_the_etags_and_the_version()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var (table, entry, etag, version) = await JoiningAsync(store);

        var updated = Entry(SiloStatus.Active, Now.AddSeconds(5), "renamed");
        updated.SiloAddress = entry.SiloAddress;
        updated.ProxyPort = 0;
        updated.AddSuspector(NewSilo(), Now);
        Assert.True(await table.UpdateRowAsync(updated, etag, version.Next(), default));

        var (row, etagAfter, versionAfter) = await RowAsync(table, entry.SiloAddress);
        AssertSame(updated, row);
        Assert.Equal(2, versionAfter.Version);
        Assert.NotEqual(version.VersionEtag, versionAfter.VersionEtag);
        Assert.NotEqual(etag, etagAfter);

        // The suspicions can be cleared again: the entry is replaced as a whole.
        updated.SuspectTimes = null;
        Assert.True(await table.UpdateRowAsync(updated, etagAfter, versionAfter.Next(), default));
        AssertSame(updated, (await RowAsync(table, entry.SiloAddress)).Entry);
    }

    [Fact]
    public async Task Membership_update_fails_when_the_row_etag_is_stale()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var (table, entry, staleEtag, version) = await JoiningAsync(store);
        entry.Status = SiloStatus.Active;
        Assert.True(await table.UpdateRowAsync(entry, staleEtag, version.Next(), default));
        var (_, etag, current) = await RowAsync(table, entry.SiloAddress);

        var dead = Entry(SiloStatus.Dead);
        dead.SiloAddress = entry.SiloAddress;
        Assert.False(await table.UpdateRowAsync(dead, staleEtag, current.Next(), default));
        Assert.False(await table.UpdateRowAsync(dead, "not-an-etag", current.Next(), default));

        var (row, etagAfter, versionAfter) = await RowAsync(table, entry.SiloAddress);
        AssertSame(entry, row);
        Assert.Equal((etag, current), (etagAfter, versionAfter));
    }

    [Fact]
    public async Task Membership_update_fails_when_the_table_version_etag_is_stale_or_the_silo_is_missing()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var (table, entry, etag, staleVersion) = await JoiningAsync(store);
        Assert.True(await table.InsertRowAsync(Entry(), staleVersion.Next(), default)); // another silo joins: the version moves on
        var current = (await table.ReadAllAsync(default)).Version;

        entry.Status = SiloStatus.Active;
        Assert.False(await table.UpdateRowAsync(entry, etag, staleVersion.Next(), default));
        Assert.False(await table.UpdateRowAsync(Entry(), etag, current.Next(), default)); // not in the table

        var after = await table.ReadAllAsync(default);
        Assert.Equal(current, after.Version);
        Assert.Equal(2, after.Members.Count);
        Assert.Equal((SiloStatus.Joining, etag), (after.TryGet(entry.SiloAddress)!.Item1.Status, after.TryGet(entry.SiloAddress)!.Item2));
    }

    [Fact]
    public async Task Membership_IAmAlive_changes_only_that_column_and_neither_the_etags_nor_the_version()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        await table.InitializeMembershipTableAsync(true, default);
        var entry = Entry(SiloStatus.Active);
        Assert.True(await table.InsertRowAsync(entry, (await table.ReadAllAsync(default)).Version.Next(), default));
        var (_, etag, version) = await RowAsync(table, entry.SiloAddress);

        var heartbeat = Entry(SiloStatus.Dead, Now.AddMinutes(1), "other"); // only the address and IAmAliveTime count
        heartbeat.SiloAddress = entry.SiloAddress;
        await table.UpdateIAmAliveAsync(heartbeat, default);
        await table.UpdateIAmAliveAsync(Entry(), default); // a silo not in the table: nothing to do, nothing added

        var (row, etagAfter, versionAfter) = await RowAsync(table, entry.SiloAddress);
        entry.IAmAliveTime = heartbeat.IAmAliveTime;
        AssertSame(entry, row);
        Assert.Equal((etag, version), (etagAfter, versionAfter));
        Assert.Single((await table.ReadAllAsync(default)).Members);

        // Etags read before the heartbeat are still good for an update.
        entry.Status = SiloStatus.ShuttingDown;
        Assert.True(await table.UpdateRowAsync(entry, etag, version.Next(), default));
    }

    [Fact]
    public async Task The_obsolete_membership_methods_without_a_token_do_the_same()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
#pragma warning disable CS0618 // what older callers of the interface still call
        await table.InitializeMembershipTable(true);
        var entry = Entry(SiloStatus.Joining, Now.AddDays(-10));
        Assert.True(await table.InsertRow(entry, (await table.ReadAll()).Version.Next()));
        var (row, etag) = Assert.Single((await table.ReadRow(entry.SiloAddress)).Members);
        AssertSame(entry, row);
        entry.Status = SiloStatus.Dead;
        Assert.True(await table.UpdateRow(entry, etag, (await table.ReadAll()).Version.Next()));
        await table.UpdateIAmAlive(entry);
        await table.CleanupDefunctSiloEntries(DateTimeOffset.UtcNow.AddDays(-3));
        Assert.Empty((await table.ReadAll()).Members);
        await table.DeleteMembershipTableEntries("c1");
        Assert.Equal(new TableVersion(0, ""), (await table.ReadAll()).Version);
#pragma warning restore CS0618
    }

    [Fact]
    public async Task Of_concurrent_membership_inserts_on_the_same_version_exactly_one_wins()
    {
        await using var db = CreateDatabase();
        var stores = new List<ITrialStore>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                stores.Add(await db.OpenAsync());
            }

            await Table(stores[0]).InitializeMembershipTableAsync(true, default);
            var version = (await Table(stores[0]).ReadAllAsync(default)).Version;
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var races = stores.Select(s => Task.Run(async () =>
            {
                var table = Table(s);
                var entry = Entry();
                await start.Task;
                return (entry, won: await table.InsertRowAsync(entry, version.Next(), default));
            })).ToList();
            start.SetResult();
            var results = await Task.WhenAll(races);

            var winner = Assert.Single(results, r => r.won);
            var after = await Table(stores[0]).ReadAllAsync(default);
            Assert.Equal(winner.entry.SiloAddress, Assert.Single(after.Members).Item1.SiloAddress);
            Assert.Equal(1, after.Version.Version);
        }
        finally
        {
            foreach (var s in stores)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Of_concurrent_membership_updates_on_the_same_version_exactly_one_wins()
    {
        await using var db = CreateDatabase();
        var stores = new List<ITrialStore>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                stores.Add(await db.OpenAsync());
            }

            var setup = Table(stores[0]);
            await setup.InitializeMembershipTableAsync(true, default);
            var entries = new[] { Entry(), Entry() };
            Assert.True(await setup.InsertRowAsync(entries[0], (await setup.ReadAllAsync(default)).Version.Next(), default));
            Assert.True(await setup.InsertRowAsync(entries[1], (await setup.ReadAllAsync(default)).Version.Next(), default));
            var read = await setup.ReadAllAsync(default);
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            // Each racer updates one of the two silos (its own current row etag), all on the same table version.
            var races = stores.Select((s, i) => Task.Run(async () =>
            {
                var table = Table(s);
                var (current, etag) = read.TryGet(entries[i % 2].SiloAddress)!;
                var entry = Entry(SiloStatus.Active, name: $"racer-{i}");
                entry.SiloAddress = current.SiloAddress;
                await start.Task;
                return (name: entry.SiloName, won: await table.UpdateRowAsync(entry, etag, read.Version.Next(), default));
            })).ToList();
            start.SetResult();
            var results = await Task.WhenAll(races);

            var winner = Assert.Single(results, r => r.won);
            var after = await setup.ReadAllAsync(default);
            Assert.Equal(3, after.Version.Version);
            Assert.Equal(new[] { winner.name, "silo" }, after.Members.Select(m => m.Item1.SiloName).Order(StringComparer.Ordinal));
        }
        finally
        {
            foreach (var s in stores)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Defunct_membership_cleanup_deletes_only_entries_not_active_and_not_updated_since_the_date()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        var other = Table(store, "c2");
        await table.InitializeMembershipTableAsync(true, default);
        await other.InitializeMembershipTableAsync(true, default);
        var old = Now.AddDays(-10);
        var kept = new List<MembershipEntry>();
        var gone = new List<MembershipEntry>();

        async Task InsertAsync(IMembershipTable into, MembershipEntry entry) =>
            Assert.True(await into.InsertRowAsync(entry, (await into.ReadAllAsync(default)).Version.Next(), default));

        foreach (var status in Enum.GetValues<SiloStatus>())
        {
            var entry = Entry(status, old);
            await InsertAsync(table, entry);
            (status == SiloStatus.Active ? kept : gone).Add(entry);
        }

        var recentlyDead = Entry(SiloStatus.Dead); // died just now
        var recentlyStarted = Entry(SiloStatus.Dead, old);
        recentlyStarted.StartTime = Now;
        var recentlyAlive = Entry(SiloStatus.Dead, old);
        var recentlySuspected = Entry(SiloStatus.Dead, old); // declared dead just now, after a long silence
        recentlySuspected.AddSuspector(NewSilo(), Now);
        var suspectedLongAgo = Entry(SiloStatus.Dead, old);
        suspectedLongAgo.AddSuspector(NewSilo(), old);
        foreach (var entry in new[] { recentlyDead, recentlyStarted, recentlyAlive, recentlySuspected, suspectedLongAgo })
        {
            await InsertAsync(table, entry);
        }

        await table.UpdateIAmAliveAsync(new MembershipEntry { SiloAddress = recentlyAlive.SiloAddress, IAmAliveTime = Now }, default);
        kept.AddRange([recentlyDead, recentlyStarted, recentlyAlive, recentlySuspected]);
        gone.Add(suspectedLongAgo);
        var otherCluster = Entry(SiloStatus.Dead, old);
        await InsertAsync(other, otherCluster);
        var before = await table.ReadAllAsync(default);
        Assert.Equal(kept.Count + gone.Count, before.Members.Count);

        await table.CleanupDefunctSiloEntriesAsync(new DateTimeOffset(Now.AddDays(-3)), default);

        var after = await table.ReadAllAsync(default);
        Assert.Equal(Addresses(kept), Addresses(after.Members.Select(m => m.Item1)));
        Assert.Equal(before.Version, after.Version);
        Assert.Equal(otherCluster.SiloAddress, Assert.Single((await other.ReadAllAsync(default)).Members).Item1.SiloAddress);
    }

    private static string[] Addresses(IEnumerable<MembershipEntry> entries) => [.. entries.Select(e => e.SiloAddress.ToParsableString()).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Deleting_the_membership_of_a_cluster_removes_all_its_entries_and_leaves_another_cluster()
    {
        await using var db = CreateDatabase();
        await using var store = await db.OpenAsync();
        var table = Table(store);
        var other = Table(store, "c2");
        foreach (var t in new[] { table, other })
        {
            await t.InitializeMembershipTableAsync(true, default);
            Assert.True(await t.InsertRowAsync(Entry(SiloStatus.Active), (await t.ReadAllAsync(default)).Version.Next(), default));
            Assert.True(await t.InsertRowAsync(Entry(SiloStatus.Dead), (await t.ReadAllAsync(default)).Version.Next(), default));
        }

        var stale = (await table.ReadAllAsync(default)).Version;
        var otherBefore = await other.ReadAllAsync(default);

        await table.DeleteMembershipTableEntriesAsync("c1", default);

        var gone = await table.ReadAllAsync(default);
        Assert.Empty(gone.Members);
        Assert.Equal(0, gone.Version.Version);
        var otherAfter = await other.ReadAllAsync(default);
        Assert.Equal(otherBefore.Version, otherAfter.Version);
        Assert.Equal(otherBefore.Members.Select(m => (m.Item1.SiloAddress, m.Item2)), otherAfter.Members.Select(m => (m.Item1.SiloAddress, m.Item2)));

        // Initialized again, the cluster starts over at version 0; etags of before the deletion match nothing.
        await table.InitializeMembershipTableAsync(true, default);
        var fresh = await table.ReadAllAsync(default);
        Assert.Equal(0, fresh.Version.Version);
        Assert.NotEqual(stale.VersionEtag, fresh.Version.VersionEtag);
        Assert.False(await table.InsertRowAsync(Entry(), stale.Next(), default));
        Assert.True(await table.InsertRowAsync(Entry(), fresh.Version.Next(), default));
    }
}

/// <summary>The membership table contract on a fresh SQLite file per test (each store one connection to it).</summary>
public sealed class SqliteMembershipTableTests : MembershipTableContract
{
    protected override IMembershipDatabase CreateDatabase() => new Database();

    private sealed class Database : IMembershipDatabase
    {
        private readonly string _dir = Path.Combine(Path.GetTempPath(), "sweeper-membership-" + Guid.NewGuid().ToString("N")[..12]);

        public async Task<ITrialStore> OpenAsync() => await SqliteTrialStore.OpenAsync(Path.Combine(_dir, "store.db"));

        public ValueTask DisposeAsync()
        {
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
            }

            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>The membership table contract on a fresh database of the shared test PostgreSQL server per test.</summary>
public sealed class PostgresMembershipTableTests : MembershipTableContract
{
    protected override IMembershipDatabase CreateDatabase() => new Database();

    private sealed class Database : IMembershipDatabase
    {
        private readonly string _connectionString = Storage.Tests.PostgresServer.Shared.CreateDatabase();

        public async Task<ITrialStore> OpenAsync() => await PostgresTrialStore.OpenAsync(_connectionString);

        public ValueTask DisposeAsync()
        {
            Storage.Tests.PostgresServer.Shared.DropDatabase(_connectionString);
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>What <see cref="StoreMembershipTable"/> does on its own, whatever the store.</summary>
public sealed class StoreMembershipTableTests
{
    [Fact]
    public void AddStoreMembership_registers_one_table_for_the_configured_cluster()
    {
        var store = new UnreachableStore();
        var services = new ServiceCollection();
        services.Configure<ClusterOptions>(o => o.ClusterId = "sweeps");
        services.AddStoreMembership(store);
        using var provider = services.BuildServiceProvider();

        var table = Assert.IsType<StoreMembershipTable>(provider.GetRequiredService<IMembershipTable>());
        Assert.Equal("sweeps", table.ClusterId);
        Assert.Same(table, provider.GetRequiredService<IMembershipTable>());
    }

    [Fact]
    public async Task A_membership_store_that_cannot_be_reached_fails_each_call_with_its_own_exception()
    {
        var table = new StoreMembershipTable(new UnreachableStore(), Options.Create(new ClusterOptions { ClusterId = "c" }));
        var entry = new MembershipEntry { SiloAddress = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 1), 1), HostName = "h", SiloName = "s" };
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.InitializeMembershipTableAsync(true, default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.ReadAllAsync(default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.ReadRowAsync(entry.SiloAddress, default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.InsertRowAsync(entry, new TableVersion(1, "e"), default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.UpdateRowAsync(entry, "e", new TableVersion(1, "e"), default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.UpdateIAmAliveAsync(entry, default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.CleanupDefunctSiloEntriesAsync(DateTimeOffset.UtcNow, default));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => table.DeleteMembershipTableEntriesAsync("c", default));
    }

    [Fact]
    public void A_membership_table_needs_a_cluster_id()
    {
        Assert.Throws<ArgumentException>(() => new StoreMembershipTable(new UnreachableStore(), Options.Create(new ClusterOptions { ClusterId = "" })));
    }

    /// <summary>A store whose server is down past its retries.</summary>
    private sealed class UnreachableStore : IMembershipStore
    {
        private static Task<T> Down<T>() => Task.FromException<T>(new StoreUnavailableException("down", new IOException("connection refused")));

        public Task InitMembershipAsync(string clusterId, CancellationToken cancellationToken = default) => Down<int>();

        public Task<MembershipSnapshot> ReadMembersAsync(string clusterId, string? address, CancellationToken cancellationToken = default) => Down<MembershipSnapshot>();

        public Task<bool> InsertMemberAsync(string clusterId, MemberRow row, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default) => Down<bool>();

        public Task<bool> UpdateMemberAsync(string clusterId, MemberRow row, string expectedRowEtag, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default) => Down<bool>();

        public Task UpdateIAmAliveAsync(string clusterId, string address, DateTimeOffset at, CancellationToken cancellationToken = default) => Down<int>();

        public Task<int> DeleteDefunctMembersAsync(string clusterId, DateTimeOffset before, CancellationToken cancellationToken = default) => Down<int>();

        public Task DeleteMembersAsync(string clusterId, CancellationToken cancellationToken = default) => Down<int>();
    }
}
