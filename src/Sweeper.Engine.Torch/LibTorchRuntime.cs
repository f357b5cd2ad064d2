using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Training;
using TorchSharp;

namespace Sweeper.Engine.Torch;

/// <summary>
/// Loads libtorch once per process, with a clear error when it cannot: TorchSharp's own message for a library that
/// the loader refuses says a package reference is missing, which is wrong here. Before TorchSharp touches the
/// library this loads it by its path and, if that fails, reads the library's version needs against the versions the
/// process's libstdc++ defines, so the message names the missing version and the remedy.
/// </summary>
public static partial class LibTorchRuntime
{
    private static readonly Lazy<string> _version = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The libtorch version (e.g. 2.10.0.0); loads libtorch first. Throws <see cref="TrainingEngineUnavailableException"/> when it cannot load.</summary>
    public static string Version => _version.Value;

    /// <summary>Loads libtorch now. Throws <see cref="TrainingEngineUnavailableException"/> naming the cause when it cannot.</summary>
    public static void EnsureLoaded() => _ = _version.Value;

    /// <summary>TorchSharp's native library in this program's output, where the build put it.</summary>
    public static string? NativeLibraryPath()
    {
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        foreach (var candidate in new[] { Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"), Path.Combine(dir, "libLibTorchSharp.so"), Path.Combine(dir, "cpu", "libLibTorchSharp.so") })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// Why <paramref name="library"/> cannot load against <paramref name="libstdcxx"/>, or null when nothing in their
    /// versions stands in the way: the needs on libstdc++ that are not weak and that it does not define.
    /// </summary>
    public static string? DiagnoseVersions(string library, string libstdcxx)
    {
        var defined = DefinedVersions(File.ReadAllBytes(libstdcxx));
        var missing = ElfVersionNeeds.Read(File.ReadAllBytes(library))
            .Where(n => n.Library == "libstdc++.so.6" && !n.Weak && !defined.Contains(n.Version))
            .Select(n => n.Version)
            .ToList();
        if (missing.Count == 0)
        {
            return null;
        }

        var newest = defined.Where(v => v.StartsWith("GLIBCXX_", StringComparison.Ordinal)).OrderBy(v => v, VersionComparer.Instance).LastOrDefault() ?? "none";
        var weakOnly = missing.All(v => v == "GLIBCXX_3.4.32");
        return $"{library} needs {string.Join(", ", missing)} from libstdc++.so.6, but {libstdcxx} defines versions up to {newest}. " +
            (weakOnly
                ? "The build marks the GLIBCXX_3.4.32 need weak in its output (build/LibTorchSharp.targets, run after build and publish): build or publish again with the project's MSBuild files, or install a libstdc++ from GCC 13 or later."
                : "Install a libstdc++ from a GCC new enough to define them (e.g. a newer Debian or Ubuntu release, or the toolchain's runtime package).");
    }

    /// <summary>The version names (e.g. GLIBCXX_3.4.30, CXXABI_1.3.13) that a libstdc++ defines, read from its strings.</summary>
    public static HashSet<string> DefinedVersions(byte[] libstdcxx) =>
        VersionName().Matches(System.Text.Encoding.ASCII.GetString(libstdcxx)).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);

    /// <summary>The libstdc++ this process has loaded (the .NET host links it), from /proc/self/maps; null when none.</summary>
    public static string? LoadedLibStdCxx()
    {
        if (!File.Exists("/proc/self/maps"))
        {
            return null;
        }

        return File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libstdc++.so", StringComparison.Ordinal))
            .Select(f => f[5])
            .FirstOrDefault();
    }

    private static string Load()
    {
        // One libtorch thread per training slot: OpenMP reads OMP_NUM_THREADS once, when libtorch's runtime starts.
        if (NativeEnvironment.Supported && NativeEnvironment.Get("OMP_NUM_THREADS") is null)
        {
            NativeEnvironment.Set("OMP_NUM_THREADS", "1");
        }

        var path = NativeLibraryPath();
        if (path is null)
        {
            throw new TrainingEngineUnavailableException(
                $"engine torch: libLibTorchSharp.so is not in {Path.GetDirectoryName(typeof(torch).Assembly.Location)}; the program was built without the libtorch-cpu-linux-x64 package (reference Sweeper.Engine.Torch, which carries it).");
        }

        try
        {
            NativeLibrary.Load(path);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            var libstdcxx = LoadedLibStdCxx();
            var why = libstdcxx is null ? null : DiagnoseVersions(path, libstdcxx);
            throw new TrainingEngineUnavailableException($"engine torch: libtorch cannot be loaded: {why ?? FirstLine(e.Message)}", e);
        }

        try
        {
            var version = torch.__version__;
            torch.set_num_threads(1);
            return version;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new TrainingEngineUnavailableException($"engine torch: TorchSharp could not start libtorch from {path}: {FirstLine(e.Message)}", e);
        }
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();

    [GeneratedRegex(@"(GLIBCXX|CXXABI)_\d+(\.\d+)+")]
    private static partial Regex VersionName();

    /// <summary>Orders GLIBCXX_3.4.9 before GLIBCXX_3.4.30.</summary>
    private sealed class VersionComparer : IComparer<string>
    {
        public static readonly VersionComparer Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = (x ?? "").Split('_').Last().Split('.').Select(int.Parse).ToArray();
            var b = (y ?? "").Split('_').Last().Split('.').Select(int.Parse).ToArray();
            for (var i = 0; i < Math.Min(a.Length, b.Length); i++)
            {
                if (a[i] != b[i])
                {
                    return a[i].CompareTo(b[i]);
                }
            }

            return a.Length.CompareTo(b.Length);
        }
    }
}
