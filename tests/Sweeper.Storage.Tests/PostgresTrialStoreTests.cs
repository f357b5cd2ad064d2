using Npgsql;
using Sweeper.Core.Trials;

namespace Sweeper.Storage.Tests;

/// <summary>The contract suite on a real PostgreSQL (127.0.0.1), a fresh database per test.</summary>
public sealed class PostgresTrialStoreTests : TrialStoreContract
{
    protected override Task<IStoreDatabase> CreateDatabaseAsync() => Task.FromResult<IStoreDatabase>(new PostgresDatabase());

    [Fact]
    public async Task A_database_that_takes_only_reads_is_opened_for_reading_refused_to_a_silo_and_left_as_it_was()
    {
        // A standby, or a database set read-only: status, results and the dashboard read it; a silo is told to give the
        // primary instead of failing at its first write (and opening it changes nothing, not even the schema's table).
        await using var db = new PostgresDatabase();
        await using (var store = await db.OpenAsync(TimeProvider.System))
        {
            await store.CreateStudyAsync(new NewStudy("ro", "h", "t", TrialStoreContract.AnySweepJson, "grid", [new NewTrial(0, "{}", 1), new NewTrial(1, "{}", 2)]));
        }

        var name = new NpgsqlConnectionStringBuilder(db.ConnectionString).Database;
        await AdminAsync($"ALTER DATABASE {name} SET default_transaction_read_only = on");
        await using (var reader = await TrialStores.OpenAsync(db.ConnectionString))
        {
            Assert.Equal([TrialState.Pending, TrialState.Pending], (await reader.GetTrialsAsync("ro")).Select(t => t.State));
        }

        var refused = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync(db.ConnectionString, forWriting: true));
        Assert.Contains("cannot write to the store", refused.Message);
        Assert.Contains("the server takes only reads here", refused.Message);
        Assert.Contains("give the primary's address", refused.Message);

