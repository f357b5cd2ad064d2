using Microsoft.Data.Sqlite;
using Sweeper.Core.Trials;

namespace Sweeper.Storage.Tests;

/// <summary>The contract suite on a fresh SQLite file per test.</summary>
public sealed class SqliteTrialStoreTests : TrialStoreContract
{
    protected override Task<IStoreDatabase> CreateDatabaseAsync() => Task.FromResult<IStoreDatabase>(new SqliteDatabase());

    [Fact]
    public async Task A_store_with_a_newer_schema_is_refused_with_a_clear_message()
    {
        await using var db = new SqliteDatabase();
        await (await db.OpenAsync(TimeProvider.System)).DisposeAsync();
        await using (var raw = new SqliteConnection($"Data Source={db.Path};Pooling=False"))
        {
            await raw.OpenAsync();
            using var cmd = raw.CreateCommand();
            cmd.CommandText = "INSERT INTO schema_version (version) VALUES (99)";
            await cmd.ExecuteNonQueryAsync();
        }

        var ex = await Assert.ThrowsAsync<SchemaTooNewException>(() => db.OpenAsync(TimeProvider.System));
        Assert.Contains("99", ex.Message);
    }

    [Fact]
    public async Task Store_addresses_choose_the_backend_and_reject_unknown_ones()
    {
        await using var db = new SqliteDatabase();
        await using (var store = await TrialStores.OpenAsync("sqlite:" + db.Path))
        {
            Assert.IsType<SqliteTrialStore>(store);
        }

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => TrialStores.OpenAsync("mysql://x"));
        Assert.Contains("mysql://x", ex.Message);
    }

    [Fact]
    public async Task The_file_uses_write_ahead_logging()
    {
        await using var db = new SqliteDatabase();
        await (await db.OpenAsync(TimeProvider.System)).DisposeAsync();
        await using var raw = new SqliteConnection($"Data Source={db.Path};Pooling=False");
        await raw.OpenAsync();
        using var cmd = raw.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", await cmd.ExecuteScalarAsync());
    }

    private sealed class SqliteDatabase : IStoreDatabase
    {
        private readonly string _dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sweeper-store-" + Guid.NewGuid().ToString("N")[..12]);

        public string Path => System.IO.Path.Combine(_dir, "store.db");

        public async Task<ITrialStore> OpenAsync(TimeProvider clock) => await SqliteTrialStore.OpenAsync(Path, clock);

        public async Task<ITrialStore> OpenAsync(TimeProvider clock, int schemaVersion) => await SqliteTrialStore.OpenAsync(Path, clock, schemaVersion);

        public async Task<object?> SqlAsync(string sql)
        {
            await using var raw = new SqliteConnection($"Data Source={Path};Pooling=False");
            await raw.OpenAsync();
            using var cmd = raw.CreateCommand();
            cmd.CommandText = sql;
            return await cmd.ExecuteScalarAsync();
        }

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
