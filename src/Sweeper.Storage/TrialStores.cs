using Sweeper.Core.Trials;

namespace Sweeper.Storage;

/// <summary>
/// Opens a trial store from its address: <c>sqlite:PATH</c> (or a path ending in .db) for the embedded store;
/// <c>postgres://USER[:PASSWORD]@HOST[:PORT]/DB</c> or a Npgsql connection string (<c>Host=...;</c>) for PostgreSQL.
/// </summary>
public static class TrialStores
{
    /// <summary>The embedded default: .sweeper/sweeper.db under the current folder.</summary>
    public static string DefaultAddress => "sqlite:" + Path.Combine(".sweeper", "sweeper.db");

    /// <summary>
    /// Opens the store at <paramref name="address"/>. Every failure to open it is a <see cref="StoreOpenException"/> whose
    /// one-line message names the address (password masked), the cause and the remedy; <paramref name="say"/> hears what
    /// is being tried before a network store is contacted (host, port, database, how long it may take). With
    /// <paramref name="forWriting"/> (a silo: it records trials and its membership), an embedded store that this process
    /// can only read (the file or its folder write-protected), or a PostgreSQL server that takes only reads (a standby), is refused
    /// here, instead of at the silo's first write.
    /// </summary>
    public static async Task<ITrialStore> OpenAsync(string? address, TimeProvider? clock = null, CancellationToken cancellationToken = default, Action<string>? say = null,
        bool forWriting = false)
    {
        address ??= DefaultAddress;
        try
        {
            var store = await OpenUncheckedAsync(address, clock, say, cancellationToken);
            if (forWriting && store is SqliteTrialStore { ReadOnly: true } readOnly)
            {
                await readOnly.DisposeAsync();
                throw new StoreOpenException($"cannot write to the store {Redact(address)}: this process may only read {readOnly.Path} (the file or its folder is write-protected); "
                    + "give a store it can write, or copy this one", null);
            }

            if (forWriting && store is PostgresTrialStore { ReadOnly: true } standby)
            {
                await standby.DisposeAsync();
                throw new StoreOpenException($"cannot write to the store {Redact(address)}: the server takes only reads here (a standby, default_transaction_read_only on for this database or role, or a role that may only read its tables); "
                    + "give the primary's address (status, results and the dashboard may read from this one)", null);
            }

            return store;
        }
        catch (Exception e) when (e is not OperationCanceledException && Explain(address, e) is { } message)
        {
            throw new StoreOpenException(message, e);
        }
    }

    /// <summary>Each connection attempt to PostgreSQL waits this long unless the address says otherwise (Timeout=...).</summary>
    public const int ConnectTimeoutSeconds = 5;

