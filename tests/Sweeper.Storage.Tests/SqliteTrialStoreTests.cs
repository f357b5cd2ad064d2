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

        var ex = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync("mysql://x"));
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

    [Fact]
    public async Task A_page_sorted_by_parameters_gathers_its_matches_from_the_covering_index()
    {
        await using var db = new SqliteDatabase();
        await using (var store = await db.OpenAsync(TimeProvider.System))
        {
            await store.CreateStudyAsync(new NewStudy("big", "h", "t", TrialStoreContract.AnySweepJson, "random",
                [.. Enumerable.Range(0, 20_000).Select(i => new NewTrial(i, FormattableString.Invariant($$"""{"learning_rate":{{i % 997}},"reg":{{i % 13}}}"""), (ulong)i))]));
        }

        // The statement the store runs for "learning_rate < 500 and state != pruned", sorted by -learning_rate,reg.
        string[] names = ["learning_rate", "reg"];
        var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("learning_rate < 500 and state != pruned", names),
            Core.Queries.FilterParser.ParseSort("-learning_rate,reg", names), 100, 50);
        var parameters = new List<(string Name, object Value)>();
        var clause = QuerySql.Build(query, SqlDialect.Sqlite, new Dictionary<string, int> { ["learning_rate"] = 0, ["reg"] = 1 }, parameters);
        await using var raw = new SqliteConnection($"Data Source={db.Path};Pooling=False");
        await raw.OpenAsync();
        using var cmd = raw.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + QuerySql.Page(clause, "id", "$");
        foreach (var (name, value) in parameters.Concat(QuerySql.Paging("big", query)))
        {
            cmd.Parameters.AddWithValue("$" + name, value);
        }

        var plan = new List<string>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(3));
            }
        }

        Assert.False(clause.IndexServed);
        Assert.Contains(plan, line => line.Contains("COVERING INDEX trials_keys (study=?)", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, line => line.StartsWith("SCAN trials", StringComparison.Ordinal));
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
