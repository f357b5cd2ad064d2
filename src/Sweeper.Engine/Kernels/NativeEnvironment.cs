using System.Runtime.InteropServices;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// The C library's environment (<c>getenv</c>, <c>setenv</c>, <c>unsetenv</c>), which native libraries read. On Unix
/// .NET keeps its own copy of the environment, taken at start-up: <see cref="Environment.SetEnvironmentVariable(string, string)"/>
/// changes only that copy, so a variable meant for a C library (OpenBLAS reads OPENBLAS_CORETYPE when it initializes)
/// must be set here. Changes here are not seen by .NET either, nor by processes .NET starts. Available on Linux and
/// macOS; on Windows <see cref="Supported"/> is false (each C runtime there has its own environment copy).
/// </summary>
internal static unsafe class NativeEnvironment
{
    private static readonly delegate* unmanaged<byte*, byte*> _getenv;
    private static readonly delegate* unmanaged<byte*, byte*, int, int> _setenv;
    private static readonly delegate* unmanaged<byte*, int> _unsetenv;

    static NativeEnvironment()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // The process's global symbols include the C library every .NET host links against.
        var libc = NativeLibrary.GetMainProgramHandle();
        if (NativeLibrary.TryGetExport(libc, "getenv", out var get)
            && NativeLibrary.TryGetExport(libc, "setenv", out var set)
            && NativeLibrary.TryGetExport(libc, "unsetenv", out var unset))
        {
            _getenv = (delegate* unmanaged<byte*, byte*>)get;
            _setenv = (delegate* unmanaged<byte*, byte*, int, int>)set;
            _unsetenv = (delegate* unmanaged<byte*, int>)unset;
        }
    }

    /// <summary>True when the C library's environment functions were found.</summary>
    public static bool Supported => _getenv != null;

    /// <summary>The C library's value of <paramref name="name"/>, or null when it is unset (or not <see cref="Supported"/>).</summary>
    public static string? Get(string name)
    {
        if (!Supported)
        {
            return null;
        }

        var key = Utf8(name);
        fixed (byte* k = key)
        {
            var value = _getenv(k);
            return value == null ? null : Marshal.PtrToStringUTF8((nint)value);
        }
    }

    /// <summary>
    /// Sets <paramref name="name"/> in the C library's environment, or removes it when <paramref name="value"/> is null.
    /// Like <c>setenv</c> itself this must not race another thread's <c>setenv</c>; the callers hold a lock.
    /// </summary>
    public static void Set(string name, string? value)
    {
        if (!Supported)
        {
            throw new PlatformNotSupportedException("The C library's environment functions are not available on this platform.");
        }

        var key = Utf8(name);
        fixed (byte* k = key)
        {
            if (value is null)
            {
                _ = _unsetenv(k);
                return;
            }

            var bytes = Utf8(value);
            fixed (byte* v = bytes)
            {
                if (_setenv(k, v, 1) != 0)
                {
                    throw new InvalidOperationException($"setenv({name}) failed.");
                }
            }
        }
    }

    private static byte[] Utf8(string s) => [.. System.Text.Encoding.UTF8.GetBytes(s), 0];
}
