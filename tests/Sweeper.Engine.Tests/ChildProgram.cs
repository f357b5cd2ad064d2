using System.Diagnostics;
using System.Text.Json;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

/// <summary>
/// This assembly's entry point, for what needs a fresh process: OpenBLAS chooses its kernel once per process, when it
/// is loaded. <c>dotnet Sweeper.Engine.Tests.dll blas [--corrupt Core,Core] [--managed-force X] [--switch-all]</c>
/// loads OpenBLAS and prints its kernel selection as one JSON object. The test runner itself does not use this.
/// </summary>
public static class ChildProgram
{
    public static int Main(string[] args)
    {
        if (args.FirstOrDefault() != "blas")
        {
            Console.Error.WriteLine("usage: Sweeper.Engine.Tests blas [--corrupt Core,Core] [--managed-force X] [--switch-all]");
            return 2;
        }

        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        if (Arg("--corrupt")?.Split(',') is { } corrupt)
        {
            Blas.CorruptSelfCheckForTests = core => corrupt.Contains(core, StringComparer.OrdinalIgnoreCase);
        }

        if (Arg("--managed-force") is { } managed)
        {
            Environment.SetEnvironmentVariable(Blas.ForceVariable, managed); // .NET's copy only, not the C library's
        }

        var clock = Stopwatch.StartNew();
        Blas.EnsureLoaded();
        var loadMs = clock.Elapsed.TotalMilliseconds;
        var s = Blas.Selection;
        var switched = new Dictionary<string, string?>();
        if (args.Contains("--switch-all"))
        {
            foreach (var core in s.Alternatives)
            {
                switched[core] = Blas.TryWithCore(core, () => { });
            }

            switched["(OpenBLAS's own choice)"] = Blas.TryWithCore(null, () => { });
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            core = s.Core,
            origin = s.Origin.ToString(),
            user_value = s.UserValue,
            openblas_default = s.OpenBlasDefault,
            rejected = s.Rejected,
            alternatives = s.Alternatives,
            switched,
            core_now = Blas.CurrentCore,
            native_coretype_after = NativeEnvironment.Get("OPENBLAS_CORETYPE"),
            describe = Blas.Describe(),
            avx2 = s.Cpu.Avx2,
            avx512 = s.Cpu.Avx512,
            load_ms = loadMs,
        }));
        return 0;
    }
}
