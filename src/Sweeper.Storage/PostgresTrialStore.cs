using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Sweeper.Core.Trials;

namespace Sweeper.Storage;

/// <summary>
/// The cluster trial store on PostgreSQL. Claims lock the chosen row with FOR UPDATE SKIP LOCKED, so claimers never
/// wait for each other (a study with max_concurrent serializes its claims on the study row instead, to keep the cap
/// exact). Lease times come from the database's clock (clock_timestamp()), never a worker's. Transient failures
/// (connection refused or reset, server restarting, serialization failures, deadlocks) are retried with backoff;
/// every write is idempotent under retry or fenced by the lease's token. Epoch reports and finishes wait for their
/// commit to be durable; claims, renewals and heartbeats do not need to (see each).
/// </summary>
public sealed class PostgresTrialStore : ITrialStore, IMembershipStore
{
    public const int SchemaVersion = 7;

    private static readonly string[][] _migrations =
    [
        [
            "CREATE TABLE studies (name TEXT PRIMARY KEY, sweep_hash TEXT NOT NULL, sweep_text TEXT NOT NULL, method TEXT NOT NULL, trial_count INTEGER NOT NULL, created_at BIGINT NOT NULL, closed BOOLEAN NOT NULL DEFAULT FALSE, max_running INTEGER, retries INTEGER NOT NULL, result TEXT)",
            "CREATE TABLE trials (id BIGSERIAL PRIMARY KEY, study TEXT NOT NULL REFERENCES studies(name), number INTEGER NOT NULL, params JSONB NOT NULL, seed BIGINT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, owner TEXT, lease_epoch BIGINT NOT NULL DEFAULT 0, lease_expires_at BIGINT, epochs_done INTEGER NOT NULL DEFAULT 0, val_accuracy DOUBLE PRECISION, train_accuracy DOUBLE PRECISION, reason TEXT, started_at BIGINT, finished_at BIGINT, UNIQUE (study, number))",
            "CREATE INDEX trials_by_state ON trials (study, state, number)",
            "CREATE TABLE epochs (trial_id BIGINT NOT NULL, epoch INTEGER NOT NULL, loss DOUBLE PRECISION NOT NULL, train_accuracy DOUBLE PRECISION NOT NULL, val_accuracy DOUBLE PRECISION NOT NULL, learning_rate DOUBLE PRECISION NOT NULL, seconds DOUBLE PRECISION NOT NULL, PRIMARY KEY (trial_id, epoch))",
            "CREATE TABLE checkpoints (trial_id BIGINT PRIMARY KEY, epoch INTEGER NOT NULL, data BYTEA NOT NULL)",
            "CREATE TABLE workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at BIGINT NOT NULL, last_heartbeat BIGINT NOT NULL, current_trial BIGINT)",
            "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, study TEXT NOT NULL, trial_id BIGINT, at BIGINT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)",
            "CREATE INDEX events_by_study ON events (study, id)",
        ],

        // 2: parameters in typed slot columns (filled for existing studies by the migration), results sorted by index
        [
            "ALTER TABLE trials " + string.Join(", ", ParamSlots.AddColumns("DOUBLE PRECISION", "TEXT").Select(c => "ADD COLUMN " + c)),
            "CREATE TABLE study_params (study TEXT NOT NULL REFERENCES studies(name), name TEXT NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (study, name))",
            "CREATE INDEX trials_by_val ON trials (study, val_accuracy DESC NULLS LAST, number)",
            // Claims find the first pending trial here whatever the statistics say (taken when every trial was pending,
            // they would steer the planner to walk (study, number) past every finished trial).
            "CREATE INDEX trials_pending ON trials (study, number) WHERE state = 'pending'",
        ],

        // 3: a covering index of what result queries filter and sort on, a fifth of the table's size: a page sorted by
        // a parameter scans it instead of the table (an index-only scan, once VACUUM has marked the pages all-visible;
        // the store vacuums when a study closes). Nothing here changes on a heartbeat, so those stay HOT updates.
        [
            $"CREATE INDEX trials_keys ON trials (study) INCLUDE (number, state, val_accuracy, {ParamSlots.CoveredColumns})",
        ],

        // 4: workers report their training slots; the runtime's cluster membership (see IMembershipStore and MembershipSql)
        [
            "ALTER TABLE workers ADD COLUMN slots INTEGER NOT NULL DEFAULT 0",
            "CREATE TABLE membership_version (cluster TEXT PRIMARY KEY, version INTEGER NOT NULL, etag TEXT NOT NULL)",
            "CREATE TABLE members (cluster TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, host_name TEXT NOT NULL, silo_name TEXT NOT NULL, proxy_port INTEGER NOT NULL, start_time BIGINT NOT NULL, i_am_alive_time BIGINT NOT NULL, suspect_times TEXT, latest_suspect_time BIGINT, etag TEXT NOT NULL, PRIMARY KEY (cluster, address))",
        ],

        // 5: each study keeps its resolved sweep definition (SweepJson; TEXT, not JSONB, so that it reads back as written),
        // filled for existing studies by StudySweeps.Resolve
        [
            "ALTER TABLE studies ADD COLUMN sweep_json TEXT",
        ],

        // 6: a training program reports any metrics: an epoch keeps the extra ones as JSON text and NULL for a built-in
        // metric it did not report; each trial keeps its value of the sweep's metric, filled for existing trials by
        // StudySweeps.ValueBackfill
        [
            "ALTER TABLE epochs ALTER COLUMN loss DROP NOT NULL, ALTER COLUMN train_accuracy DROP NOT NULL, ALTER COLUMN val_accuracy DROP NOT NULL, "
                + "ALTER COLUMN learning_rate DROP NOT NULL, ALTER COLUMN seconds DROP NOT NULL, ADD COLUMN metrics TEXT",
            "ALTER TABLE trials ADD COLUMN value DOUBLE PRECISION",
        ],

        // 7: a worker that stops of its own accord says so (a clean stop is not shown as a death)
        [
            "ALTER TABLE workers ADD COLUMN stopped_at BIGINT",
        ],
    ];

    /// <summary>What <see cref="ReadTrial"/> reads (a store at a schema before 6, only opened to test migrations, has no value).</summary>
    private string TrialColumns => "id, study, number, params::text, seed, state, attempts, owner, lease_epoch, lease_expires_at, epochs_done, val_accuracy, train_accuracy, reason, started_at, finished_at, "
        + (_schema >= 6 ? "value" : "NULL::double precision");

    /// <summary>What <see cref="ReadEpoch"/> reads, from epochs as <c>e</c> (a store before schema 6 has no extra metrics).</summary>
    private string EpochColumns => "e.epoch, e.loss, e.train_accuracy, e.val_accuracy, e.learning_rate, e.seconds, " + (_schema >= 6 ? "e.metrics" : "NULL::text");

    private readonly NpgsqlDataSource _source;
    private readonly Lazy<NpgsqlDataSource> _queries;
    private readonly TimeProvider _clock;

    // Group commit of the hot path's statements: durable writes (epoch reports, finishes) in one batcher, claims (which
    // commit without waiting for the WAL flush, for the whole of their transaction) in another.
    private readonly StatementBatcher _durable;
    private readonly StatementBatcher _claims;

    /// <summary>The schema the store was opened at: <see cref="SchemaVersion"/>, or an older one only to test migrations.</summary>
    private readonly int _schema;

    private PostgresTrialStore(NpgsqlDataSource source, Lazy<NpgsqlDataSource> queries, TimeProvider clock, int schema)
    {
        _schema = schema;
        _source = source;
        _queries = queries;
        _clock = clock;
        _durable = new StatementBatcher(source, BatchCommand);
        _claims = new StatementBatcher(source, BatchCommand);
    }

    /// <summary>
    /// How many times a transient failure is tried, and the first backoff (doubling up to 2 s, with jitter). Default: 6
    /// tries from 100 ms (a few seconds, enough for a server restart); past that <see cref="StoreUnavailableException"/>
    /// tells the caller, and a worker keeps trying at its own pace.
    /// </summary>
    public int MaxAttempts { get; init; } = 6;