        // A read-only database without a store is explained, not met with the server's refusal of CREATE TABLE.
        var empty = PostgresServer.Shared.CreateDatabase();
        try
        {
            await AdminAsync($"ALTER DATABASE {new NpgsqlConnectionStringBuilder(empty).Database} SET default_transaction_read_only = on");
            var none = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync(empty));
            Assert.Contains("the database holds no store yet; open it once at the primary's address", none.Message);
        }
        finally
        {
            PostgresServer.Shared.DropDatabase(empty);
        }

        await AdminAsync($"ALTER DATABASE {name} SET default_transaction_read_only = off");
        Assert.Equal(2L, await db.SqlAsync("SELECT count(*) FROM trials WHERE state = 'pending'"));
    }

    [Fact]
    public async Task A_role_that_may_only_read_opens_a_current_store_for_reading_and_is_refused_to_a_silo()
    {
        // Seen in a probe: status and results as a role granted SELECT only failed with "permission denied for schema
        // public", because opening the store ran CREATE TABLE IF NOT EXISTS.
        await using var db = new PostgresDatabase();
        await using (var store = await db.OpenAsync(TimeProvider.System))
        {
            await store.CreateStudyAsync(new NewStudy("ro", "h", "t", TrialStoreContract.AnySweepJson, "grid", [new NewTrial(0, "{}", 1)]));
        }

        var role = "reader_" + Guid.NewGuid().ToString("N")[..8];
        await AdminAsync($"CREATE ROLE {role} LOGIN");
        try
        {
            await db.SqlAsync($"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}");
            var asReader = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Username = role }.ConnectionString;
            await using (var reader = await TrialStores.OpenAsync(asReader))
            {
                Assert.Equal([TrialState.Pending], (await reader.GetTrialsAsync("ro")).Select(t => t.State));
                Assert.True(((PostgresTrialStore)reader).ReadOnly);
            }

            var refused = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync(asReader, forWriting: true));
            Assert.Contains("a role that may only read its tables", refused.Message);

            // The owner still opens it for writing.
            await using var owner = await TrialStores.OpenAsync(db.ConnectionString, forWriting: true);
            Assert.False(((PostgresTrialStore)owner).ReadOnly);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await db.SqlAsync($"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; REVOKE USAGE ON SCHEMA public FROM {role}");
            await AdminAsync($"DROP ROLE {role}");
        }
    }

    private static async Task AdminAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(PostgresServer.Shared.AdminConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Result_queries_plan_no_parallel_workers_unless_the_address_gives_its_own_options()
    {
        var database = PostgresServer.Shared.CreateDatabase();
        async Task<string> SettingAsync(string connectionString)
        {
            await using var source = PostgresTrialStore.QuerySource(connectionString);
            await using var command = source.CreateCommand("SHOW max_parallel_workers_per_gather");
            return (string)(await command.ExecuteScalarAsync())!;
        }

        Assert.Equal("0", await SettingAsync(database));
        Assert.Equal("3", await SettingAsync(database + ";Options=-c max_parallel_workers_per_gather=3"));
    }

    [Fact]
    public async Task A_store_that_cannot_be_opened_is_explained_in_one_line_naming_the_address_and_the_cause()
    {
        var port = PostgresServer.Shared.Port;
        var missing = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync($"postgres://sweeper:secret@127.0.0.1:{port}/no_such_db"));
        Assert.Contains($"postgres://sweeper:***@127.0.0.1:{port}/no_such_db", missing.Message);
        Assert.Contains("\"no_such_db\" does not exist", missing.Message);
        Assert.DoesNotContain("secret", missing.Message);

        int closedPort;
        using (var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            closedPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        }

        var said = new List<string>();
        var closed = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync($"postgres://sweeper@127.0.0.1:{closedPort}/sweeper", say: said.Add));
        Assert.Contains($"nothing accepts connections at 127.0.0.1:{closedPort}", closed.Message);
        Assert.Contains($"Connecting to PostgreSQL at 127.0.0.1:{closedPort}, database sweeper", Assert.Single(said));

        var unknown = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync("mysql://x@y/z"));
        Assert.Contains("unknown store address", unknown.Message);
        Assert.DoesNotContain("--store", unknown.Message); // it may come from $SWEEPER_STORE

        foreach (var noHost in new[] { "postgres://", "Host=;Database=x" })
        {
            Assert.Contains("the address names no host", (await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync(noHost))).Message);
        }

        Assert.Contains("is not a URL of the form postgres://", (await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync("postgres://x@[bad/y"))).Message);

        var notAStore = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(notAStore, "this is not a database, just text that is long enough to be looked at as a header");
            var text = await Assert.ThrowsAsync<StoreOpenException>(() => TrialStores.OpenAsync("sqlite:" + notAStore));
            Assert.Contains("file is not a database", text.Message);
        }
        finally
        {
            File.Delete(notAStore);
        }

        Assert.All(new[] { missing, closed, unknown }, e => Assert.DoesNotContain('\n', e.Message));
    }

    [Fact]
    public async Task A_statement_that_fails_in_a_shared_batch_fails_alone_and_the_others_are_stored()
    {
        // Concurrent epoch reports go to the server together, in one transaction. One of them fails here (a trigger
        // refuses epoch 99): the batch is rolled back as a whole, every report is run again alone, and only the one
        // that fails says so; the others are stored once each.
        await using var db = new PostgresDatabase();
        await using var store = await db.OpenAsync(TimeProvider.System);
        await db.SqlAsync("""
            CREATE FUNCTION refuse_99() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'epoch 99 refused'; END $$;
            CREATE TRIGGER refuse_99 BEFORE INSERT ON epochs FOR EACH ROW WHEN (NEW.epoch = 99) EXECUTE FUNCTION refuse_99();
            """);
        var lease = TimeSpan.FromSeconds(30);
        await store.CreateStudyAsync(new NewStudy("s", "h", "name: s", "{}", "grid", [.. Enumerable.Range(0, 40).Select(i => new NewTrial(i, "{}", (ulong)i))]));
        var leases = new List<Lease>();
        while (await store.ClaimAsync("s", "w", lease) is { } l)
        {
            leases.Add(l);
        }

        for (var round = 0; round < 5; round++)
        {
            var reports = leases.Select(l => store.ReportEpochAsync(l, new EpochRecord(l.Number == round ? 99 : round + 1, 1, 0.5, 0.5, 1e-3, 1), [1], lease)).ToList();
            var failed = await Assert.ThrowsAsync<PostgresException>(() => reports[round]);
            Assert.Contains("epoch 99 refused", failed.MessageText);
            await Task.WhenAll(reports.Where((_, i) => i != round));
        }

        foreach (var l in leases)
        {
            var epochs = (await store.GetEpochsAsync(l.TrialId)).Select(e => e.Epoch).ToList();
            Assert.Equal(Enumerable.Range(1, 5).Where(e => e != l.Number + 1), epochs);
        }
    }

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
        await store.CreateStudyAsync(new NewStudy("s", "h", "t", TrialStoreContract.AnySweepJson, "grid", [new NewTrial(0, "{}", 1)]));
        var lease = (await store.ClaimAsync("s", "w", TimeSpan.FromMinutes(5)))!;
        PostgresServer.Shared.Restart();
        await store.ReportEpochAsync(lease, new EpochRecord(1, 1, 0.5, 0.5, 1e-3, 1), [1], TimeSpan.FromMinutes(5));
        await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.5, 0.5, 1, null));
        Assert.Equal(TrialState.Completed, (await store.GetTrialsAsync("s")).Single().State);
    }

    [Fact]
    public async Task Closing_a_study_vacuums_it_and_its_pages_sorted_by_a_parameter_read_the_covering_index_not_the_table()
    {
        await using var db = new PostgresDatabase();
        var store = await db.OpenAsync(TimeProvider.System);
        var rng = new Random(3);
        var values = Enumerable.Range(0, 20_000).Select(i => (Number: i, Lr: Math.Round(rng.NextDouble(), 6), Reg: Math.Round(rng.NextDouble(), 6))).ToList();
        await store.CreateStudyAsync(new NewStudy("big", "h", "t", TrialStoreContract.AnySweepJson, "random",
            [.. values.Select(v => new NewTrial(v.Number, FormattableString.Invariant($$"""{"learning_rate":{{v.Lr}},"reg":{{v.Reg}}}"""), (ulong)v.Number))]));
        await store.CloseStudyAsync(new StudyResult("big", "rule", "val_accuracy", null, null, null, null, 0, null, null));
        Assert.Equal(true, await db.SqlAsync("SELECT relallvisible = relpages FROM pg_class WHERE relname = 'trials'")); // vacuumed: every page all-visible

        string[] names = ["learning_rate", "reg"];
        var query = new Core.Queries.TrialQuery(Core.Queries.FilterParser.Parse("learning_rate < 0.5 and state != pruned", names),
            Core.Queries.FilterParser.ParseSort("-learning_rate,reg", names), 100, 50);
        var (page, total) = await store.QueryTrialsAsync("big", query);
        await store.DisposeAsync(); // its connections end, and their statistics reach the server at once

        var expected = values.Where(v => v.Lr < 0.5).OrderByDescending(v => v.Lr).ThenBy(v => v.Reg).ThenBy(v => v.Number).ToList();
        Assert.Equal(expected.Count, total);
        Assert.Equal(expected.Skip(100).Take(50).Select(v => v.Number), page.Select(t => t.Number));
        // The matches were gathered from the index, every entry of the study, without visiting the table (an index-only
        // scan counts the table rows it had to fetch in idx_tup_fetch).
        Assert.True(await PollAsync(db, "SELECT idx_tup_read >= 20000 FROM pg_stat_user_indexes WHERE indexrelname = 'trials_keys'"), "the page did not read trials_keys");
        Assert.Equal(0L, Convert.ToInt64(await db.SqlAsync("SELECT idx_tup_fetch FROM pg_stat_user_indexes WHERE indexrelname = 'trials_keys'")));
    }

    /// <summary>The server publishes a connection's statistics when it ends (or idles): asks until true, for up to 15 s.</summary>
    private static async Task<bool> PollAsync(PostgresDatabase db, string sql)
    {
        for (var i = 0; i < 150; i++)
        {
            if (await db.SqlAsync(sql) is true)
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
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
