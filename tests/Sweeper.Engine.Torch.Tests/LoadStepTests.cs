using Sweeper.Engine.Torch;

namespace Sweeper.Engine.Tests;

/// <summary>The Debian 12 load step: the ELF patcher, the build target that runs it, and the diagnosis when loading fails.</summary>
public class LoadStepTests
{
    private const string Need = "GLIBCXX_3.4.32";

    /// <summary>TorchSharp's library as the NuGet package ships it (read only; never written).</summary>
    private static string PackageCopy()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"the TorchSharp package is not restored at {path}");
        return path;
    }

    [Fact]
    public void The_package_copy_needs_GLIBCXX_3_4_32_hard_and_the_patch_marks_only_that_need_weak_once()
    {
        var original = File.ReadAllBytes(PackageCopy());
        var before = ElfVersionNeeds.Read(original);
        Assert.Contains(before, n => n.Library == "libstdc++.so.6" && n.Version == Need && !n.Weak);

        var patched = (byte[])original.Clone();
        Assert.Equal(1, ElfVersionNeeds.MarkWeak(patched, "libstdc++.so.6", Need));
        Assert.Equal(0, ElfVersionNeeds.MarkWeak(patched, "libstdc++.so.6", Need)); // idempotent

        var after = ElfVersionNeeds.Read(patched);
        Assert.Equal(before.Count, after.Count);
        for (var i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i].Version, after[i].Version);
            Assert.Equal(before[i].Version == Need ? (ushort)(before[i].Flags | ElfVersionNeeds.WeakFlag) : before[i].Flags, after[i].Flags);
        }

        // Exactly the two bytes of that one vna_flags differ.
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        var flags = before.Single(n => n.Version == Need).FlagsOffset;
        Assert.All(changed, i => Assert.InRange(i, flags, flags + 1));
        Assert.NotEmpty(changed);
    }

    [Fact]
    public void The_build_patched_the_output_copies_and_left_the_package_cache_alone()
    {
        var outputs = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories);
        Assert.NotEmpty(outputs);
        Assert.All(outputs, o => Assert.Contains(ElfVersionNeeds.Read(File.ReadAllBytes(o)), n => n.Version == Need && n.Weak));
        Assert.Contains(ElfVersionNeeds.Read(File.ReadAllBytes(PackageCopy())), n => n.Version == Need && !n.Weak);
    }

    [Fact]
    public void Patching_a_file_writes_a_new_file_so_a_hard_link_into_a_cache_keeps_the_original()
    {
        var dir = Directory.CreateTempSubdirectory("sweeper-elf-");
        try
        {
            var cache = Path.Combine(dir.FullName, "cache.so");
            var output = Path.Combine(dir.FullName, "output.so");
            File.Copy(PackageCopy(), cache);
            using (var ln = System.Diagnostics.Process.Start("ln", [cache, output]))
            {
                ln.WaitForExit();
                Assert.Equal(0, ln.ExitCode);
            }

            Assert.Equal(File.ReadAllBytes(cache), File.ReadAllBytes(output));

            Assert.True(ElfVersionNeeds.MarkWeak(output, "libstdc++.so.6", Need));
            Assert.False(ElfVersionNeeds.MarkWeak(output, "libstdc++.so.6", Need));
            Assert.Contains(ElfVersionNeeds.Read(File.ReadAllBytes(output)), n => n.Version == Need && n.Weak);
            Assert.Contains(ElfVersionNeeds.Read(File.ReadAllBytes(cache)), n => n.Version == Need && !n.Weak);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_library_whose_need_is_missing_and_hard_gets_a_diagnosis_naming_version_and_remedy()
    {
        var dir = Directory.CreateTempSubdirectory("sweeper-elf-");
        try
        {
            var library = Path.Combine(dir.FullName, "libLibTorchSharp.so");
            File.Copy(PackageCopy(), library);
            var oldStdCxx = Path.Combine(dir.FullName, "libstdc++.so.6");
            // Debian 12's libstdc++ as far as versions go: GLIBCXX up to 3.4.30, CXXABI up to 1.3.13.
            var versions = string.Join("\0", Enumerable.Range(1, 30).Select(i => $"GLIBCXX_3.4.{i}").Prepend("GLIBCXX_3.4")
                .Concat(Enumerable.Range(1, 13).Select(i => $"CXXABI_1.3.{i}").Prepend("CXXABI_1.3"))) + "\0";
            File.WriteAllText(oldStdCxx, versions);

            var why = LibTorchRuntime.DiagnoseVersions(library, oldStdCxx);
            Assert.NotNull(why);
            Assert.Contains("GLIBCXX_3.4.32", why);
            Assert.Contains("up to GLIBCXX_3.4.30", why);
            Assert.Contains("weak", why);

            ElfVersionNeeds.MarkWeak(library, "libstdc++.so.6", Need);
            Assert.Null(LibTorchRuntime.DiagnoseVersions(library, oldStdCxx));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Libtorch_loads_in_this_process_and_reports_its_version()
    {
        Assert.StartsWith("2.10.0", LibTorchRuntime.Version);
        Assert.NotNull(LibTorchRuntime.LoadedLibStdCxx());
    }
}
