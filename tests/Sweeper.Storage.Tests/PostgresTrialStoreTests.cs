using Npgsql;
using Sweeper.Core.Trials;

namespace Sweeper.Storage.Tests;

/// <summary>The contract suite on a real PostgreSQL (127.0.0.1), a fresh database per test.</summary>
public sealed class PostgresTrialStoreTests : TrialStoreContract
{
    protected override Task<IStoreDatabase> CreateDatabaseAsync() => Task.FromResult<IStoreDatabase>(new PostgresDatabase());

    [Fact]
    public async Task A_store_with_a_newer_schema_is_refused_with_a_clear_message()
    {
        await using var db = new PostgresDatabase();
        await (await db.OpenAsync(TimeProvider.System)).DisposeAsync();
        await using (var conn = new NpgsqlConnection(db.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("INSERT INTO schema_version (version) VALUES (42)", conn);
            await cmd.ExecuteNonQueryAsync();
        }

        var ex = await Assert.ThrowsAsync<SchemaTooNewException>(() => db.OpenAsync(TimeProvider.System));
        Assert.Contains("42", ex.Message);
    }

    [Fact]
    public async Task Postgres_urls_and_connection_strings_open_the_store_with_the_password_from_the_environment()
    {
        await using var db = new PostgresDatabase();
        var b = new NpgsqlConnectionStringBuilder(db.ConnectionString);
        await using (var viaUrl = await TrialStores.OpenAsync($"postgres://{b.Username}@{b.Host}:{b.Port}/{b.Database}"))
        {
            Assert.IsType<PostgresTrialStore>(viaUrl);
            Assert.Empty(await viaUrl.ListStudiesAsync());
        }

        Environment.SetEnvironmentVariable("SWEEPER_STORE_PASSWORD", "from-env");
        try
        {
            var cs = new NpgsqlConnectionStringBuilder(TrialStores.PostgresConnectionString("postgres://u@db.example:6543/sweeps?sslmode=disable"));
            Assert.Equal(("db.example", 6543, "sweeps", "u", "from-env"), (cs.Host, cs.Port, cs.Database, cs.Username, cs.Password));
        }
        finally
        {
            Environment.SetEnvironmentVariable("SWEEPER_STORE_PASSWORD", null);
        }

        Assert.DoesNotContain("secret", TrialStores.Redact("postgres://u:secret@h/db"));
        Assert.DoesNotContain("secret", TrialStores.Redact("Host=h;Password=secret;Database=d"));
    }

    [Fact]
    public async Task A_server_restart_is_ridden_out_by_retries()
    {
        await using var db = new PostgresDatabase();
        await using var store = await db.OpenAsync(TimeProvider.System);
        await store.CreateStudyAsync(new NewStudy("s", "h", "t", "grid", [new NewTrial(0, "{}", 1)]));
        var lease = (await store.ClaimAsync("s", "w", TimeSpan.FromMinutes(5)))!;
        PostgresServer.Shared.Restart();
        await store.ReportEpochAsync(lease, new EpochRecord(lease.TrialId, 1, 1, 0.5, 0.5, 1e-3, 1), [1], TimeSpan.FromMinutes(5));
        await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.5, 0.5, 1, null));
        Assert.Equal(TrialState.Completed, (await store.GetTrialsAsync("s")).Single().State);
    }

    private sealed class PostgresDatabase : IStoreDatabase
    {
        public string ConnectionString { get; } = PostgresServer.Shared.CreateDatabase();

        public async Task<ITrialStore> OpenAsync(TimeProvider clock) => await PostgresTrialStore.OpenAsync(ConnectionString, clock);

        public async Task<ITrialStore> OpenAsync(TimeProvider clock, int schemaVersion) => await PostgresTrialStore.OpenAsync(ConnectionString, clock, schemaVersion);

        public async Task<object?> SqlAsync(string sql)
        {
            await using var conn = new NpgsqlConnection(ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, conn);
            return await cmd.ExecuteScalarAsync();
        }

        public ValueTask DisposeAsync()
        {
            PostgresServer.Shared.DropDatabase(ConnectionString);
            return ValueTask.CompletedTask;
        }
    }
}
