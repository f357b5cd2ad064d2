namespace Sweeper.Engine.Data;

/// <summary>
/// The one place that decides where CIFAR-10 is, for every entry point: an explicit folder (a flag or sweep file),
/// then $SWEEPER_DATA, then the cache folder; <see cref="Cifar10Downloader"/> fills the cache when all are missing.
/// </summary>
public static class DataLocator
{
    public const string EnvironmentVariable = "SWEEPER_DATA";

    /// <summary>$SWEEPER_CACHE, else $XDG_CACHE_HOME/sweeper, else ~/.cache/sweeper.</summary>
    public static string CacheRoot
    {
        get
        {
            var explicitCache = Environment.GetEnvironmentVariable("SWEEPER_CACHE");
            if (!string.IsNullOrEmpty(explicitCache))
            {
                return explicitCache;
            }

            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "sweeper");
        }
    }

    /// <summary>Where the cache keeps the extracted binary files.</summary>
    public static string CacheDirectory => Path.Combine(CacheRoot, "cifar-10-batches-bin");

    /// <summary>True when the folder holds all six official batch files with their full size.</summary>
    public static bool IsComplete(string directory) =>
        Cifar10.AllFiles.All(f =>
        {
            var info = new FileInfo(Path.Combine(directory, f));
            return info.Exists && info.Length == Cifar10.FileBytes;
        });

    /// <summary>
    /// Finds the data without downloading: returns the folder and where the answer came from, or null when the cache
    /// is empty too. An explicit folder or $SWEEPER_DATA that is missing or incomplete is an error, never skipped over.
    /// </summary>
    /// <param name="origin">Where <paramref name="explicitDirectory"/> came from, as errors name it: --data, or a sweep file's data.path.</param>
    public static (string Directory, string Source)? TryResolve(string? explicitDirectory, string origin = "--data")
    {
        if (!string.IsNullOrEmpty(explicitDirectory))
        {
            return (CheckComplete(explicitDirectory, origin), origin);
        }

        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            return (CheckComplete(env, "$" + EnvironmentVariable), "$" + EnvironmentVariable);
        }

        return IsComplete(CacheDirectory) ? (CacheDirectory, "cache") : null;
    }

    /// <summary>Like <see cref="TryResolve"/>, but throws a message that says how to get the data when none is found.</summary>
    public static string Resolve(string? explicitDirectory) =>
        TryResolve(explicitDirectory)?.Directory ?? throw new DirectoryNotFoundException(
            $"CIFAR-10 was not found: no --data, no ${EnvironmentVariable}, and the cache {CacheDirectory} is empty. " +
            "Run 'sweeper data download' (or 'sweeper data download --from DIR' for a local copy).");

    /// <summary>
    /// The resolution every entry point uses: --data, $SWEEPER_DATA, the cache, and else a verified download into the cache.
    /// </summary>
    public static async Task<string> ResolveOrDownloadAsync(string? explicitDirectory, IProgress<DownloadProgress>? progress = null, Action<string>? log = null,
        CancellationToken cancellationToken = default, string origin = "--data")
    {
        var found = TryResolve(explicitDirectory, origin);
        if (found is not null)
        {
            return found.Value.Directory;
        }

        log?.Invoke($"CIFAR-10 is not on this machine yet; downloading it into {CacheDirectory}");
        return await new Cifar10Downloader(progress: progress, log: log).EnsureAsync(CacheDirectory, cancellationToken: cancellationToken);
    }

    private static string CheckComplete(string directory, string origin)
    {
        var full = Path.GetFullPath(directory);
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException(File.Exists(full)
                ? $"{origin}: {full} is a file; give the CIFAR-10 folder that holds data_batch_1.bin ... test_batch.bin."
                : $"{origin}: the CIFAR-10 folder {full} does not exist.");
        }

        var missing = Cifar10.AllFiles.Where(f => !File.Exists(Path.Combine(full, f))).ToList();
        if (missing.Count > 0)
        {
            throw new FileNotFoundException($"{origin}: {full} lacks {string.Join(", ", missing)} (the official binary CIFAR-10 files).");
        }

        // Checked here, before any trial starts: a cut-off copy would otherwise fail every trial of a study.
        var wrong = Cifar10.AllFiles.Select(f => (File: f, Length: new FileInfo(Path.Combine(full, f)).Length)).Where(f => f.Length != Cifar10.FileBytes).ToList();
        if (wrong.Count > 0)
        {
            throw new InvalidDataException($"{origin}: in {full}, " + string.Join(", ", wrong.Select(f => $"{f.File} is {(f.Length < Cifar10.FileBytes ? "truncated" : "too long")} ({f.Length} bytes)"))
                + $"; each file holds {Cifar10.FileBytes} bytes. Re-download with 'sweeper data download --force' (or copy the files again).");
        }

        return full;
    }
}
