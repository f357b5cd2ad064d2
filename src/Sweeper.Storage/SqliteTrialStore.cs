using System.Data;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sweeper.Core.Trials;

namespace Sweeper.Storage;

/// <summary>
/// The embedded trial store: one SQLite file in WAL mode (synchronous=NORMAL: a committed write survives the
/// crash of any process; readers never block the writer). Several processes may open the same file; every write
/// is one BEGIN IMMEDIATE transaction, so claims are serialized by SQLite's write lock. Time comes from the
/// injected clock (the machine's: on one machine the store's clock and the workers' are the same).
/// </summary>
public sealed class SqliteTrialStore : ITrialStore, IMembershipStore
{
    public const int SchemaVersion = 7;

    private static readonly string[][] _migrations =
    [
        // 1: the initial schema
        [
            "CREATE TABLE studies (name TEXT PRIMARY KEY, sweep_hash TEXT NOT NULL, sweep_text TEXT NOT NULL, method TEXT NOT NULL, trial_count INTEGER NOT NULL, created_at INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0, max_running INTEGER, retries INTEGER NOT NULL, result TEXT)",
            "CREATE TABLE trials (id INTEGER PRIMARY KEY, study TEXT NOT NULL REFERENCES studies(name), number INTEGER NOT NULL, params TEXT NOT NULL, seed INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, owner TEXT, lease_epoch INTEGER NOT NULL DEFAULT 0, lease_expires_at INTEGER, epochs_done INTEGER NOT NULL DEFAULT 0, val_accuracy REAL, train_accuracy REAL, reason TEXT, started_at INTEGER, finished_at INTEGER, UNIQUE (study, number))",
            "CREATE INDEX trials_by_state ON trials (study, state, number)",
            "CREATE TABLE epochs (trial_id INTEGER NOT NULL, epoch INTEGER NOT NULL, loss REAL NOT NULL, train_accuracy REAL NOT NULL, val_accuracy REAL NOT NULL, learning_rate REAL NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (trial_id, epoch)) WITHOUT ROWID",
            "CREATE TABLE checkpoints (trial_id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, data BLOB NOT NULL)",
            "CREATE TABLE workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at INTEGER NOT NULL, last_heartbeat INTEGER NOT NULL, current_trial INTEGER)",
            "CREATE TABLE events (id INTEGER PRIMARY KEY, study TEXT NOT NULL, trial_id INTEGER, at INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)",
            "CREATE INDEX events_by_study ON events (study, id)",
        ],

        // 2: parameters in typed slot columns (filled for existing studies by BackfillSlotsAsync), results sorted by index
        [
            .. ParamSlots.AddColumns("REAL", "TEXT").Select(c => "ALTER TABLE trials ADD COLUMN " + c),
            "CREATE TABLE study_params (study TEXT NOT NULL REFERENCES studies(name), name TEXT NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (study, name))",
            "CREATE INDEX trials_by_val ON trials (study, val_accuracy DESC, number)",
            "ANALYZE",
        ],

        // 3: a covering index of what result queries filter and sort on: a page sorted by a parameter reads it instead of
        // the table (whose rows also hold the JSON parameters and the lease); lookups by number use it too. Heartbeats
        // and renewals change none of its columns, so they leave it alone.
        [
            $"CREATE INDEX trials_keys ON trials (study, number, state, val_accuracy, {ParamSlots.Columns})",
            "ANALYZE trials",
        ],

        // 4: workers report their training slots; the runtime's cluster membership (see IMembershipStore and MembershipSql)
        [
            "ALTER TABLE workers ADD COLUMN slots INTEGER NOT NULL DEFAULT 0",
            "CREATE TABLE membership_version (cluster TEXT PRIMARY KEY, version INTEGER NOT NULL, etag TEXT NOT NULL)",
            "CREATE TABLE members (cluster TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, host_name TEXT NOT NULL, silo_name TEXT NOT NULL, proxy_port INTEGER NOT NULL, start_time INTEGER NOT NULL, i_am_alive_time INTEGER NOT NULL, suspect_times TEXT, latest_suspect_time INTEGER, etag TEXT NOT NULL, PRIMARY KEY (cluster, address)) WITHOUT ROWID",
        ],

        // 5: each study keeps its resolved sweep definition (SweepJson), filled for existing studies by StudySweeps.Resolve
        [
            "ALTER TABLE studies ADD COLUMN sweep_json TEXT",
        ],

        // 6: a training program reports any metrics: an epoch keeps the extra ones as JSON text and NULL for a built-in
        // metric it did not report (SQLite cannot drop NOT NULL: the table is rebuilt, every row copied); each trial keeps
        // its value of the sweep's metric, filled for existing trials by StudySweeps.ValueBackfill
        [
            "CREATE TABLE epochs_v6 (trial_id INTEGER NOT NULL, epoch INTEGER NOT NULL, loss REAL, train_accuracy REAL, val_accuracy REAL, learning_rate REAL, seconds REAL, metrics TEXT, PRIMARY KEY (trial_id, epoch)) WITHOUT ROWID",
            "INSERT INTO epochs_v6 (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds) SELECT trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds FROM epochs",
            "DROP TABLE epochs",
            "ALTER TABLE epochs_v6 RENAME TO epochs",
            "ALTER TABLE trials ADD COLUMN value REAL",
        ],

        // 7: a worker that stops of its own accord says so (a clean stop is not shown as a death)
        [
            "ALTER TABLE workers ADD COLUMN stopped_at INTEGER",
        ],
    ];

    /// <summary>What <see cref="ReadTrial"/> reads (a store at a schema before 6, only opened to test migrations, has no value).</summary>
    private string TrialColumns => "id, study, number, params, seed, state, attempts, owner, lease_epoch, lease_expires_at, epochs_done, val_accuracy, train_accuracy, reason, started_at, finished_at, "
        + (_schema >= 6 ? "value" : "NULL");

    /// <summary>What <see cref="ReadEpoch"/> reads, from epochs as <c>e</c> (a store before schema 6 has no extra metrics).</summary>
    private string EpochColumns => "e.epoch, e.loss, e.train_accuracy, e.val_accuracy, e.learning_rate, e.seconds, " + (_schema >= 6 ? "e.metrics" : "NULL");

    private readonly SqliteConnection _connection;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, SqliteCommand> _statements = new(StringComparer.Ordinal);
    private readonly TimeProvider _clock;

    /// <summary>The schema the store was opened at: <see cref="SchemaVersion"/>, or an older one only to test migrations.</summary>
    private readonly int _schema;