    public TimeSpan FirstBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Opens the store and brings the schema up to date. <paramref name="clock"/> other than the system clock shifts
    /// the database's clock by its difference from real time (contract tests move time by hand); the database's
    /// clock stays the reference.
    /// </summary>
    public static Task<PostgresTrialStore> OpenAsync(string connectionString, TimeProvider? clock = null, CancellationToken cancellationToken = default) =>
        OpenAsync(connectionString, clock, SchemaVersion, cancellationToken);

    /// <summary>
    /// The pool of the result queries. Their sessions plan no parallel workers: a query of one study (up to some
    /// 100,000 trials) is done before workers pay for their start, and on a small server they take the cores the
    /// query itself needs. Measured on a 2-core machine, the page of 100,000 trials sorted by validation accuracy with
    /// its matching count: p95 84-89 ms with PostgreSQL's default of 2 workers, 28 ms without. Options given in the
    /// store's address are kept as they are.
    /// </summary>
    public static NpgsqlDataSource QuerySource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        if (string.IsNullOrEmpty(builder.ConnectionStringBuilder.Options))
        {
            builder.ConnectionStringBuilder.Options = "-c max_parallel_workers_per_gather=0";
        }

        return builder.Build();
    }

    /// <summary>Opens the store, migrating it to <paramref name="schemaVersion"/> (older versions only to test migrations).</summary>
    public static async Task<PostgresTrialStore> OpenAsync(string connectionString, TimeProvider? clock, int schemaVersion, CancellationToken cancellationToken = default)
    {
        // The same few statements run for every trial: prepared once per connection, the server skips parsing and
        // planning them (it shares the machine's cores with the workers). Queries of the results, whose best plan
        // depends on the values, go through a second pool, opened on first use (workers never do), planned each time.
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
        {
            builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
            builder.ConnectionStringBuilder.AutoPrepareMinUsages = 2;
        }

        // A connection back in the pool keeps its session as it is: the store changes no session state (its settings
        // are local to a transaction: SET LOCAL, set_config(..., true), transaction-scoped advisory locks), and the
        // reset Npgsql sends otherwise (four statements, since prepared statements rule out DISCARD ALL) took a third
        // of the server's CPU on the hot path, where each claim, report and finish takes a connection.
        if (!connectionString.Contains("Reset On Close", StringComparison.OrdinalIgnoreCase))
        {
            builder.ConnectionStringBuilder.NoResetOnClose = true;
        }

        var source = builder.Build();
        var store = new PostgresTrialStore(source, new Lazy<NpgsqlDataSource>(() => QuerySource(connectionString)), clock ?? TimeProvider.System, schemaVersion);
        try
        {
            await store.MigrateAsync(schemaVersion, cancellationToken);
        }
        catch
        {
            await source.DisposeAsync();
            throw;
        }

        return store;
    }

    /// <summary>Milliseconds between the injected clock and real time: 0 in production.</summary>
    private long Skew => _clock == TimeProvider.System ? 0 : (_clock.GetUtcNow() - DateTimeOffset.UtcNow).Ticks / TimeSpan.TicksPerMillisecond;

    /// <summary>The database's clock in Unix milliseconds (plus the test skew, passed as @skew).</summary>
    private const string Now = "(floor(extract(epoch from clock_timestamp()) * 1000)::bigint + @skew)";

    /// <summary>
    /// Whether the server takes only reads from this store's sessions: a standby in recovery, or a database or role with
    /// default_transaction_read_only on. Such a store is opened for reading (status, results, the dashboard) if its
    /// schema is current; <see cref="TrialStores.OpenAsync"/> refuses it to a silo, which writes.
    /// </summary>
    public bool ReadOnly { get; private set; }

    private async Task MigrateAsync(int target, CancellationToken cancellationToken)
    {
        // A read-only server refuses even CREATE TABLE IF NOT EXISTS: its schema is only read, never changed. A schema
        // that is current is not touched either, so that a role that may only read (status, results, the dashboard for
        // people who must not change anything) opens it; such a store is read-only for this process.
        var found = await WriteAsync(async (conn, tx) =>
        {
            var serverReadOnly = Convert.ToBoolean(await ScalarAsync(conn, tx, "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"));
            var exists = await ScalarAsync(conn, tx, "SELECT to_regclass('schema_version') IS NOT NULL") is true;
            var version = exists ? Convert.ToInt32(await ScalarAsync(conn, tx, "SELECT coalesce(max(version), 0) FROM schema_version") ?? 0) : 0;
            var mayWrite = version < 4 || await ScalarAsync(conn, tx, "SELECT has_table_privilege('trials', 'INSERT, UPDATE, DELETE') AND has_table_privilege('members', 'INSERT, UPDATE, DELETE')") is true;
            return (ServerReadOnly: serverReadOnly, Version: version, MayWrite: mayWrite);
        }, cancellationToken);
        if (found.Version > SchemaVersion)
        {
            throw new SchemaTooNewException(found.Version, SchemaVersion);
        }

        if (found.ServerReadOnly || (!found.MayWrite && found.Version >= target))
        {
            ReadOnly = true;
            if (found.Version < target)
            {
                throw new ReadOnlySchemaTooOldException(found.Version, target);
            }

            return;
        }

        if (found.Version >= target)
        {
            return;
        }

        await WriteAsync(async (conn, tx) =>
        {
            // One migrator at a time across all workers starting together.
            await ExecAsync(conn, tx, "SELECT pg_advisory_xact_lock(727274)");
            await ExecAsync(conn, tx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
            var current = Convert.ToInt32(await ScalarAsync(conn, tx, "SELECT coalesce(max(version), 0) FROM schema_version") ?? 0);
            if (current > SchemaVersion)
            {
                throw new SchemaTooNewException(current, SchemaVersion);
            }

            for (var v = current; v < target; v++)
            {
                foreach (var sql in _migrations[v])
                {
                    await ExecAsync(conn, tx, sql);
                }

                if (v + 1 == 2)
                {
                    await BackfillSlotsAsync(conn, tx, cancellationToken);
                }

                if (v + 1 == 5)
                {
                    foreach (var (name, text) in await QueryAsync(conn, tx, "SELECT name, sweep_text FROM studies", r => (r.GetString(0), r.GetString(1))))
                    {
                        await ExecAsync(conn, tx, "UPDATE studies SET sweep_json = @j WHERE name = @n", ("j", StudySweeps.Resolve(name, text)), ("n", name));
                    }
                }

                if (v + 1 == 6)
                {
                    foreach (var (name, json) in await QueryAsync(conn, tx, "SELECT name, sweep_json FROM studies", r => (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1))))
                    {
                        if (StudySweeps.ValueBackfill(json, "@") is { } backfill)
                        {
                            await ExecAsync(conn, tx, backfill, ("s", name));
                        }
                    }
                }

                await ExecAsync(conn, tx, "INSERT INTO schema_version (version) VALUES (@v)", ("v", v + 1));
            }

            return 0;
        }, cancellationToken);
    }

    public async Task<StudyRecord> CreateStudyAsync(NewStudy study, CancellationToken cancellationToken = default)
    {
        var record = await CreateAsync(study, cancellationToken);
        // Fresh statistics for the planner now rather than at autovacuum's next round (ANALYZE samples: fast at any size).
        await WriteAsync((conn, tx) => ExecAsync(conn, tx, "ANALYZE trials"), cancellationToken);
        return record;
    }

    private Task<StudyRecord> CreateAsync(NewStudy study, CancellationToken cancellationToken) =>
        WriteAsync(async (conn, tx) =>
        {
            // Serialize creators of the same study name; the loser sees the winner's study.
            await ExecAsync(conn, tx, "SELECT pg_advisory_xact_lock(hashtext(@n))", ("n", study.Name));
            var existing = await GetStudyAsync(conn, tx, study.Name);
            if (existing is not null)
            {
                return existing.SweepHash == study.SweepHash ? existing : throw new StudyConflictException(study.Name);
            }

            (string, object?)[] columns =
            [
                ("n", study.Name), ("h", study.SweepHash), ("t", study.SweepText), ("m", study.Method), ("c", study.TrialCount),
                ("max", (object?)study.MaxRunning ?? DBNull.Value), ("r", study.Retries),
            ];
            await ExecAsync(conn, tx, _schema >= 5
                ? $"INSERT INTO studies (name, sweep_hash, sweep_text, sweep_json, method, trial_count, created_at, max_running, retries) VALUES (@n, @h, @t, @j, @m, @c, {Now}, @max, @r)"
                : $"INSERT INTO studies (name, sweep_hash, sweep_text, method, trial_count, created_at, max_running, retries) VALUES (@n, @h, @t, @m, @c, {Now}, @max, @r)",
                _schema >= 5 ? [.. columns, ("j", study.SweepJson)] : columns);
            var names = await AddSlotsAsync(conn, tx, study.Name, [], ParamSlots.Names(study.ParameterNames, study.Trials.Select(t => t.ParametersJson)));
            var values = new object?[2 * ParamSlots.Count];
            await using (var import = await conn.BeginBinaryImportAsync($"COPY trials (study, number, params, seed, state, {ParamSlots.Columns}) FROM STDIN (FORMAT BINARY)", cancellationToken))
            {
                foreach (var trial in study.Trials)
                {
                    await import.StartRowAsync(cancellationToken);
                    await import.WriteAsync(study.Name, NpgsqlDbType.Text, cancellationToken);
                    await import.WriteAsync(trial.Number, NpgsqlDbType.Integer, cancellationToken);
                    await import.WriteAsync(trial.ParametersJson, NpgsqlDbType.Jsonb, cancellationToken);
                    await import.WriteAsync(unchecked((long)trial.Seed), NpgsqlDbType.Bigint, cancellationToken);
                    await import.WriteAsync("pending", NpgsqlDbType.Text, cancellationToken);
                    await WriteSlotsAsync(import, trial.ParametersJson, names, values, cancellationToken);
                }

                await import.CompleteAsync(cancellationToken);
            }

            await AddEventAsync(conn, tx, study.Name, null, "study_created", $"{study.TrialCount} trials ({study.Method})");
            return (await GetStudyAsync(conn, tx, study.Name))!;
        }, cancellationToken);

    public Task<StudyRecord?> GetStudyAsync(string name, CancellationToken cancellationToken = default) =>
        ReadAsync((conn) => GetStudyAsync(conn, null, name), cancellationToken);

    /// <summary>
    /// Gives the parameter names of <paramref name="names"/> that <paramref name="existing"/> (the study's names in slot
    /// order) lacks the next slots (see <see cref="ParamSlots"/>); returns all the study's names in slot order.
    /// </summary>
    private async Task<List<string>> AddSlotsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string study, IReadOnlyList<string> existing, IEnumerable<string> names)
    {
        var added = names.Where(n => !existing.Contains(n, StringComparer.Ordinal)).ToArray();
        if (added.Length > 0)
        {
            await ExecAsync(conn, tx, "INSERT INTO study_params (study, name, slot) SELECT @s, n, @first + s::int - 1 FROM unnest(@names) WITH ORDINALITY AS x(n, s)",
                ("s", study), ("names", added), ("first", existing.Count));
        }

        return [.. existing, .. added];
    }

    public Task<bool> AddTrialAsync(string study, NewTrial trial, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            // The study's row lock orders proposers of one study; the unique (study, number) stays the guarantee.
            if (await ScalarAsync(conn, tx, "SELECT 1 FROM studies WHERE name = @s AND NOT closed FOR UPDATE", ("s", study)) is null
                || await ScalarAsync(conn, tx, "SELECT 1 FROM trials WHERE study = @s AND number = @num", ("s", study), ("num", trial.Number)) is not null)
            {
                return false;
            }

            var existing = await QueryAsync(conn, tx, "SELECT name FROM study_params WHERE study = @s ORDER BY slot", r => r.GetString(0), ("s", study));
            var names = await AddSlotsAsync(conn, tx, study, existing, ParamSlots.Names(null, [trial.ParametersJson]));
            var values = new object?[2 * ParamSlots.Count];
            ParamSlots.Values(trial.ParametersJson, names, values);
            var slotParameters = Enumerable.Range(0, values.Length).Select(i => ("v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), values[i] ?? DBNull.Value));
            var placeholders = string.Join(", ", Enumerable.Range(0, values.Length).Select(i => "@v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + (i % 2 == 0 ? "::double precision" : "::text")));
            await ExecAsync(conn, tx, $"INSERT INTO trials (study, number, params, seed, state, {ParamSlots.Columns}) VALUES (@s, @num, @p::jsonb, @seed, 'pending', {placeholders})",
                [("s", study), ("num", trial.Number), ("p", trial.ParametersJson), ("seed", unchecked((long)trial.Seed)), .. slotParameters]);
            return true;
        }, cancellationToken);

    public Task PauseAsync(Lease lease, TrialFinish summary, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            var changed = await ExecAsync(conn, tx,
                $"""
                UPDATE trials SET state = 'paused', owner = NULL, lease_expires_at = NULL, attempts = GREATEST(attempts - 1, 0), val_accuracy = @va, train_accuracy = @ta,
                    epochs_done = GREATEST(epochs_done, @ep), reason = @reason{(_schema >= 6 ? ", value = @value" : "")}
                WHERE id = @id AND lease_epoch = @epoch AND owner = @o AND state = 'running'
                """,
                ("value", (object?)summary.Value ?? DBNull.Value), ("va", (object?)summary.ValAccuracy ?? DBNull.Value), ("ta", (object?)summary.TrainAccuracy ?? DBNull.Value), ("ep", summary.Epochs),
                ("reason", (object?)summary.Reason ?? DBNull.Value), ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner));
            if (changed == 0)
            {
                throw await LostAsync(conn, tx, lease);
            }

            await AddEventAsync(conn, tx, lease.Study, lease.TrialId, "trial_paused", TrialEvents.Paused(lease, summary));
            return 0;
        }, cancellationToken);

    public Task<bool> PromoteAsync(long trialId, string reason, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            if (await ScalarAsync(conn, tx, "UPDATE trials SET state = 'pending' WHERE id = @id AND state = 'paused' RETURNING study", ("id", trialId)) is not string study)
            {
                return false;
            }

            await AddEventAsync(conn, tx, study, trialId, "trial_promoted", reason);
            return true;
        }, cancellationToken);

    public Task<int> EndPausedAsync(string study, TrialState state, string reason, CancellationToken cancellationToken = default)
    {
        if (!state.IsFinal())
        {
            throw new ArgumentException($"paused trials end in a final state, not {state}.", nameof(state));
        }

        return WriteAsync(async (conn, tx) =>
        {
            var ended = await ExecAsync(conn, tx, $"UPDATE trials SET state = @state, reason = @reason, finished_at = {Now} WHERE study = @s AND state = 'paused'",
                ("state", state.ToText()), ("reason", reason), ("s", study));
            if (ended > 0)
            {
                await AddEventAsync(conn, tx, study, null, "paused_trials_ended", $"{ended} paused trial(s) {state.ToText()}: {reason}");
            }

            return ended;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<(int Number, EpochRecord Metrics)>> GetEpochOfTrialsAsync(string study, int epoch, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null,
            $"SELECT t.number, {EpochColumns} FROM epochs e JOIN trials t ON t.id = e.trial_id WHERE t.study = @s AND e.epoch = @e ORDER BY t.number",
            r => (r.GetInt32(0), ReadEpoch(r, 1)), ("s", study), ("e", epoch)),
            cancellationToken);

    private static async Task WriteSlotsAsync(NpgsqlBinaryImporter import, string parametersJson, IReadOnlyList<string> names, object?[] values, CancellationToken cancellationToken)
    {
        ParamSlots.Values(parametersJson, names, values);
        for (var i = 0; i < values.Length; i++)
        {
            switch (values[i])
            {
                case double d:
                    await import.WriteAsync(d, NpgsqlDbType.Double, cancellationToken);
                    break;
                case string text:
                    await import.WriteAsync(text, NpgsqlDbType.Text, cancellationToken);
                    break;
                default:
                    await import.WriteNullAsync(cancellationToken);
                    break;
            }
        }
    }

    /// <summary>Fills the slot columns of the studies stored before schema 2: copied into a temporary table, then one UPDATE per study.</summary>
    private async Task BackfillSlotsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        var columns = string.Join(", ", ParamSlots.AddColumns("DOUBLE PRECISION", "TEXT"));
        await ExecAsync(conn, tx, $"CREATE TEMP TABLE slot_fill (id BIGINT, {columns}) ON COMMIT DROP");
        var set = string.Join(", ", Enumerable.Range(0, ParamSlots.Count).Select(i => $"{ParamSlots.Number(i)} = f.{ParamSlots.Number(i)}, {ParamSlots.Text(i)} = f.{ParamSlots.Text(i)}"));
        var values = new object?[2 * ParamSlots.Count];
        foreach (var study in await QueryAsync(conn, tx, "SELECT name FROM studies", r => r.GetString(0)))
        {
            var trials = await QueryAsync(conn, tx, "SELECT id, params::text FROM trials WHERE study = @s", r => (r.GetInt64(0), r.GetString(1)), ("s", study));
            var names = await AddSlotsAsync(conn, tx, study, [], ParamSlots.Names(null, trials.Select(t => t.Item2)));
            await using (var import = await conn.BeginBinaryImportAsync($"COPY slot_fill (id, {ParamSlots.Columns}) FROM STDIN (FORMAT BINARY)", cancellationToken))
            {
                foreach (var (id, json) in trials)
                {
                    await import.StartRowAsync(cancellationToken);
                    await import.WriteAsync(id, NpgsqlDbType.Bigint, cancellationToken);
                    await WriteSlotsAsync(import, json, names, values, cancellationToken);
                }

                await import.CompleteAsync(cancellationToken);
            }

            await ExecAsync(conn, tx, $"UPDATE trials t SET {set} FROM slot_fill f WHERE t.id = f.id");
            await ExecAsync(conn, tx, "TRUNCATE slot_fill");
        }
    }

    public Task<IReadOnlyList<StudyRecord>> ListStudiesAsync(CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null, $"SELECT {StudyColumns} FROM studies ORDER BY created_at, name", ReadStudy), cancellationToken);

    public async Task<Lease?> ClaimAsync(string? study, string owner, TimeSpan leaseDuration, CancellationToken cancellationToken = default)
    {
        if (study is not null)
        {
            // The common case, a study without a cap on running trials: one statement, batched with the other slots'
            // concurrent claims (one round trip, one transaction). It finds nothing when the study is closed, capped or has no pending trial; only a capped
            // study needs the slower path below. Its commit need not wait for the WAL flush (set_config local to the
            // statement's transaction): if the server lost it in a crash, the trial would be pending again at the old
            // fencing token, and the next claim would hand out the same token again; the fence is the token with its
            // owner (a slot of one silo incarnation), so every write of the slot that thought it won is still rejected.
            var leases = await BatchedAsync(_claims,
                    $"""
                    UPDATE trials SET state = 'running', owner = @owner, lease_epoch = lease_epoch + 1, attempts = attempts + 1,
                        lease_expires_at = {Now} + @dur, started_at = coalesce(started_at, {Now})
                    WHERE id = (SELECT id FROM trials WHERE study = @s AND state = 'pending'
                                  AND EXISTS (SELECT 1 FROM studies WHERE name = @s AND NOT closed AND max_running IS NULL)
                                ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
                      AND set_config('synchronous_commit', 'off', true) = 'off'
                    RETURNING id, study, number, params::text, seed, lease_epoch, attempts, EXISTS (SELECT 1 FROM checkpoints c WHERE c.trial_id = trials.id)
                    """,
                    [("owner", owner), ("dur", (long)leaseDuration.TotalMilliseconds), ("s", study)], ReadAll(ReadLease(owner)), cancellationToken);
            if (leases.Count == 1)
            {
                return leases[0];
            }
        }

        return await ClaimSlowAsync(study, owner, leaseDuration, cancellationToken);
    }

    private static Func<NpgsqlDataReader, Lease> ReadLease(string owner) =>
        r => new Lease(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetString(3), unchecked((ulong)r.GetInt64(4)), owner, r.GetInt64(5), r.GetInt32(6), r.GetBoolean(7));

    /// <summary>A claim over every open study, or in a study with a cap on running trials (which takes the study's row lock).</summary>
    private Task<Lease?> ClaimSlowAsync(string? study, string owner, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        WriteAsync(async (conn, tx) =>
        {
            // A claim need not wait for its WAL flush: if the server lost it in a crash, the trial would be pending
            // again at the old fencing token, and fencing (the token with its owner) would reject every write of the
            // slot that thought it won, even once another claim got that token again.
            // (Sent in one round trip with the first query.)
            const string Async = "SET LOCAL synchronous_commit = off; ";
            var candidates = study is null
                ? await QueryAsync(conn, tx, Async + "SELECT name, max_running FROM studies WHERE NOT closed AND EXISTS (SELECT 1 FROM trials t WHERE t.study = studies.name AND t.state = 'pending') ORDER BY created_at, name",
                    r => (Name: r.GetString(0), Max: r.IsDBNull(1) ? (int?)null : r.GetInt32(1)))
                : await QueryAsync(conn, tx, Async + "SELECT name, max_running FROM studies WHERE name = @s AND NOT closed",
                    r => (Name: r.GetString(0), Max: r.IsDBNull(1) ? (int?)null : r.GetInt32(1)), ("s", study));
            foreach (var (name, max) in candidates)
            {
                if (max is { } cap)
                {
                    // An exact cap needs the running count to stay put until we commit: take the study's row lock.
                    await ExecAsync(conn, tx, "SELECT 1 FROM studies WHERE name = @s FOR UPDATE", ("s", name));
                    var running = Convert.ToInt32(await ScalarAsync(conn, tx, "SELECT count(*) FROM trials WHERE study = @s AND state = 'running'", ("s", name)));
                    if (running >= cap)
                    {
                        continue;
                    }
                }

                // Either this update takes a pending trial nobody else has locked, or it finds none and changes nothing.
                var leases = await QueryAsync(conn, tx,
                    $"""
                    UPDATE trials SET state = 'running', owner = @owner, lease_epoch = lease_epoch + 1, attempts = attempts + 1,
                        lease_expires_at = {Now} + @dur, started_at = coalesce(started_at, {Now})
                    WHERE id = (SELECT id FROM trials WHERE study = @s AND state = 'pending' ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING id, study, number, params::text, seed, lease_epoch, attempts, EXISTS (SELECT 1 FROM checkpoints c WHERE c.trial_id = trials.id)
                    """,
                    ReadLease(owner), ("owner", owner), ("dur", (long)leaseDuration.TotalMilliseconds), ("s", name));
                if (leases.Count == 1)
                {
                    return leases[0];
                }
            }

            return null;
        }, cancellationToken);

    public Task RenewAsync(Lease lease, TimeSpan leaseDuration, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            // A renewal lost in a crash only shortens the lease; fencing keeps that safe.
            await ExecAsync(conn, tx, "SET LOCAL synchronous_commit = off");
            await FenceAsync(conn, tx, lease, leaseDuration);
            return 0;
        }, cancellationToken);

    public async Task ReportEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TimeSpan leaseDuration, CancellationToken cancellationToken = default)
    {
        // One statement, sent with the other slots' concurrent writes in one batch (one round trip, one commit): the fence
        // (renew the lease if still held, record the epochs done), the epoch's metrics and the checkpoint, the last two
        // only when the fence held.
        var fenced = await BatchedAsync(_durable,
            $"""
            WITH f AS (UPDATE trials SET lease_expires_at = {Now} + @dur, epochs_done = @e WHERE id = @id AND lease_epoch = @epoch AND owner = @o AND state = 'running' RETURNING id),
            {EpochSql("f", checkpoint is not null)}
            SELECT count(*) FROM f
            """, [("dur", (long)leaseDuration.TotalMilliseconds), ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner), .. EpochParameters(metrics, checkpoint)],
            ReadCountAsync, cancellationToken);
        if (fenced == 0)
        {
            throw await WithRetriesAsync(async () =>
            {
                await using var conn = await _source.OpenConnectionAsync(cancellationToken);
                return await LostAsync(conn, null, lease);
            }, cancellationToken);
        }
    }

    /// <summary>
    /// The common table expressions that write an epoch's metrics and, with <paramref name="checkpoint"/>, its checkpoint
    /// for the trial that <paramref name="fence"/> (an earlier expression's name) returned: nothing when the fence held
    /// no row. Parameters: <see cref="EpochParameters"/>.
    /// </summary>
    private string EpochSql(string fence, bool checkpoint) =>
        $"""
        e AS (INSERT INTO epochs (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds{(_schema >= 6 ? ", metrics" : "")})
              SELECT id, @e, @l::double precision, @ta::double precision, @va::double precision, @lr::double precision, @sec::double precision{(_schema >= 6 ? ", @m::text" : "")} FROM {fence}
              ON CONFLICT (trial_id, epoch) DO UPDATE SET loss = EXCLUDED.loss, train_accuracy = EXCLUDED.train_accuracy, val_accuracy = EXCLUDED.val_accuracy,
                  learning_rate = EXCLUDED.learning_rate, seconds = EXCLUDED.seconds{(_schema >= 6 ? ", metrics = EXCLUDED.metrics" : "")})
        """ + (checkpoint ? $"""
        ,
        c AS (INSERT INTO checkpoints (trial_id, epoch, data) SELECT id, @e, @d FROM {fence}
              ON CONFLICT (trial_id) DO UPDATE SET epoch = EXCLUDED.epoch, data = EXCLUDED.data)
        """ : "");

    private List<(string, object?)> EpochParameters(EpochRecord metrics, byte[]? checkpoint)
    {
        var parameters = new List<(string, object?)>
        {
            ("e", metrics.Epoch), ("l", StudySweeps.Metric(metrics.Loss)), ("ta", StudySweeps.Metric(metrics.TrainAccuracy)), ("va", StudySweeps.Metric(metrics.ValAccuracy)),
            ("lr", StudySweeps.Metric(metrics.LearningRate)), ("sec", StudySweeps.Metric(metrics.Seconds)),
        };
        if (_schema >= 6)
        {
            parameters.Add(("m", StudySweeps.MetricsJson(metrics.Metrics)));
        }

        if (checkpoint is not null)
        {
            parameters.Add(("d", checkpoint));
        }

        return parameters;
    }

    public Task FinishAsync(Lease lease, TrialFinish finish, CancellationToken cancellationToken = default) => FinishFencedAsync(lease, finish, null, null, cancellationToken);

    public Task FinishAfterEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TrialFinish finish, CancellationToken cancellationToken = default) =>
        FinishFencedAsync(lease, finish with { Epochs = Math.Max(finish.Epochs, metrics.Epoch) }, metrics, checkpoint, cancellationToken);

    /// <summary>
    /// One statement (the fenced update, its event and, with <paramref name="metrics"/>, the last epoch and its
    /// checkpoint), sent with the other slots' concurrent writes in one batch.
    /// </summary>
    private async Task FinishFencedAsync(Lease lease, TrialFinish finish, EpochRecord? metrics, byte[]? checkpoint, CancellationToken cancellationToken)
    {
        if (!finish.State.IsFinal())
        {
            throw new ArgumentException($"a trial finishes in a final state, not {finish.State}.", nameof(finish));
        }

        var changed = await BatchedAsync(_durable,
            $"""
            WITH u AS (UPDATE trials SET state = @state, val_accuracy = @va_, train_accuracy = @ta_, epochs_done = GREATEST(epochs_done, @ep), reason = @reason,
                           finished_at = {Now}, lease_expires_at = NULL{(_schema >= 6 ? ", value = @value" : "")}
                       WHERE id = @id AND lease_epoch = @epoch AND owner = @o AND state = 'running' RETURNING id),
            ev AS (INSERT INTO events (study, trial_id, at, kind, message) SELECT @s, id, {Now}, @k, @msg FROM u){(metrics is null ? "" : ",\n" + EpochSql("u", checkpoint is not null))}
            SELECT count(*) FROM u
            """,
            [("value", (object?)finish.Value ?? DBNull.Value), ("state", finish.State.ToText()), ("va_", (object?)finish.ValAccuracy ?? DBNull.Value), ("ta_", (object?)finish.TrainAccuracy ?? DBNull.Value),
                ("ep", finish.Epochs), ("reason", (object?)finish.Reason ?? DBNull.Value), ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner),
                ("s", lease.Study), ("k", "trial_" + finish.State.ToText()), ("msg", TrialEvents.Finished(lease, finish)), .. metrics is null ? [] : EpochParameters(metrics, checkpoint)],
            ReadCountAsync, cancellationToken);
        if (changed == 0)
        {
            // Only when it changed nothing is the trial looked at again: a batch or a retry whose commit's answer was
            // lost (the result is already stored, its epoch with it), or a lost lease.
            await WithRetriesAsync(async () =>
            {
                await using var conn = await _source.OpenConnectionAsync(cancellationToken);
                return await AlreadyFinishedAsync(conn, null, lease, finish.State) ? 0 : throw await LostAsync(conn, null, lease);
            }, cancellationToken);
        }
    }

    public Task ReleaseAsync(Lease lease, string reason, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            var changed = await ExecAsync(conn, tx,
                "UPDATE trials SET state = 'pending', owner = NULL, lease_expires_at = NULL, attempts = GREATEST(attempts - 1, 0) WHERE id = @id AND lease_epoch = @epoch AND owner = @o AND state = 'running'",
                ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner));
            if (changed == 0)
            {
                throw await LostAsync(conn, tx, lease);
            }

            await AddEventAsync(conn, tx, lease.Study, lease.TrialId, "trial_released", TrialEvents.Released(lease, reason));
            return 0;
        }, cancellationToken);

    public Task<int> RequeueExpiredAsync(string study, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            var retries = Convert.ToInt32(await ScalarAsync(conn, tx, "SELECT retries FROM studies WHERE name = @s", ("s", study)) ?? 0);
            var expired = await QueryAsync(conn, tx,
                $"SELECT id, number, owner, attempts FROM trials WHERE study = @s AND state = 'running' AND lease_expires_at < {Now} FOR UPDATE SKIP LOCKED",
                r => (Id: r.GetInt64(0), Number: r.GetInt32(1), Owner: r.IsDBNull(2) ? "?" : r.GetString(2), Attempts: r.GetInt32(3)), ("s", study));
            foreach (var t in expired)
            {
                var (fail, kind, message, reason) = TrialEvents.Expired(t.Number, t.Owner, t.Attempts, retries);
                if (fail)
                {
                    await ExecAsync(conn, tx, $"UPDATE trials SET state = 'failed', reason = @r, finished_at = {Now}, lease_expires_at = NULL WHERE id = @id", ("r", reason), ("id", t.Id));
                }
                else
                {
                    await ExecAsync(conn, tx, "UPDATE trials SET state = 'pending', owner = NULL, lease_expires_at = NULL WHERE id = @id", ("id", t.Id));
                }

                await AddEventAsync(conn, tx, study, t.Id, kind, message);
            }

            return expired.Count;
        }, cancellationToken);

    public Task<int> ExpireLeasesOfOwnerAsync(string ownerPrefix, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(ownerPrefix);
        // left/length count characters and = compares them exactly: no LIKE, so no wildcards. A second before now, so that
        // RequeueExpiredAsync (which takes leases that expired before its now) sees them expired even when its own now is
        // read a little earlier (statement latency varies); leases already expired are left alone (and not counted).
        return WriteAsync((conn, tx) => ExecAsync(conn, tx, $"UPDATE trials SET lease_expires_at = {Now} - 1000 WHERE state = 'running' AND lease_expires_at >= {Now} AND left(owner, length(@p)) = @p",
            ("p", ownerPrefix)), cancellationToken);
    }

    public Task<(int Epoch, byte[] Data)?> GetCheckpointAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn =>
        {
            var rows = await QueryAsync(conn, null, "SELECT epoch, data FROM checkpoints WHERE trial_id = @t", r => (r.GetInt32(0), (byte[])r.GetValue(1)), ("t", trialId));
            return rows.Count == 0 ? ((int, byte[])?)null : rows[0];
        }, cancellationToken);

    public Task<IReadOnlyList<TrialRecord>> GetTrialsAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null, $"SELECT {TrialColumns} FROM trials WHERE study = @s ORDER BY number", ReadTrial, ("s", study)), cancellationToken);

    public Task<TrialRecord?> GetTrialAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => (await QueryAsync(conn, null, $"SELECT {TrialColumns} FROM trials WHERE id = @id", ReadTrial, ("id", trialId))).FirstOrDefault(), cancellationToken);

    public Task<(IReadOnlyList<TrialRecord> Trials, int Total)> QueryTrialsAsync(string study, Core.Queries.TrialQuery query, CancellationToken cancellationToken = default) =>
        QueryReadAsync(async conn =>
        {
            var parameters = new List<(string Name, object Value)>();
            var slots = await SlotsAsync(conn, study);
            var clause = QuerySql.Build(query, SqlDialect.Postgres, slots, parameters);
            var all = parameters.Concat(QuerySql.Paging(study, query)).Select(p => (p.Name, (object?)p.Value)).ToArray();
            var page = query.Limit == 0 ? [] // only the count is asked for
                : await QueryAsync(conn, null, QuerySql.Page(clause, TrialColumns, "@"), r => (Trial: ReadTrial(r), Total: (int)r.GetInt64(17)), all);
            IReadOnlyList<TrialRecord> rows = [.. page.Select(x => x.Trial)];
            var total = !query.CountMatches ? -1
                : page.Count > 0 && page[0].Total >= 0 ? page[0].Total
                : Convert.ToInt32(await ScalarAsync(conn, null, QuerySql.Count(clause, "@"), all) ?? 0L);
            return (rows, total);
        }, cancellationToken);

    public Task<IReadOnlyList<Core.Queries.TrialGroup>> GroupTrialsAsync(string study, Core.Queries.TrialQuery query, string field, CancellationToken cancellationToken = default) =>
        QueryReadAsync(async conn =>
        {
            var parameters = new List<(string Name, object Value)>();
            var sql = QuerySql.Group(query, field, SqlDialect.Postgres, await SlotsAsync(conn, study), parameters, "@");
            return await QueryAsync(conn, null, sql, QuerySql.ReadGroup, [.. parameters.Concat(QuerySql.Paging(study, query)).Select(p => (p.Name, (object?)p.Value))]);
        }, cancellationToken);

    private async Task<Dictionary<string, int>> SlotsAsync(NpgsqlConnection conn, string study) =>
        (await QueryAsync(conn, null, "SELECT name, slot FROM study_params WHERE study = @s", r => (r.GetString(0), r.GetInt32(1)), ("s", study))).ToDictionary();

    public Task<StateCounts> CountStatesAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn =>
        {
            var rows = await QueryAsync(conn, null, "SELECT state, count(*) FROM trials WHERE study = @s GROUP BY state", r => (r.GetString(0), (int)r.GetInt64(1)), ("s", study));
            var d = rows.ToDictionary(x => x.Item1, x => x.Item2);
            int C(string s) => d.GetValueOrDefault(s);
            return new StateCounts(C("pending"), C("running"), C("completed"), C("pruned"), C("diverged"), C("failed"), C("paused"));
        }, cancellationToken);

    public Task<IReadOnlyList<EpochRecord>> GetEpochsAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null,
            $"SELECT {EpochColumns} FROM epochs e WHERE e.trial_id = @t ORDER BY e.epoch", r => ReadEpoch(r, 0), ("t", trialId)), cancellationToken);

    public Task<IReadOnlyList<EpochRecord>> GetCompletedEpochsAtAsync(string study, int epoch, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null,
            $"SELECT {EpochColumns} FROM epochs e JOIN trials t ON t.id = e.trial_id WHERE t.study = @s AND t.state = 'completed' AND e.epoch = @e",
            r => ReadEpoch(r, 0), ("s", study), ("e", epoch)), cancellationToken);

    public async Task<bool> CloseStudyAsync(StudyResult result, CancellationToken cancellationToken = default)
    {
        var closed = await CloseAsync(result, cancellationToken);
        if (closed)
        {
            await VacuumAsync(cancellationToken);
        }

        return closed;
    }

    /// <summary>
    /// Marks the finished study's pages all-visible and refreshes the statistics now rather than at autovacuum's next
    /// round (which leaves up to a fifth of a table's rows for later), so the study's result queries read the covering
    /// index alone. Best effort, at most a minute, and never waiting for another vacuum of the table (which does the
    /// same work): a role that does not own the table gets a warning from the server, a failure or the time limit leaves
    /// the rest to autovacuum (the pages marked so far stay marked); closing stands either way.
    /// </summary>
    private async Task VacuumAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var conn = await _source.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("VACUUM (ANALYZE, SKIP_LOCKED) trials", conn) { CommandTimeout = 60 };
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (NpgsqlException)
        {
        }
    }

    private Task<bool> CloseAsync(StudyResult result, CancellationToken cancellationToken) =>
        WriteAsync(async (conn, tx) =>
        {
            // Durable whatever the server's default: the result is the sweep's answer, and with the commit flushed every
            // earlier one is too, so the vacuum that follows can mark the study's pages all-visible.
            await ExecAsync(conn, tx, "SET LOCAL synchronous_commit = on");
            var changed = await ExecAsync(conn, tx, "UPDATE studies SET closed = TRUE, result = @r WHERE name = @n AND NOT closed",
                ("r", JsonSerializer.Serialize(result)), ("n", result.Study));
            if (changed == 1)
            {
                await AddEventAsync(conn, tx, result.Study, result.BestTrialId, "study_closed",
                    TrialEvents.Closed(result));
            }

            return changed == 1;
        }, cancellationToken);

    public Task<StudyResult?> GetResultAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn =>
        {
            var json = await ScalarAsync(conn, null, "SELECT result FROM studies WHERE name = @n", ("n", study));
            return json is string s ? JsonSerializer.Deserialize<StudyResult>(s) : null;
        }, cancellationToken);

    public Task HeartbeatWorkerAsync(string workerId, string host, int pid, long? currentTrialId, int slots, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            await ExecAsync(conn, tx, "SET LOCAL synchronous_commit = off"); // informational only
            await ExecAsync(conn, tx,
                $"""
                INSERT INTO workers (id, host, pid, started_at, last_heartbeat, current_trial, slots) VALUES (@id, @h, @p, {Now}, {Now}, @t, @slots)
                ON CONFLICT (id) DO UPDATE SET last_heartbeat = EXCLUDED.last_heartbeat, current_trial = EXCLUDED.current_trial, slots = EXCLUDED.slots
                """, ("id", workerId), ("h", host), ("p", pid), ("t", (object?)currentTrialId ?? DBNull.Value), ("slots", slots));
            return 0;
        }, cancellationToken);

    public Task MarkWorkerStoppedAsync(string workerId, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            await ExecAsync(conn, tx, $"UPDATE workers SET stopped_at = {Now} WHERE id = @id", ("id", workerId));
            return 0;
        }, cancellationToken);

    public Task<IReadOnlyList<WorkerRecord>> GetWorkersAsync(CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null, $"SELECT id, host, pid, started_at, last_heartbeat, current_trial, slots, {(_schema >= 7 ? "stopped_at" : "NULL::bigint")} FROM workers ORDER BY started_at",
            r => new WorkerRecord(r.GetString(0), r.GetString(1), r.GetInt32(2), Time(r.GetInt64(3)), Time(r.GetInt64(4)), r.IsDBNull(5) ? null : r.GetInt64(5), r.GetInt32(6), r.IsDBNull(7) ? null : Time(r.GetInt64(7)))), cancellationToken);

    public Task AddEventAsync(string study, long? trialId, string kind, string message, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            await AddEventAsync(conn, tx, study, trialId, kind, message);
            return 0;
        }, cancellationToken);

    public Task<IReadOnlyList<(DateTimeOffset At, long? TrialId, string Kind, string Message)>> GetEventsAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => await QueryAsync(conn, null, "SELECT at, trial_id, kind, message FROM events WHERE study = @s ORDER BY id",
            r => (Time(r.GetInt64(0)), r.IsDBNull(1) ? (long?)null : r.GetInt64(1), r.GetString(2), r.GetString(3)), ("s", study)), cancellationToken);

    public Task InitMembershipAsync(string clusterId, CancellationToken cancellationToken = default) =>
        WriteAsync((conn, tx) => ExecAsync(conn, tx, MembershipSql.Init("@"), ("c", clusterId), ("e", MembershipSql.NewEtag())), cancellationToken);

    public Task<MembershipSnapshot> ReadMembersAsync(string clusterId, string? address, CancellationToken cancellationToken = default) =>
        ReadAsync(async conn => MembershipSql.Snapshot(address is null
            ? await QueryAsync(conn, null, MembershipSql.Read("@", oneMember: false), MembershipSql.ReadLine, ("c", clusterId))
            : await QueryAsync(conn, null, MembershipSql.Read("@", oneMember: true), MembershipSql.ReadLine, ("c", clusterId), ("a", address))), cancellationToken);

    public Task<bool> InsertMemberAsync(string clusterId, MemberRow row, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default)
    {
        var etag = MembershipSql.NewEtag(); // the same in every retry, so that a retry can tell its own earlier commit
        return WriteAsync(async (conn, tx) =>
        {
            var (versionEtag, rowEtag) = await LockMembershipAsync(conn, tx, clusterId, row.Address);
            if (rowEtag == etag)
            {
                return true; // a retry of a commit whose answer was lost
            }

            if (versionEtag != expectedVersionEtag || rowEtag is not null || await ExecAsync(conn, tx, MembershipSql.Insert("@"), MembershipSql.Row("", clusterId, row, etag)) == 0)
            {
                return false;
            }

            await ExecAsync(conn, tx, MembershipSql.SetVersion("@"), ("c", clusterId), ("v", newVersion), ("e", etag));
            return true;
        }, cancellationToken);
    }

    public Task<bool> UpdateMemberAsync(string clusterId, MemberRow row, string expectedRowEtag, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default)
    {
        var etag = MembershipSql.NewEtag();
        return WriteAsync(async (conn, tx) =>
        {
            var (versionEtag, rowEtag) = await LockMembershipAsync(conn, tx, clusterId, row.Address);
            if (rowEtag == etag)
            {
                return true; // a retry of a commit whose answer was lost
            }

            if (versionEtag != expectedVersionEtag || rowEtag != expectedRowEtag
                || await ExecAsync(conn, tx, MembershipSql.Update("@"), [.. MembershipSql.Row("", clusterId, row, etag), ("expected", expectedRowEtag)]) == 0)
            {
                return false;
            }

            await ExecAsync(conn, tx, MembershipSql.SetVersion("@"), ("c", clusterId), ("v", newVersion), ("e", etag));
            return true;
        }, cancellationToken);
    }

    /// <summary>
    /// Locks the cluster's version row (every conditional membership write takes it first, so they run one at a time and
    /// the etags read here stay the table's until commit) and reads its etag and the member's (null: missing).
    /// </summary>
    private async Task<(string? VersionEtag, string? RowEtag)> LockMembershipAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string clusterId, string address)
    {
        var version = await ScalarAsync(conn, tx, MembershipSql.VersionEtag("@") + " FOR UPDATE", ("c", clusterId)) as string;
        var row = await ScalarAsync(conn, tx, MembershipSql.RowEtag("@"), ("c", clusterId), ("a", address)) as string;
        return (version, row);
    }

    public Task UpdateIAmAliveAsync(string clusterId, string address, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            // A heartbeat lost in a crash is only a late heartbeat; the next one follows within seconds.
            await ExecAsync(conn, tx, "SET LOCAL synchronous_commit = off");
            return await ExecAsync(conn, tx, MembershipSql.IAmAlive("@"), ("c", clusterId), ("a", address), ("t", at.ToUnixTimeMilliseconds()));
        }, cancellationToken);

    public Task<int> DeleteDefunctMembersAsync(string clusterId, DateTimeOffset before, CancellationToken cancellationToken = default) =>
        WriteAsync((conn, tx) => ExecAsync(conn, tx, MembershipSql.DeleteDefunct("@"), ("c", clusterId), ("active", MemberRow.ActiveStatus), ("b", before.ToUnixTimeMilliseconds())), cancellationToken);

    public Task DeleteMembersAsync(string clusterId, CancellationToken cancellationToken = default) =>
        WriteAsync(async (conn, tx) =>
        {
            // The version row first: the same lock order as the conditional writes, so the two never deadlock.
            await ExecAsync(conn, tx, MembershipSql.DeleteVersion("@"), ("c", clusterId));
            return await ExecAsync(conn, tx, MembershipSql.DeleteMembers("@"), ("c", clusterId));
        }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _durable.DisposeAsync();
        await _claims.DisposeAsync();
        await _source.DisposeAsync();
        if (_queries.IsValueCreated)
        {
            await _queries.Value.DisposeAsync();
        }
    }

    /// <summary>Renews the lease if it is still held (and records the epochs done when given); else throws <see cref="LeaseLostException"/>.</summary>
    private async Task FenceAsync(NpgsqlConnection conn, NpgsqlTransaction tx, Lease lease, TimeSpan leaseDuration, int? epochsDone = null)
    {
        var changed = await ExecAsync(conn, tx, $"UPDATE trials SET lease_expires_at = {Now} + @dur, epochs_done = coalesce(@done, epochs_done) WHERE id = @id AND lease_epoch = @epoch AND owner = @o AND state = 'running'",
            ("dur", (long)leaseDuration.TotalMilliseconds), ("done", (object?)epochsDone ?? DBNull.Value), ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner));
        if (changed == 0)
        {
            throw await LostAsync(conn, tx, lease);
        }
    }

    private async Task<bool> AlreadyFinishedAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, Lease lease, TrialState state)
    {
        var rows = await QueryAsync(conn, tx, "SELECT state FROM trials WHERE id = @id AND lease_epoch = @epoch AND owner = @o", r => r.GetString(0),
            ("id", lease.TrialId), ("epoch", lease.Token), ("o", lease.Owner));
        return rows.Count == 1 && rows[0] == state.ToText();
    }

    private async Task<LeaseLostException> LostAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, Lease lease)
    {
        var rows = await QueryAsync(conn, tx, "SELECT state, lease_epoch, owner FROM trials WHERE id = @id",
            r => LeaseLostException.Detail(lease, r.GetString(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetString(2)), ("id", lease.TrialId));
        return new LeaseLostException(lease, rows.FirstOrDefault() ?? "the trial does not exist");
    }

    private async Task<StudyRecord?> GetStudyAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string name) =>
        (await QueryAsync(conn, tx, $"SELECT {StudyColumns} FROM studies WHERE name = @n", ReadStudy, ("n", name))).FirstOrDefault();

    private Task AddEventAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string study, long? trialId, string kind, string message) =>
        ExecAsync(conn, tx, $"INSERT INTO events (study, trial_id, at, kind, message) VALUES (@s, @t, {Now}, @k, @m)",
            ("s", study), ("t", (object?)trialId ?? DBNull.Value), ("k", kind), ("m", message));

    /// <summary>What <see cref="ReadStudy"/> reads (a store at a schema before 5, only opened to test migrations, has no sweep_json).</summary>
    private string StudyColumns => $"name, sweep_hash, sweep_text, {(_schema >= 5 ? "sweep_json" : "NULL::text")}, method, trial_count, created_at, closed, max_running, retries";

    private static StudyRecord ReadStudy(NpgsqlDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetString(4), r.GetInt32(5), Time(r.GetInt64(6)), r.GetBoolean(7),
            r.IsDBNull(8) ? null : r.GetInt32(8), r.GetInt32(9));

    private static TrialRecord ReadTrial(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetString(3), unchecked((ulong)r.GetInt64(4)), TrialStates.Parse(r.GetString(5)), r.GetInt32(6),
        r.IsDBNull(7) ? null : r.GetString(7), r.GetInt64(8), r.IsDBNull(9) ? null : Time(r.GetInt64(9)), r.GetInt32(10),
        r.IsDBNull(11) ? null : r.GetDouble(11), r.IsDBNull(12) ? null : r.GetDouble(12), r.IsDBNull(13) ? null : r.GetString(13),
        r.IsDBNull(14) ? null : Time(r.GetInt64(14)), r.IsDBNull(15) ? null : Time(r.GetInt64(15)))
    {
        Value = r.IsDBNull(16) ? null : r.GetDouble(16),
    };

    /// <summary>An epoch from <see cref="EpochColumns"/> starting at column <paramref name="at"/>: NULL metrics (not reported) read as NaN.</summary>
    private static EpochRecord ReadEpoch(NpgsqlDataReader r, int at)
    {
        double M(int i) => r.IsDBNull(at + i) ? double.NaN : r.GetDouble(at + i);
        return new EpochRecord(r.GetInt32(at), M(1), M(2), M(3), M(4), M(5), StudySweeps.ReadMetrics(r.IsDBNull(at + 6) ? null : r.GetString(at + 6)));
    }

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    /// <summary>True for failures that a new attempt may not meet: connection trouble, a restarting server, serialization failures, deadlocks.</summary>
    public static bool IsTransient(Exception e) => e switch
    {
        PostgresException pg => pg.SqlState is "40001" or "40P01" or "57P01" or "57P02" or "57P03" or "53300" or "08000" or "08003" or "08006" or "08001" or "08004",
        NpgsqlException n => n.IsTransient || n.InnerException is System.Net.Sockets.SocketException or TimeoutException or IOException,
        System.Net.Sockets.SocketException or TimeoutException or IOException => true,
        _ => false,
    };

    private async Task<T> WithRetriesAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken)
    {
        var delay = FirstBackoff;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await work();
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                if (attempt >= MaxAttempts)
                {
                    throw new StoreUnavailableException($"PostgreSQL store unreachable after {attempt} attempts: {e.Message}", e);
                }

                await Task.Delay(delay + TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)delay.TotalMilliseconds + 1)), cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    private Task<T> WriteAsync<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken) =>
        InTransactionAsync(_source, work, cancellationToken);

    /// <summary>One transaction on a connection of <paramref name="source"/>, retried whole on a transient failure.</summary>
    private Task<T> InTransactionAsync<T>(NpgsqlDataSource source, Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken) =>
        WithRetriesAsync(async () =>
        {
            await using var conn = await source.OpenConnectionAsync(cancellationToken);
            await using var tx = await conn.BeginTransactionAsync(cancellationToken);
            var result = await work(conn, tx);
            await tx.CommitAsync(cancellationToken);
            return result;
        }, cancellationToken);

    private Task<T> ReadAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken) =>
        WithRetriesAsync(async () =>
        {
            await using var conn = await _source.OpenConnectionAsync(cancellationToken);
            return await work(conn);
        }, cancellationToken);

    /// <summary>
    /// A query of the results, on the pool that plans each statement for its values, in one transaction with
    /// random_page_cost at most 1.1 (a lower setting of the server's stands). The default of 4 prices every index page
    /// as a disk seek; a study's rows and its covering index (<c>trials_keys</c>) are read from memory, and at 4 the
    /// planner scans the table instead of an index a fifth its size, for about 1.3 times the time.
    /// </summary>
    private Task<T> QueryReadAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken) =>
        InTransactionAsync(_queries.Value, async (conn, tx) =>
        {
            await ExecAsync(conn, tx, "SELECT set_config('random_page_cost', least(current_setting('random_page_cost')::float8, 1.1)::text, true)");
            return await work(conn);
        }, cancellationToken);

    private NpgsqlCommand Command(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, conn, tx);
        AddParameters(command.Parameters, sql, parameters);
        return command;
    }

    private NpgsqlBatchCommand BatchCommand(string sql, (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        AddParameters(command.Parameters, sql, parameters);
        return command;
    }

    private void AddParameters(NpgsqlParameterCollection target, string sql, (string Name, object? Value)[] parameters)
    {
        if (sql.Contains("@skew", StringComparison.Ordinal))
        {
            target.AddWithValue("skew", Skew);
        }

        foreach (var (name, value) in parameters)
        {
            target.AddWithValue(name, value ?? DBNull.Value);
        }
    }

    /// <summary>
    /// Runs one self-contained statement of the hot path (it holds its own fence) in the next batch of
    /// <paramref name="batcher"/>, or alone with the usual retries when that batch failed as a whole.
    /// </summary>
    private async Task<T> BatchedAsync<T>(StatementBatcher batcher, string sql, (string Name, object? Value)[] parameters, Func<NpgsqlDataReader, Task<T>> read,
        CancellationToken cancellationToken)
    {
        try
        {
            return await batcher.RunAsync(sql, parameters, read, cancellationToken);
        }
        catch (BatchFailedException)
        {
            // Run alone below: a lost connection or a restarting server gets the retries; an error of this statement
            // is its own again, without the rest of the batch.
        }

        return await WithRetriesAsync(async () =>
        {
            await using var conn = await _source.OpenConnectionAsync(cancellationToken);
            await using var command = Command(conn, null, sql, parameters);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            return await read(reader);
        }, cancellationToken);
    }

    private static async Task<long> ReadCountAsync(NpgsqlDataReader reader) =>
        await reader.ReadAsync() ? reader.GetInt64(0) : throw new InvalidOperationException("a count returned no row.");

    private static Func<NpgsqlDataReader, Task<IReadOnlyList<T>>> ReadAll<T>(Func<NpgsqlDataReader, T> read) => async reader =>
    {
        var list = new List<T>();
        while (await reader.ReadAsync())
        {
            list.Add(read(reader));
        }

        return list;
    };

    private async Task<int> ExecAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, params (string, object?)[] parameters)
    {
        await using var command = Command(conn, tx, sql, parameters);
        return await command.ExecuteNonQueryAsync();
    }

    private async Task<object?> ScalarAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, params (string, object?)[] parameters)
    {
        await using var command = Command(conn, tx, sql, parameters);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull ? null : value;
    }

    private async Task<IReadOnlyList<T>> QueryAsync<T>(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, Func<NpgsqlDataReader, T> read, params (string, object?)[] parameters)
    {
        await using var command = Command(conn, tx, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        return await ReadAll(read)(reader);
    }
}
