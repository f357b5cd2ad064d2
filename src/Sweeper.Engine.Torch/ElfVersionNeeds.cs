// The ELF patcher behind the LibTorchSharp load step (see docs/engines.md). This one file is compiled twice: into
// Sweeper.Engine.Torch (for the load-time diagnosis and the tests) and, by MSBuild's RoslynCodeTaskFactory, into
// the build task of build/LibTorchSharp.targets. Hence plain C# with no dependency beyond the base library.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Sweeper.Engine.Torch;

/// <summary>One version a shared library needs from another (an entry of its <c>.gnu.version_r</c> section).</summary>
public sealed class VersionNeed
{
    public VersionNeed(string library, string version, ushort flags, int flagsOffset)
    {
        Library = library;
        Version = version;
        Flags = flags;
        FlagsOffset = flagsOffset;
    }

    /// <summary>The library the version is needed from, e.g. <c>libstdc++.so.6</c>.</summary>
    public string Library { get; }

    /// <summary>The version, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
    public string Version { get; }

    /// <summary><c>vna_flags</c>: <see cref="ElfVersionNeeds.WeakFlag"/> when the loader may go on without the version.</summary>
    public ushort Flags { get; }

    /// <summary>Where <c>vna_flags</c> sits in the file.</summary>
    public int FlagsOffset { get; }

    public bool Weak => (Flags & ElfVersionNeeds.WeakFlag) != 0;

    public override string ToString() => Library + " " + Version + (Weak ? " (weak)" : string.Empty);
}

/// <summary>
/// Reads and edits the version needs of a 64-bit little-endian ELF shared library. The loader refuses a library
/// that needs a version its dependency does not define, unless the need is marked weak (VER_FLG_WEAK = 0x2 in the
/// <c>vna_flags</c> of its <c>Vernaux</c> entry); a weak need only matters to symbols bound to that version, so it
/// is safe to mark exactly when no relocation refers to such a symbol.
/// </summary>
public static class ElfVersionNeeds
{
    /// <summary>VER_FLG_WEAK.</summary>
    public const ushort WeakFlag = 0x2;

    private const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>Every version need of <paramref name="elf"/>. Throws <see cref="InvalidDataException"/> for anything but a 64-bit little-endian ELF file.</summary>
    public static List<VersionNeed> Read(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException("not an ELF file.");
        }

        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException("not a 64-bit little-endian ELF file.");
        }

        var shoff = checked((int)U64(elf, 0x28));
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        var needs = new List<VersionNeed>();
        for (var i = 0; i < shnum; i++)
        {
            var sh = shoff + (i * shentsize);
            if (U32(elf, sh + 4) != ShtGnuVerneed)
            {
                continue;
            }

            var offset = checked((int)U64(elf, sh + 0x18));
            var size = checked((int)U64(elf, sh + 0x20));
            var link = (int)U32(elf, sh + 0x28);
            var count = (int)U32(elf, sh + 0x2C); // sh_info: the number of Verneed entries
            var strtab = checked((int)U64(elf, shoff + (link * shentsize) + 0x18));
            var entry = offset;
            for (var n = 0; n < count; n++)
            {
                Check(elf, entry, 16, offset, size);
                int auxCount = U16(elf, entry + 2);
                var file = Str(elf, strtab + (int)U32(elf, entry + 4));
                var aux = entry + (int)U32(elf, entry + 8);
                for (var k = 0; k < auxCount; k++)
                {
                    Check(elf, aux, 16, offset, size);
                    needs.Add(new VersionNeed(file, Str(elf, strtab + (int)U32(elf, aux + 8)), U16(elf, aux + 4), aux + 4));
                    aux += (int)U32(elf, aux + 12);
                }

                entry += (int)U32(elf, entry + 12);
            }
        }

        return needs;
    }

    /// <summary>
    /// Marks the need of <paramref name="version"/> from <paramref name="library"/> weak in <paramref name="elf"/>.
    /// Returns how many entries changed: 0 when already weak or absent (the edit is idempotent).
    /// </summary>
    public static int MarkWeak(byte[] elf, string library, string version)
    {
        var changed = 0;
        foreach (var need in Read(elf))
        {
            if (need.Library == library && need.Version == version && !need.Weak)
            {
                var flags = (ushort)(need.Flags | WeakFlag);
                elf[need.FlagsOffset] = (byte)flags;
                elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
                changed++;
            }
        }

        return changed;
    }

    /// <summary>
    /// <see cref="MarkWeak(byte[], string, string)"/> on a file, written through a temporary file and a rename (so a
    /// hard link into a package cache is never written through). Returns true when the file changed.
    /// </summary>
    public static bool MarkWeak(string path, string library, string version)
    {
        var elf = File.ReadAllBytes(path);
        if (MarkWeak(elf, library, version) == 0)
        {
            return false;
        }

        var temp = path + ".weak.tmp";
        File.WriteAllBytes(temp, elf);
        File.Replace(temp, path, null); // a rename: a new file, never a write through a hard link
        return true;
    }

    private static void Check(byte[] elf, int at, int length, int sectionStart, int sectionSize)
    {
        if (at < sectionStart || at + length > sectionStart + sectionSize || at + length > elf.Length)
        {
            throw new InvalidDataException("malformed .gnu.version_r section.");
        }
    }

    private static ushort U16(byte[] b, int at) => (ushort)(b[at] | (b[at + 1] << 8));

    private static uint U32(byte[] b, int at) => BitConverter.ToUInt32(b, at);

    private static ulong U64(byte[] b, int at) => BitConverter.ToUInt64(b, at);

    private static string Str(byte[] b, int at)
    {
        var end = at;
        while (end < b.Length && b[end] != 0)
        {
            end++;
        }

        return Encoding.ASCII.GetString(b, at, end - at);
    }
}

#if !SWEEPER_ENGINE_TORCH
/// <summary>The MSBuild task: marks one version need weak in each of <see cref="Files"/> (only in the build's own output).</summary>
public sealed class MarkVersionNeedWeak : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    [Microsoft.Build.Framework.Required]
    public string Library { get; set; } = string.Empty;

    [Microsoft.Build.Framework.Required]
    public string Version { get; set; } = string.Empty;

    public override bool Execute()
    {
        foreach (var file in Files)
        {
            var path = file.GetMetadata("FullPath");
            try
            {
                var changed = ElfVersionNeeds.MarkWeak(path, Library, Version);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, changed ? "{0}: marked the need of {1} {2} weak" : "{0}: the need of {1} {2} is already weak or absent", path, Library, Version);
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException)
            {
                Log.LogError("{0}: could not mark the need of {1} {2} weak: {3}", path, Library, Version, e.Message);
            }
        }

        return !Log.HasLoggedErrors;
    }
}
#endif