    private SqliteTrialStore(SqliteConnection connection, TimeProvider clock, string path, int schema)
    {
        _schema = schema;
        _connection = connection;
        _clock = clock;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Whether SQLite opened the file for reading only (it does so silently when the file is write-protected).</summary>
    public bool ReadOnly { get; private set; }

    /// <summary>Opens (creating if needed) the store file and brings its schema up to date.</summary>
    public static Task<SqliteTrialStore> OpenAsync(string path, TimeProvider? clock = null, CancellationToken cancellationToken = default) =>
        OpenAsync(path, clock, SchemaVersion, cancellationToken);

    /// <summary>Opens the store, migrating it to <paramref name="schemaVersion"/> (older versions only to test migrations).</summary>
    public static async Task<SqliteTrialStore> OpenAsync(string path, TimeProvider? clock, int schemaVersion, CancellationToken cancellationToken = default)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = full,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 60,
        }.ToString());
        await connection.OpenAsync(cancellationToken);
        var store = new SqliteTrialStore(connection, clock ?? TimeProvider.System, full, schemaVersion)
        {
            ReadOnly = SQLitePCL.raw.sqlite3_db_readonly(connection.Handle, "main") == 1,
        };
        try
        {
            await store.ExecAsync("PRAGMA busy_timeout = 60000");
            await store.ExecAsync("PRAGMA journal_mode = WAL");
            await store.ExecAsync("PRAGMA synchronous = NORMAL");
            await store.ExecAsync("PRAGMA foreign_keys = ON");
            await store.MigrateAsync(schemaVersion, cancellationToken);
            // Checkpoints are the background checkpointer's: a write no longer pays for one now and then (copying
            // the log into the database and syncing both, a stall of milliseconds). The limit stays as a safety net,
            // should the checkpointer fall behind: the log then stops growing past it.
            await store.ExecAsync($"PRAGMA wal_autocheckpoint = {AutoCheckpointPages}");
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        store._checkpointer = Task.Run(() => store.CheckpointLoopAsync(full));
        return store;
    }

    /// <summary>Pages of write-ahead log past which a write checkpoints itself (SQLite's default is 1,000).</summary>
    private const int AutoCheckpointPages = 16_000;

    private readonly CancellationTokenSource _closing = new();
    private Task _checkpointer = Task.CompletedTask;

    /// <summary>
    /// Copies the write-ahead log into the database every half second on a connection of its own, without waiting for
    /// readers or writers (a passive checkpoint): the log stays short and the writes never stall for a checkpoint.
    /// </summary>
    private async Task CheckpointLoopAsync(string path)
    {
        try
        {
            await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
            await connection.OpenAsync(_closing.Token);
            await using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
            while (await timer.WaitForNextTickAsync(_closing.Token))
            {
                try
                {
                    await checkpoint.ExecuteNonQueryAsync(_closing.Token);
                }
                catch (SqliteException)
                {
                    // Busy or locked this time: the next tick tries again, and the writes' own limit stands meanwhile.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SqliteException)
        {
            // The file cannot be opened a second time (gone, unreadable): the writes checkpoint themselves past the limit.
        }
    }

    private long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task MigrateAsync(int target, CancellationToken cancellationToken)
    {
        await WriteAsync(async tx =>
        {
            await ExecAsync("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", tx);
            var current = Convert.ToInt32(await ScalarAsync("SELECT coalesce(max(version), 0) FROM schema_version", tx) ?? 0L);
            if (current > SchemaVersion)
            {
                throw new SchemaTooNewException(current, SchemaVersion);
            }

            for (var v = current; v < target; v++)
            {
                foreach (var sql in _migrations[v])
                {
                    await ExecAsync(sql, tx);
                }

                if (v + 1 == 2)
                {
                    foreach (var study in await QueryAsync("SELECT name FROM studies", tx, r => r.GetString(0)))
                    {
                        var trials = await QueryAsync("SELECT id, params FROM trials WHERE study = $s", tx, r => (r.GetInt64(0), r.GetString(1)), ("$s", study));
                        await WriteSlotsAsync(study, trials, tx, cancellationToken);
                    }
                }

                if (v + 1 == 5)
                {
                    foreach (var (name, text) in await QueryAsync("SELECT name, sweep_text FROM studies", tx, r => (r.GetString(0), r.GetString(1))))
                    {
                        await ExecAsync("UPDATE studies SET sweep_json = $j WHERE name = $n", tx, ("$j", StudySweeps.Resolve(name, text)), ("$n", name));
                    }
                }

                if (v + 1 == 6)
                {
                    foreach (var (name, json) in await QueryAsync("SELECT name, sweep_json FROM studies", tx, r => (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1))))
                    {
                        if (StudySweeps.ValueBackfill(json, "$") is { } backfill)
                        {
                            await ExecAsync(backfill, tx, ("$s", name));
                        }
                    }
                }

                await ExecAsync("INSERT INTO schema_version (version) VALUES ($v)", tx, ("$v", v + 1));
            }

            return 0;
        }, cancellationToken);
    }

    public async Task<StudyRecord> CreateStudyAsync(NewStudy study, CancellationToken cancellationToken = default)
    {
        var record = await CreateAsync(study, cancellationToken);
        // Statistics for the query planner (about 20 ms per 100,000 trials; a sampled ANALYZE misjudges the study
        // column): without them it takes an index on the study as selective and reads 100,000 rows one lookup at a
        // time instead of scanning.
        await WriteAsync(tx => ExecAsync("ANALYZE trials", tx), cancellationToken);
        return record;
    }

    private Task<StudyRecord> CreateAsync(NewStudy study, CancellationToken cancellationToken) =>
        WriteAsync(async tx =>
        {
            var existing = await GetStudyAsync(study.Name, tx);
            if (existing is not null)
            {
                return existing.SweepHash == study.SweepHash ? existing : throw new StudyConflictException(study.Name);
            }

            var now = Now;
            (string, object?)[] columns =
            [
                ("$n", study.Name), ("$h", study.SweepHash), ("$t", study.SweepText), ("$m", study.Method), ("$c", study.TrialCount), ("$now", now),
                ("$max", (object?)study.MaxRunning ?? DBNull.Value), ("$r", study.Retries),
            ];
            await ExecAsync(_schema >= 5
                ? "INSERT INTO studies (name, sweep_hash, sweep_text, sweep_json, method, trial_count, created_at, max_running, retries) VALUES ($n, $h, $t, $j, $m, $c, $now, $max, $r)"
                : "INSERT INTO studies (name, sweep_hash, sweep_text, method, trial_count, created_at, max_running, retries) VALUES ($n, $h, $t, $m, $c, $now, $max, $r)",
                tx, _schema >= 5 ? [.. columns, ("$j", study.SweepJson)] : columns);
            var names = await AddSlotsAsync(study.Name, [], ParamSlots.Names(study.ParameterNames, study.Trials.Select(t => t.ParametersJson)), tx);
            using var insert = Command($"INSERT INTO trials (study, number, params, seed, state, {ParamSlots.Columns}) VALUES ($s, $num, $p, $seed, 'pending', {SlotBinder.Placeholders})", tx);
            insert.Parameters.AddWithValue("$s", study.Name);
            var num = insert.Parameters.Add("$num", SqliteType.Integer);
            var p = insert.Parameters.Add("$p", SqliteType.Text);
            var seed = insert.Parameters.Add("$seed", SqliteType.Integer);
            var slots = new SlotBinder(insert, names);
            insert.Prepare();
            foreach (var trial in study.Trials)
            {
                num.Value = trial.Number;
                p.Value = trial.ParametersJson;
                seed.Value = unchecked((long)trial.Seed);
                slots.Bind(trial.ParametersJson);
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            await AddEventAsync(study.Name, null, "study_created", $"{study.TrialCount} trials ({study.Method})", tx);
            return (await GetStudyAsync(study.Name, tx))!;
        }, cancellationToken);

    public Task<StudyRecord?> GetStudyAsync(string name, CancellationToken cancellationToken = default) =>
        ReadAsync(() => GetStudyAsync(name, null), cancellationToken);

    /// <summary>
    /// Gives the parameter names of <paramref name="names"/> that <paramref name="existing"/> (the study's names in slot
    /// order) lacks the next slots (see <see cref="ParamSlots"/>); returns all the study's names in slot order.
    /// </summary>
    private async Task<List<string>> AddSlotsAsync(string study, IReadOnlyList<string> existing, IEnumerable<string> names, SqliteTransaction tx)
    {
        var all = new List<string>(existing);
        foreach (var name in names.Where(n => !existing.Contains(n, StringComparer.Ordinal)))
        {
            await ExecAsync("INSERT INTO study_params (study, name, slot) VALUES ($s, $n, $slot)", tx, ("$s", study), ("$n", name), ("$slot", all.Count));
            all.Add(name);
        }

        return all;
    }

    public Task<bool> AddTrialAsync(string study, NewTrial trial, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var open = await ScalarAsync("SELECT 1 FROM studies WHERE name = $s AND closed = 0", tx, ("$s", study)) is not null;
            if (!open || await ScalarAsync("SELECT 1 FROM trials WHERE study = $s AND number = $num", tx, ("$s", study), ("$num", trial.Number)) is not null)
            {
                return false;
            }

            var existing = (await QueryAsync("SELECT name FROM study_params WHERE study = $s ORDER BY slot", tx, r => r.GetString(0), ("$s", study))).ToList();
            var names = await AddSlotsAsync(study, existing, ParamSlots.Names(null, [trial.ParametersJson]), tx);
            using var insert = Command($"INSERT INTO trials (study, number, params, seed, state, {ParamSlots.Columns}) VALUES ($s, $num, $p, $seed, 'pending', {SlotBinder.Placeholders})", tx);
            insert.Parameters.AddWithValue("$s", study);
            insert.Parameters.AddWithValue("$num", trial.Number);
            insert.Parameters.AddWithValue("$p", trial.ParametersJson);
            insert.Parameters.AddWithValue("$seed", unchecked((long)trial.Seed));
            new SlotBinder(insert, names).Bind(trial.ParametersJson);
            await insert.ExecuteNonQueryAsync(cancellationToken);
            return true;
        }, cancellationToken);

    public Task PauseAsync(Lease lease, TrialFinish summary, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var changed = await ExecAsync(
                $"""
                UPDATE trials SET state = 'paused', owner = NULL, lease_expires_at = NULL, attempts = max(attempts - 1, 0), val_accuracy = $va, train_accuracy = $ta,
                    epochs_done = max(epochs_done, $ep), reason = $reason{(_schema >= 6 ? ", value = $value" : "")}
                WHERE id = $id AND lease_epoch = $epoch AND owner = $o AND state = 'running'
                """,
                tx, ("$value", (object?)summary.Value ?? DBNull.Value), ("$va", (object?)summary.ValAccuracy ?? DBNull.Value), ("$ta", (object?)summary.TrainAccuracy ?? DBNull.Value), ("$ep", summary.Epochs),
                ("$reason", (object?)summary.Reason ?? DBNull.Value), ("$id", lease.TrialId), ("$epoch", lease.Token), ("$o", lease.Owner));
            if (changed == 0)
            {
                throw await LostAsync(lease, tx);
            }

            await AddEventAsync(lease.Study, lease.TrialId, "trial_paused", TrialEvents.Paused(lease, summary), tx);
            return 0;
        }, cancellationToken);

    public Task<bool> PromoteAsync(long trialId, string reason, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var study = await ScalarAsync("UPDATE trials SET state = 'pending' WHERE id = $id AND state = 'paused' RETURNING study", tx, ("$id", trialId));
            if (study is not string name)
            {
                return false;
            }

            await AddEventAsync(name, trialId, "trial_promoted", reason, tx);
            return true;
        }, cancellationToken);

    public Task<int> EndPausedAsync(string study, TrialState state, string reason, CancellationToken cancellationToken = default)
    {
        if (!state.IsFinal())
        {
            throw new ArgumentException($"paused trials end in a final state, not {state}.", nameof(state));
        }

        return WriteAsync(async tx =>
        {
            var ended = await ExecAsync("UPDATE trials SET state = $state, reason = $reason, finished_at = $now WHERE study = $s AND state = 'paused'", tx,
                ("$state", state.ToText()), ("$reason", reason), ("$now", Now), ("$s", study));
            if (ended > 0)
            {
                await AddEventAsync(study, null, "paused_trials_ended", $"{ended} paused trial(s) {state.ToText()}: {reason}", tx);
            }

            return ended;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<(int Number, EpochRecord Metrics)>> GetEpochOfTrialsAsync(string study, int epoch, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync(
            $"SELECT t.number, {EpochColumns} FROM epochs e JOIN trials t ON t.id = e.trial_id WHERE t.study = $s AND e.epoch = $e ORDER BY t.number",
            null, r => (r.GetInt32(0), ReadEpoch(r, 1)), ("$s", study), ("$e", epoch)),
            cancellationToken);

    /// <summary>Fills the slot columns of a study's existing trials (the migration to schema 2).</summary>
    private async Task WriteSlotsAsync(string study, IReadOnlyList<(long Id, string Params)> trials, SqliteTransaction tx, CancellationToken cancellationToken)
    {
        var names = await AddSlotsAsync(study, [], ParamSlots.Names(null, trials.Select(t => t.Params)), tx);
        using var update = Command($"UPDATE trials SET ({ParamSlots.Columns}) = ({SlotBinder.Placeholders}) WHERE id = $id", tx);
        var id = update.Parameters.Add("$id", SqliteType.Integer);
        var slots = new SlotBinder(update, names);
        foreach (var trial in trials)
        {
            id.Value = trial.Id;
            slots.Bind(trial.Params);
            await update.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>The slot columns' parameters ($v0, $v1, ... in <see cref="ParamSlots.Columns"/> order) of one command, set per trial.</summary>
    private sealed class SlotBinder
    {
        public static readonly string Placeholders = string.Join(", ", Enumerable.Range(0, 2 * ParamSlots.Count).Select(i => "$v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        private readonly SqliteParameter[] _parameters;
        private readonly IReadOnlyList<string> _names;
        private readonly object?[] _values = new object?[2 * ParamSlots.Count];

        public SlotBinder(SqliteCommand command, IReadOnlyList<string> names)
        {
            _names = names;
            _parameters = [.. Enumerable.Range(0, 2 * ParamSlots.Count).Select(i => command.Parameters.Add("$v" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), i % 2 == 0 ? SqliteType.Real : SqliteType.Text))];
        }

        public void Bind(string parametersJson)
        {
            ParamSlots.Values(parametersJson, _names, _values);
            for (var i = 0; i < _values.Length; i++)
            {
                _parameters[i].Value = _values[i] ?? DBNull.Value;
            }
        }
    }

    public Task<IReadOnlyList<StudyRecord>> ListStudiesAsync(CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync($"SELECT {StudyColumns} FROM studies ORDER BY created_at, name", null, ReadStudy), cancellationToken);

    public Task<Lease?> ClaimAsync(string? study, string owner, TimeSpan leaseDuration, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            // One conditional update: it either moves a pending trial to running for this owner, or changes nothing.
            // Two claimers never both win: the write lock serializes them and the second sees state = 'running'.
            var now = Now;
            // The study-specific form lets SQLite walk the (study, state, number) index straight to the first pending trial.
            var pick = study is null
                ? """
                  SELECT t.id FROM trials t JOIN studies s ON s.name = t.study
                  WHERE t.state = 'pending' AND s.closed = 0
                    AND (s.max_running IS NULL OR (SELECT count(*) FROM trials r WHERE r.study = t.study AND r.state = 'running') < s.max_running)
                  ORDER BY s.created_at, t.study, t.number LIMIT 1
                  """
                : """
                  SELECT t.id FROM trials t
                  WHERE t.study = $study AND t.state = 'pending'
                    AND (SELECT closed = 0 AND (max_running IS NULL OR (SELECT count(*) FROM trials r WHERE r.study = $study AND r.state = 'running') < max_running)
                         FROM studies WHERE name = $study)
                  ORDER BY t.number LIMIT 1
                  """;
            var leases = await QueryAsync(
                $"""
                UPDATE trials SET state = 'running', owner = $owner, lease_epoch = lease_epoch + 1, attempts = attempts + 1,
                    lease_expires_at = $expires, started_at = coalesce(started_at, $now)
                WHERE id = ({pick}) AND state = 'pending'
                RETURNING id, study, number, params, seed, lease_epoch, attempts
                """,
                tx,
                r => new Lease(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetString(3), unchecked((ulong)r.GetInt64(4)), owner, r.GetInt64(5), r.GetInt32(6)),
                ("$owner", owner), ("$expires", now + (long)leaseDuration.TotalMilliseconds), ("$now", now), ("$study", (object?)study ?? DBNull.Value));
            if (leases.Count != 1)
            {
                return null;
            }

            var hasCheckpoint = Convert.ToInt64(await ScalarAsync("SELECT EXISTS (SELECT 1 FROM checkpoints WHERE trial_id = $t)", tx, ("$t", leases[0].TrialId)) ?? 0L) != 0;
            return leases[0] with { HasCheckpoint = hasCheckpoint };
        }, cancellationToken);

    public Task RenewAsync(Lease lease, TimeSpan leaseDuration, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await FenceAsync(lease, leaseDuration, tx);
            return 0;
        }, cancellationToken);

    public Task ReportEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TimeSpan leaseDuration, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await FenceAsync(lease, leaseDuration, tx);
            await ExecAsync("UPDATE trials SET epochs_done = $e WHERE id = $t", tx, ("$e", metrics.Epoch), ("$t", lease.TrialId));
            await WriteEpochAsync(lease, metrics, checkpoint, tx);
            return 0;
        }, cancellationToken);

    /// <summary>An epoch's metrics and, when given, its checkpoint (replacing any of the same epoch); the caller fences.</summary>
    private async Task WriteEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, SqliteTransaction tx)
    {
        (string, object?)[] values =
        [
            ("$t", lease.TrialId), ("$e", metrics.Epoch), ("$l", StudySweeps.Metric(metrics.Loss)), ("$ta", StudySweeps.Metric(metrics.TrainAccuracy)),
            ("$va", StudySweeps.Metric(metrics.ValAccuracy)), ("$lr", StudySweeps.Metric(metrics.LearningRate)), ("$s", StudySweeps.Metric(metrics.Seconds)),
        ];
        await ExecAsync(_schema >= 6
            ? "INSERT OR REPLACE INTO epochs (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds, metrics) VALUES ($t, $e, $l, $ta, $va, $lr, $s, $m)"
            : "INSERT OR REPLACE INTO epochs (trial_id, epoch, loss, train_accuracy, val_accuracy, learning_rate, seconds) VALUES ($t, $e, $l, $ta, $va, $lr, $s)", tx,
            _schema >= 6 ? [.. values, ("$m", StudySweeps.MetricsJson(metrics.Metrics))] : values);
        if (checkpoint is not null)
        {
            await ExecAsync("INSERT OR REPLACE INTO checkpoints (trial_id, epoch, data) VALUES ($t, $e, $d)", tx,
                ("$t", lease.TrialId), ("$e", metrics.Epoch), ("$d", checkpoint));
        }
    }

    public Task FinishAsync(Lease lease, TrialFinish finish, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await FinishInAsync(lease, finish, tx);
            return 0;
        }, cancellationToken);

    public Task FinishAfterEpochAsync(Lease lease, EpochRecord metrics, byte[]? checkpoint, TrialFinish finish, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            if (await FinishInAsync(lease, finish with { Epochs = Math.Max(finish.Epochs, metrics.Epoch) }, tx))
            {
                await WriteEpochAsync(lease, metrics, checkpoint, tx);
            }

            return 0;
        }, cancellationToken);

    /// <summary>
    /// The fenced finish inside <paramref name="tx"/>: true when it moved the trial to its final state, false when a
    /// retry finds it so already (the first commit went through, answer lost); throws <see cref="LeaseLostException"/> otherwise.
    /// </summary>
    private async Task<bool> FinishInAsync(Lease lease, TrialFinish finish, SqliteTransaction tx)
    {
        if (!finish.State.IsFinal())
        {
            throw new ArgumentException($"a trial finishes in a final state, not {finish.State}.", nameof(finish));
        }

        var changed = await ExecAsync(
            $"""
            UPDATE trials SET state = $state, val_accuracy = $va, train_accuracy = $ta, epochs_done = max(epochs_done, $ep), reason = $reason,
                finished_at = $now, lease_expires_at = NULL{(_schema >= 6 ? ", value = $value" : "")}
            WHERE id = $id AND lease_epoch = $epoch AND owner = $o AND state = 'running'
            """,
            tx, ("$value", (object?)finish.Value ?? DBNull.Value), ("$state", finish.State.ToText()), ("$va", (object?)finish.ValAccuracy ?? DBNull.Value), ("$ta", (object?)finish.TrainAccuracy ?? DBNull.Value),
            ("$ep", finish.Epochs), ("$reason", (object?)finish.Reason ?? DBNull.Value), ("$now", Now), ("$id", lease.TrialId), ("$epoch", lease.Token), ("$o", lease.Owner));
        if (changed == 0)
        {
            var already = await QueryAsync("SELECT state FROM trials WHERE id = $id AND lease_epoch = $epoch AND owner = $o", tx, r => r.GetString(0),
                ("$id", lease.TrialId), ("$epoch", lease.Token), ("$o", lease.Owner));
            if (already.Count == 1 && already[0] == finish.State.ToText())
            {
                return false; // a retried finish whose first commit went through: the result is already stored
            }

            throw await LostAsync(lease, tx);
        }

        await AddEventAsync(lease.Study, lease.TrialId, "trial_" + finish.State.ToText(), TrialEvents.Finished(lease, finish), tx);
        return true;
    }

    public Task ReleaseAsync(Lease lease, string reason, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var changed = await ExecAsync(
                "UPDATE trials SET state = 'pending', owner = NULL, lease_expires_at = NULL, attempts = max(attempts - 1, 0) WHERE id = $id AND lease_epoch = $epoch AND owner = $o AND state = 'running'",
                tx, ("$id", lease.TrialId), ("$epoch", lease.Token), ("$o", lease.Owner));
            if (changed == 0)
            {
                throw await LostAsync(lease, tx);
            }

            await AddEventAsync(lease.Study, lease.TrialId, "trial_released", TrialEvents.Released(lease, reason), tx);
            return 0;
        }, cancellationToken);

    public Task<int> RequeueExpiredAsync(string study, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var now = Now;
            var retries = Convert.ToInt32(await ScalarAsync("SELECT retries FROM studies WHERE name = $s", tx, ("$s", study)) ?? 0L);
            var expired = await QueryAsync(
                "SELECT id, number, owner, attempts FROM trials WHERE study = $s AND state = 'running' AND lease_expires_at < $now", tx,
                r => (Id: r.GetInt64(0), Number: r.GetInt32(1), Owner: r.IsDBNull(2) ? "?" : r.GetString(2), Attempts: r.GetInt32(3)), ("$s", study), ("$now", now));
            foreach (var t in expired)
            {
                var (fail, kind, message, reason) = TrialEvents.Expired(t.Number, t.Owner, t.Attempts, retries);
                if (fail)
                {
                    await ExecAsync("UPDATE trials SET state = 'failed', reason = $r, finished_at = $now, lease_expires_at = NULL WHERE id = $id", tx,
                        ("$r", reason), ("$now", now), ("$id", t.Id));
                }
                else
                {
                    await ExecAsync("UPDATE trials SET state = 'pending', owner = NULL, lease_expires_at = NULL WHERE id = $id", tx, ("$id", t.Id));
                }

                await AddEventAsync(study, t.Id, kind, message, tx);
            }

            return expired.Count;
        }, cancellationToken);

    public Task<int> ExpireLeasesOfOwnerAsync(string ownerPrefix, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(ownerPrefix);
        // substr/length count characters and = compares them exactly (BINARY collation): no LIKE, so no wildcards.
        // A second before now, as RequeueExpiredAsync takes leases that expired before its now; leases already expired are
        // left alone (and not counted).
        return WriteAsync(tx => ExecAsync("UPDATE trials SET lease_expires_at = $now - 1000 WHERE state = 'running' AND lease_expires_at >= $now AND substr(owner, 1, length($p)) = $p", tx,
            ("$now", Now), ("$p", ownerPrefix)), cancellationToken);
    }

    public Task<(int Epoch, byte[] Data)?> GetCheckpointAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async () =>
        {
            var rows = await QueryAsync("SELECT epoch, data FROM checkpoints WHERE trial_id = $t", null, r => (r.GetInt32(0), (byte[])r.GetValue(1)), ("$t", trialId));
            return rows.Count == 0 ? ((int, byte[])?)null : rows[0];
        }, cancellationToken);

    public Task<IReadOnlyList<TrialRecord>> GetTrialsAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync($"SELECT {TrialColumns} FROM trials WHERE study = $s ORDER BY number", null, ReadTrial, ("$s", study)), cancellationToken);

    public Task<TrialRecord?> GetTrialAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => (await QueryAsync($"SELECT {TrialColumns} FROM trials WHERE id = $id", null, ReadTrial, ("$id", trialId))).FirstOrDefault(), cancellationToken);

    public Task<(IReadOnlyList<TrialRecord> Trials, int Total)> QueryTrialsAsync(string study, Core.Queries.TrialQuery query, CancellationToken cancellationToken = default) =>
        ReadAsync(async () =>
        {
            var parameters = new List<(string Name, object Value)>();
            var slots = await SlotsAsync(study);
            var clause = QuerySql.Build(query, SqlDialect.Sqlite, slots, parameters);
            var all = parameters.Concat(QuerySql.Paging(study, query)).Select(p => ("$" + p.Name, (object?)p.Value)).ToArray();
            var page = query.Limit == 0 ? [] // only the count is asked for
                : await QueryAsync(QuerySql.Page(clause, TrialColumns, "$"), null, r => (Trial: ReadTrial(r), Total: r.GetInt32(17)), all);
            IReadOnlyList<TrialRecord> rows = [.. page.Select(x => x.Trial)];
            var total = !query.CountMatches ? -1
                : page.Count > 0 && page[0].Total >= 0 ? page[0].Total
                : Convert.ToInt32(await ScalarAsync(QuerySql.Count(clause, "$"), null, all) ?? 0L);
            return (rows, total);
        }, cancellationToken);

    public Task<IReadOnlyList<Core.Queries.TrialGroup>> GroupTrialsAsync(string study, Core.Queries.TrialQuery query, string field, CancellationToken cancellationToken = default) =>
        ReadAsync(async () =>
        {
            var parameters = new List<(string Name, object Value)>();
            var sql = QuerySql.Group(query, field, SqlDialect.Sqlite, await SlotsAsync(study), parameters, "$");
            return await QueryAsync(sql, null, QuerySql.ReadGroup, [.. parameters.Concat(QuerySql.Paging(study, query)).Select(p => ("$" + p.Name, (object?)p.Value))]);
        }, cancellationToken);

    private async Task<Dictionary<string, int>> SlotsAsync(string study) =>
        (await QueryAsync("SELECT name, slot FROM study_params WHERE study = $s", null, r => (r.GetString(0), r.GetInt32(1)), ("$s", study))).ToDictionary();

    public Task<StateCounts> CountStatesAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async () =>
        {
            var rows = await QueryAsync("SELECT state, count(*) FROM trials WHERE study = $s GROUP BY state", null, r => (r.GetString(0), r.GetInt32(1)), ("$s", study));
            var d = rows.ToDictionary(x => x.Item1, x => x.Item2);
            int C(string s) => d.GetValueOrDefault(s);
            return new StateCounts(C("pending"), C("running"), C("completed"), C("pruned"), C("diverged"), C("failed"), C("paused"));
        }, cancellationToken);

    public Task<IReadOnlyList<EpochRecord>> GetEpochsAsync(long trialId, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync(
            $"SELECT {EpochColumns} FROM epochs e WHERE e.trial_id = $t ORDER BY e.epoch", null, r => ReadEpoch(r, 0), ("$t", trialId)), cancellationToken);

    public Task<IReadOnlyList<EpochRecord>> GetCompletedEpochsAtAsync(string study, int epoch, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync(
            $"SELECT {EpochColumns} FROM epochs e JOIN trials t ON t.id = e.trial_id WHERE t.study = $s AND t.state = 'completed' AND e.epoch = $e", null,
            r => ReadEpoch(r, 0), ("$s", study), ("$e", epoch)), cancellationToken);

    public Task<bool> CloseStudyAsync(StudyResult result, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var changed = await ExecAsync("UPDATE studies SET closed = 1, result = $r WHERE name = $n AND closed = 0", tx,
                ("$r", JsonSerializer.Serialize(result)), ("$n", result.Study));
            if (changed == 1)
            {
                await AddEventAsync(result.Study, result.BestTrialId, "study_closed",
                    TrialEvents.Closed(result), tx);
            }

            return changed == 1;
        }, cancellationToken);

    public Task<StudyResult?> GetResultAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async () =>
        {
            var json = await ScalarAsync("SELECT result FROM studies WHERE name = $n", null, ("$n", study));
            return json is string s ? JsonSerializer.Deserialize<StudyResult>(s) : null;
        }, cancellationToken);

    public Task HeartbeatWorkerAsync(string workerId, string host, int pid, long? currentTrialId, int slots, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            var now = Now;
            await ExecAsync(
                """
                INSERT INTO workers (id, host, pid, started_at, last_heartbeat, current_trial, slots) VALUES ($id, $h, $p, $now, $now, $t, $slots)
                ON CONFLICT (id) DO UPDATE SET last_heartbeat = $now, current_trial = $t, slots = $slots
                """, tx, ("$id", workerId), ("$h", host), ("$p", pid), ("$now", now), ("$t", (object?)currentTrialId ?? DBNull.Value), ("$slots", slots));
            return 0;
        }, cancellationToken);

    public Task MarkWorkerStoppedAsync(string workerId, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await ExecAsync("UPDATE workers SET stopped_at = $now WHERE id = $id", tx, ("$id", workerId), ("$now", Now));
            return 0;
        }, cancellationToken);

    public Task<IReadOnlyList<WorkerRecord>> GetWorkersAsync(CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync($"SELECT id, host, pid, started_at, last_heartbeat, current_trial, slots, {(_schema >= 7 ? "stopped_at" : "NULL")} FROM workers ORDER BY started_at", null,
            r => new WorkerRecord(r.GetString(0), r.GetString(1), r.GetInt32(2), Time(r.GetInt64(3)), Time(r.GetInt64(4)), r.IsDBNull(5) ? null : r.GetInt64(5), r.GetInt32(6), r.IsDBNull(7) ? null : Time(r.GetInt64(7)))), cancellationToken);

    public Task AddEventAsync(string study, long? trialId, string kind, string message, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await AddEventAsync(study, trialId, kind, message, tx);
            return 0;
        }, cancellationToken);

    public Task<IReadOnlyList<(DateTimeOffset At, long? TrialId, string Kind, string Message)>> GetEventsAsync(string study, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => await QueryAsync("SELECT at, trial_id, kind, message FROM events WHERE study = $s ORDER BY id", null,
            r => (Time(r.GetInt64(0)), r.IsDBNull(1) ? (long?)null : r.GetInt64(1), r.GetString(2), r.GetString(3)), ("$s", study)), cancellationToken);

    public Task InitMembershipAsync(string clusterId, CancellationToken cancellationToken = default) =>
        WriteAsync(tx => ExecAsync(MembershipSql.Init("$"), tx, ("$c", clusterId), ("$e", MembershipSql.NewEtag())), cancellationToken);

    public Task<MembershipSnapshot> ReadMembersAsync(string clusterId, string? address, CancellationToken cancellationToken = default) =>
        ReadAsync(async () => MembershipSql.Snapshot(address is null
            ? await QueryAsync(MembershipSql.Read("$", oneMember: false), null, MembershipSql.ReadLine, ("$c", clusterId))
            : await QueryAsync(MembershipSql.Read("$", oneMember: true), null, MembershipSql.ReadLine, ("$c", clusterId), ("$a", address))), cancellationToken);

    public Task<bool> InsertMemberAsync(string clusterId, MemberRow row, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default)
    {
        var etag = MembershipSql.NewEtag();
        return WriteAsync(async tx =>
        {
            // The write lock is held from BEGIN IMMEDIATE: the etag read here is still the table's at commit.
            if ((await ScalarAsync(MembershipSql.VersionEtag("$"), tx, ("$c", clusterId)) as string) != expectedVersionEtag
                || await ExecAsync(MembershipSql.Insert("$"), tx, MembershipSql.Row("$", clusterId, row, etag)) == 0)
            {
                return false;
            }

            await ExecAsync(MembershipSql.SetVersion("$"), tx, ("$c", clusterId), ("$v", newVersion), ("$e", etag));
            return true;
        }, cancellationToken);
    }

    public Task<bool> UpdateMemberAsync(string clusterId, MemberRow row, string expectedRowEtag, int newVersion, string expectedVersionEtag, CancellationToken cancellationToken = default)
    {
        var etag = MembershipSql.NewEtag();
        return WriteAsync(async tx =>
        {
            if ((await ScalarAsync(MembershipSql.VersionEtag("$"), tx, ("$c", clusterId)) as string) != expectedVersionEtag
                || await ExecAsync(MembershipSql.Update("$"), tx, [.. MembershipSql.Row("$", clusterId, row, etag), ("$expected", expectedRowEtag)]) == 0)
            {
                return false;
            }

            await ExecAsync(MembershipSql.SetVersion("$"), tx, ("$c", clusterId), ("$v", newVersion), ("$e", etag));
            return true;
        }, cancellationToken);
    }

    public Task UpdateIAmAliveAsync(string clusterId, string address, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        WriteAsync(tx => ExecAsync(MembershipSql.IAmAlive("$"), tx, ("$c", clusterId), ("$a", address), ("$t", at.ToUnixTimeMilliseconds())), cancellationToken);

    public Task<int> DeleteDefunctMembersAsync(string clusterId, DateTimeOffset before, CancellationToken cancellationToken = default) =>
        WriteAsync(tx => ExecAsync(MembershipSql.DeleteDefunct("$"), tx, ("$c", clusterId), ("$active", MemberRow.ActiveStatus), ("$b", before.ToUnixTimeMilliseconds())), cancellationToken);

    public Task DeleteMembersAsync(string clusterId, CancellationToken cancellationToken = default) =>
        WriteAsync(async tx =>
        {
            await ExecAsync(MembershipSql.DeleteMembers("$"), tx, ("$c", clusterId));
            return await ExecAsync(MembershipSql.DeleteVersion("$"), tx, ("$c", clusterId));
        }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync();
        await _checkpointer;
        foreach (var statement in _statements.Values)
        {
            statement.Dispose();
        }

        await _connection.DisposeAsync();
        _gate.Dispose();
    }

    private async Task FenceAsync(Lease lease, TimeSpan leaseDuration, SqliteTransaction tx)
    {
        var changed = await ExecAsync("UPDATE trials SET lease_expires_at = $exp WHERE id = $id AND lease_epoch = $epoch AND owner = $o AND state = 'running'", tx,
            ("$exp", Now + (long)leaseDuration.TotalMilliseconds), ("$id", lease.TrialId), ("$epoch", lease.Token), ("$o", lease.Owner));
        if (changed == 0)
        {
            throw await LostAsync(lease, tx);
        }
    }

    private async Task<LeaseLostException> LostAsync(Lease lease, SqliteTransaction tx)
    {
        var rows = await QueryAsync("SELECT state, lease_epoch, owner FROM trials WHERE id = $id", tx,
            r => LeaseLostException.Detail(lease, r.GetString(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetString(2)), ("$id", lease.TrialId));
        return new LeaseLostException(lease, rows.FirstOrDefault() ?? "the trial does not exist");
    }

    private async Task<StudyRecord?> GetStudyAsync(string name, SqliteTransaction? tx) =>
        (await QueryAsync($"SELECT {StudyColumns} FROM studies WHERE name = $n", tx, ReadStudy, ("$n", name))).FirstOrDefault();

    private Task AddEventAsync(string study, long? trialId, string kind, string message, SqliteTransaction tx) =>
        ExecAsync("INSERT INTO events (study, trial_id, at, kind, message) VALUES ($s, $t, $at, $k, $m)", tx,
            ("$s", study), ("$t", (object?)trialId ?? DBNull.Value), ("$at", Now), ("$k", kind), ("$m", message));

    /// <summary>What <see cref="ReadStudy"/> reads (a store at a schema before 5, only opened to test migrations, has no sweep_json).</summary>
    private string StudyColumns => $"name, sweep_hash, sweep_text, {(_schema >= 5 ? "sweep_json" : "NULL")}, method, trial_count, created_at, closed, max_running, retries";

    private static StudyRecord ReadStudy(SqliteDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetString(4), r.GetInt32(5), Time(r.GetInt64(6)), r.GetInt64(7) != 0,
            r.IsDBNull(8) ? null : r.GetInt32(8), r.GetInt32(9));

    private static TrialRecord ReadTrial(SqliteDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetString(3), unchecked((ulong)r.GetInt64(4)), TrialStates.Parse(r.GetString(5)), r.GetInt32(6),
        r.IsDBNull(7) ? null : r.GetString(7), r.GetInt64(8), r.IsDBNull(9) ? null : Time(r.GetInt64(9)), r.GetInt32(10),
        r.IsDBNull(11) ? null : r.GetDouble(11), r.IsDBNull(12) ? null : r.GetDouble(12), r.IsDBNull(13) ? null : r.GetString(13),
        r.IsDBNull(14) ? null : Time(r.GetInt64(14)), r.IsDBNull(15) ? null : Time(r.GetInt64(15)))
    {
        Value = r.IsDBNull(16) ? null : r.GetDouble(16),
    };

    /// <summary>An epoch from <see cref="EpochColumns"/> starting at column <paramref name="at"/>: NULL metrics (not reported) read as NaN.</summary>
    private static EpochRecord ReadEpoch(SqliteDataReader r, int at)
    {
        double M(int i) => r.IsDBNull(at + i) ? double.NaN : r.GetDouble(at + i);
        return new EpochRecord(r.GetInt32(at), M(1), M(2), M(3), M(4), M(5), StudySweeps.ReadMetrics(r.IsDBNull(at + 6) ? null : r.GetString(at + 6)));
    }

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    /// <summary>
    /// Runs <paramref name="work"/> in a BEGIN IMMEDIATE transaction (the write lock is taken up front, so no snapshot
    /// conflicts), shared with the writes that queued up meanwhile: group commit, as the PostgreSQL store's batches. The
    /// caller that gets the connection runs every queued write, each in a savepoint of its own (one that throws is rolled
    /// back alone, and its caller hears its exception), and commits them together: one commit, one append to the log,
    /// for what would have been several (the claims and outcomes of a silo's slots arrive together). Each write is
    /// answered after the commit; if the commit fails, every write of the group hears why. A write is cancelled only
    /// while it waits, before a group takes it up.
    /// </summary>
    private async Task<T> WriteAsync<T>(Func<SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        var write = new PendingWrite<T>(work);
        _writes.Enqueue(write);
        try
        {
            await _gate.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (write.TryCancel())
        {
            throw; // never taken up: nothing written
        }
        catch (OperationCanceledException)
        {
            return await write.Done; // taken up by a group meanwhile: its outcome
        }

        var groups = new List<List<PendingWrite>>();
        try
        {
            // Until this caller's own write is in a group (a group takes MaxGroup writes at the most, in the order they queued).
            while (!write.Taken)
            {
                var group = await RunGroupAsync();
                groups.Add(group);
                if (group.Count == 0)
                {
                    throw new InvalidOperationException("SqliteTrialStore: a queued write was not found in the queue"); // a defect, never an endless loop
                }
            }
        }
        finally
        {
            _gate.Release();

            // Answered once the connection is free again (the callers' continuations may write at once), and whatever
            // happened after a group ran: no caller of a group that ran is left waiting.
            foreach (var group in groups)
            {
                group.ForEach(w => w.Answer());
            }
        }

        return await write.Done;
    }

    /// <summary>Writes one group takes at the most (a bound on how long its first caller waits for its answer).</summary>
    private const int MaxGroup = 64;

    private readonly System.Collections.Concurrent.ConcurrentQueue<PendingWrite> _writes = new();
    private long _groups;
    private long _grouped;

    /// <summary>Transactions of writes run so far, and the writes in them (their ratio is the mean group size).</summary>
    public (long Groups, long Writes) Grouped => (Interlocked.Read(ref _groups), Interlocked.Read(ref _grouped));

    /// <summary>Runs the queued writes in one transaction (under the gate); they are answered by the caller.</summary>
    private async Task<List<PendingWrite>> RunGroupAsync()
    {
        var group = new List<PendingWrite>();
        while (group.Count < MaxGroup && _writes.TryDequeue(out var queued))
        {
            if (queued.TryTake())
            {
                group.Add(queued);
            }
        }

        Interlocked.Increment(ref _groups);
        Interlocked.Add(ref _grouped, group.Count);
        try
        {
            using var tx = _connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            if (group.Count == 1)
            {
                // Alone: no savepoint; if it throws, the transaction is rolled back (disposed uncommitted).
                if (!await group[0].RunAsync(tx))
                {
                    return group;
                }
            }
            else
            {
                foreach (var w in group)
                {
                    await tx.SaveAsync("w");
                    if (await w.RunAsync(tx))
                    {
                        await tx.ReleaseAsync("w");
                    }
                    else
                    {
                        await tx.RollbackAsync("w");
                        await tx.ReleaseAsync("w");
                    }
                }
            }

            await tx.CommitAsync();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The transaction as a whole failed (begin, a savepoint, the commit): none of the group is written.
            group.ForEach(w => w.GroupFailed(e));
        }

        return group;
    }

    /// <summary>A write waiting for a group: queued, then taken up (or cancelled first), run, and answered after the commit.</summary>
    private abstract class PendingWrite
    {
        private int _state; // 0 queued, 1 taken up by a group, 2 cancelled

        public bool Taken => Volatile.Read(ref _state) == 1;

        public bool TryTake() => Interlocked.CompareExchange(ref _state, 1, 0) == 0;

        public bool TryCancel() => Interlocked.CompareExchange(ref _state, 2, 0) == 0;

        /// <summary>Runs the write in <paramref name="tx"/>; false when it threw (its exception is kept for its caller).</summary>
        public abstract Task<bool> RunAsync(SqliteTransaction tx);

        public abstract void GroupFailed(Exception e);

        public abstract void Answer();
    }

    private sealed class PendingWrite<T>(Func<SqliteTransaction, Task<T>> work) : PendingWrite
    {
        // Its caller goes on on a thread of its own, never inside the loop that answers the group.
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;
        private Exception? _error;

        public Task<T> Done => _done.Task;

        public override async Task<bool> RunAsync(SqliteTransaction tx)
        {
            try
            {
                _result = await work(tx);
                return true;
            }
            catch (Exception e)
            {
                _error = e;
                return false;
            }
        }

        public override void GroupFailed(Exception e) => _error ??= e;

        public override void Answer()
        {
            if (_error is { } e)
            {
                _done.TrySetException(e);
            }
            else
            {
                _done.TrySetResult(_result!);
            }
        }
    }

    private async Task<T> ReadAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return await work();
        }
        finally
        {
            _gate.Release();
        }
    }

    private SqliteCommand Command(string sql, SqliteTransaction? tx, params (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = tx;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    /// <summary>
    /// A prepared statement for <paramref name="sql"/>, kept for the connection's life (SQLite then parses each statement
    /// once, not on every call: a trial's claim, report and finish run the same few statements thousands of times), with
    /// this call's transaction and parameters. Only called under the connection's gate. Texts beyond the first
    /// <see cref="MaxStatements"/> (ad-hoc result queries) get a command of their own, disposed after use.
    /// </summary>
    private (SqliteCommand Command, bool Owned) Statement(string sql, SqliteTransaction? tx, (string Name, object? Value)[] parameters)
    {
        if (!_statements.TryGetValue(sql, out var command))
        {
            if (_statements.Count >= MaxStatements)
            {
                return (Command(sql, tx, parameters), true);
            }

            command = _statements[sql] = _connection.CreateCommand();
            command.CommandText = sql;
        }

        command.Transaction = tx;
        command.Parameters.Clear();
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return (command, false);
    }

    private const int MaxStatements = 256;

    private async Task<int> ExecAsync(string sql, SqliteTransaction? tx = null, params (string, object?)[] parameters)
    {
        var (command, owned) = Statement(sql, tx, parameters);
        try
        {
            return await command.ExecuteNonQueryAsync();
        }
        finally
        {
            if (owned)
            {
                command.Dispose();
            }
        }
    }

    private async Task<object?> ScalarAsync(string sql, SqliteTransaction? tx, params (string, object?)[] parameters)
    {
        var (command, owned) = Statement(sql, tx, parameters);
        try
        {
            var value = await command.ExecuteScalarAsync();
            return value is DBNull ? null : value;
        }
        finally
        {
            if (owned)
            {
                command.Dispose();
            }
        }
    }

    private async Task<IReadOnlyList<T>> QueryAsync<T>(string sql, SqliteTransaction? tx, Func<SqliteDataReader, T> read, params (string, object?)[] parameters)
    {
        var (command, owned) = Statement(sql, tx, parameters);
        using var release = owned ? command : null;
        using var reader = await command.ExecuteReaderAsync();
        var list = new List<T>();
        while (await reader.ReadAsync())
        {
            list.Add(read(reader));
        }

        return list;
    }
}
