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

    public static async Task<ITrialStore> OpenAsync(string? address, TimeProvider? clock = null, CancellationToken cancellationToken = default)
    {
        address ??= DefaultAddress;
        if (address.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
        {
            var path = address["sqlite:".Length..];
            if (path.StartsWith("//", StringComparison.Ordinal))
            {
                path = path[2..];
            }

            if (path.Length == 0)
            {
                throw new ArgumentException($"--store {address}: give a file, e.g. sqlite:.sweeper/sweeper.db.");
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
            return await PostgresTrialStore.OpenAsync(PostgresConnectionString(address), clock, cancellationToken);
        }

        throw new ArgumentException($"--store {Redact(address)}: unknown store address; expected sqlite:PATH, postgres://USER@HOST:PORT/DB or a Npgsql connection string (Host=...).");
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
            var uri = new Uri(address);
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
