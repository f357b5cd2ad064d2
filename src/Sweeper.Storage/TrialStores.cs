using Sweeper.Core.Trials;

namespace Sweeper.Storage;

/// <summary>Opens a trial store from its address: <c>sqlite:PATH</c> (or a path ending in .db).</summary>
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

        if (address.StartsWith("postgres", StringComparison.OrdinalIgnoreCase) || address.Contains("Host=", StringComparison.OrdinalIgnoreCase))
        {
            throw new NotSupportedException($"--store {Redact(address)}: the PostgreSQL store is not built yet; use sqlite:PATH.");
        }

        throw new ArgumentException($"--store {Redact(address)}: unknown store address; expected sqlite:PATH.");
    }

    private static string Redact(string address) => System.Text.RegularExpressions.Regex.Replace(address, "(://[^:/@]+:)[^@]*@|(Password=)[^;]*", "$1$2***@");
}