    /// <summary>A one-line reason for a failure to open the store, or null for an error that is not about opening it.</summary>
    private static string? Explain(string address, Exception e)
    {
        var where = $"cannot open the store {Redact(address)}";
        var inner = e is StoreUnavailableException { InnerException: { } cause } ? cause : e;
        return inner switch
        {
            StoreOpenException => null,
            ArgumentException a => $"{where}: {a.Message}",
            SchemaTooNewException s => $"{where}: {s.Message}",
            ReadOnlySchemaTooOldException r => $"{where}: {r.Message}",
            Npgsql.PostgresException { SqlState: "25006" } p => $"{where}: the server takes only reads here ({p.MessageText}); give the primary's address",
            Npgsql.PostgresException { SqlState: "28P01" } p => $"{where}: the server refused the password of user '{p.Data["User"] ?? UserOf(address)}' (give it in the address or with $SWEEPER_STORE_PASSWORD)",
            Npgsql.PostgresException { SqlState: "28000" } p => $"{where}: the server does not let this user in from this machine ({p.MessageText}; see pg_hba.conf)",
            Npgsql.PostgresException { SqlState: "3D000" } p => $"{where}: {p.MessageText} (create it: CREATE DATABASE ... OWNER ...)",
            Npgsql.PostgresException { SqlState: "42501" } p => $"{where}: permission denied ({p.MessageText}); the role needs to own the database or its tables",
            Npgsql.NpgsqlException n when n.Message.Contains("password", StringComparison.OrdinalIgnoreCase) =>
                $"{where}: the server asks for a password and none was given (put it in the address, or in $SWEEPER_STORE_PASSWORD or $PGPASSWORD)",
            System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused } or Npgsql.NpgsqlException { InnerException: System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused } } =>
                $"{where}: nothing accepts connections at {HostOf(address)} (is PostgreSQL running there, with listen_addresses including this address, and the port open?)",
            System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.HostNotFound or System.Net.Sockets.SocketError.TryAgain or System.Net.Sockets.SocketError.NoData } or Npgsql.NpgsqlException { InnerException: System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.HostNotFound or System.Net.Sockets.SocketError.TryAgain or System.Net.Sockets.SocketError.NoData } } =>
                $"{where}: the host name {HostOf(address)} does not resolve",
            TimeoutException or Npgsql.NpgsqlException { InnerException: TimeoutException } => $"{where}: {HostOf(address)} did not answer in time (a firewall, or the wrong address?)",
            Npgsql.NpgsqlException n => $"{where}: {n.Message}",
            Microsoft.Data.Sqlite.SqliteException q => $"{where}: {q.Message}",
            UnauthorizedAccessException or IOException => $"{where}: {inner.Message}",
            StoreUnavailableException u => $"{where}: {u.Message}",
            _ => null,
        };
    }

    private static string HostOf(string address)
    {
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(PostgresConnectionString(address));
            return $"{b.Host}:{b.Port}";
        }
        catch (ArgumentException)
        {
            return "the given host";
        }
    }

    private static string UserOf(string address)
    {
        try
        {
            return new Npgsql.NpgsqlConnectionStringBuilder(PostgresConnectionString(address)).Username ?? "?";
        }
        catch (ArgumentException)
        {
            return "?";
        }
    }

    private static async Task<ITrialStore> OpenUncheckedAsync(string address, TimeProvider? clock, Action<string>? say, CancellationToken cancellationToken)
    {
        if (address.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            var path = address["sqlite:".Length..];
            if (path.StartsWith("//", StringComparison.Ordinal))
            {
                path = path[2..];
            }

            if (path.Length == 0)
            {
                throw new ArgumentException("the address names no file; give one, e.g. sqlite:.sweeper/sweeper.db.");
            }

            return await SqliteTrialStore.OpenAsync(path, clock, cancellationToken);
        }

        if (address.EndsWith(".db", StringComparison.OrdinalIgnoreCase) || address.EndsWith(".sqlite", StringComparison.OrdinalIgnoreCase))
        {
            return await SqliteTrialStore.OpenAsync(address, clock, cancellationToken);
        }

        if (address.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || address.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
            || address.Contains("Host=", StringComparison.OrdinalIgnoreCase))
        {
            var connection = PostgresConnectionString(address);
            var b = new Npgsql.NpgsqlConnectionStringBuilder(connection);
            if (string.IsNullOrWhiteSpace(b.Host))
            {
                throw new ArgumentException("the address names no host; give one, e.g. postgres://sweeper@db-host:5432/sweeper.");
            }

            say?.Invoke($"Connecting to PostgreSQL at {b.Host}:{b.Port}, database {b.Database}, as {b.Username} (each try waits up to {b.Timeout} s; a few tries before giving up)");
            return await PostgresTrialStore.OpenAsync(connection, clock, cancellationToken);
        }

        throw new ArgumentException("unknown store address; expected sqlite:PATH, postgres://USER@HOST:PORT/DB or a Npgsql connection string (Host=...).");
    }

    /// <summary>
    /// A Npgsql connection string from a postgres:// URL or a connection string. A password missing from the address
    /// comes from $SWEEPER_STORE_PASSWORD (or libpq's $PGPASSWORD), so it need not appear on a command line.
    /// </summary>
    public static string PostgresConnectionString(string address)
    {
        Npgsql.NpgsqlConnectionStringBuilder builder;
        if (address.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
            {
                throw new ArgumentException("the address is not a URL of the form postgres://USER[:PASSWORD]@HOST[:PORT]/DB.");
            }

            builder = new Npgsql.NpgsqlConnectionStringBuilder
            {
                Host = uri.Host,
                Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
                Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } db ? db : "postgres",
            };
            var userInfo = uri.UserInfo.Split(':', 2);
            if (userInfo[0].Length > 0)
            {
                builder.Username = Uri.UnescapeDataString(userInfo[0]);
            }

            if (userInfo.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(userInfo[1]);
            }

            foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var kv = pair.Split('=', 2);
                builder[Uri.UnescapeDataString(kv[0]).Replace('_', ' ')] = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            }
        }
        else
        {
            builder = new Npgsql.NpgsqlConnectionStringBuilder(address);
        }

        if (!System.Text.RegularExpressions.Regex.IsMatch(address, @"(^|[;?&])\s*timeout\s*=", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
        {
            builder.Timeout = ConnectTimeoutSeconds;
        }

        if (string.IsNullOrEmpty(builder.Password))
        {
            var password = Environment.GetEnvironmentVariable("SWEEPER_STORE_PASSWORD") ?? Environment.GetEnvironmentVariable("PGPASSWORD");
            if (!string.IsNullOrEmpty(password))
            {
                builder.Password = password;
            }
        }

        return builder.ConnectionString;
    }

    /// <summary>The address with any password masked, for messages and logs.</summary>
    public static string Redact(string address) =>
        System.Text.RegularExpressions.Regex.Replace(address, "(://[^:/@]+:)[^@]*@|(Password=)[^;]*", m => m.Groups[1].Success ? m.Groups[1].Value + "***@" : m.Groups[2].Value + "***");
}
