namespace Sweeper.Engine.Kernels;

/// <summary>What choosing a kernel needs from a loaded OpenBLAS (the real library, or a fake in tests).</summary>
internal interface IOpenBlasCores
{
    /// <summary>The kernel it runs now (<c>openblas_get_corename</c>).</summary>
    string Current { get; }

    /// <summary>True when it can re-run its kernel selection in place (a DYNAMIC_ARCH build exporting <c>gotoblas_dynamic_init</c>).</summary>
    bool CanSwitch { get; }

    /// <summary>True when this build contains the kernel (exports its <c>gotoblas_NAME</c> table).</summary>
    bool Has(string core);

    /// <summary>Re-runs OpenBLAS's selection as if OPENBLAS_CORETYPE were <paramref name="coreType"/> (null: unset).</summary>
    void Switch(string? coreType);

    /// <summary><see cref="BlasSelfCheck"/> on the current kernel: null when it agrees with the reference.</summary>
    string? SelfCheck();
}

/// <summary>
/// Which OpenBLAS kernel ("core") to run on which processor, and the selection at load time.
/// <para>
/// OpenBLAS's DYNAMIC_ARCH builds choose their kernel from a table of processor models; a model newer than the
/// build's table falls to a generic kernel (Debian 12's 0.3.21 runs Prescott, SSE3, on a family 6 model 207 Xeon:
/// 22-30 GFLOPS sgemm on one thread against 150 with SkylakeX). The instruction sets tell what the table does not:
/// AVX-512 (F, CD, BW, DQ, VL) runs SkylakeX, AVX2 with FMA runs Haswell (Zen on AMD and Hygon). Cooperlake and
/// SapphireRapids are not proposed: their sgemm is SkylakeX's (measured equal here), they add only bfloat16 kernels
/// Sweeper does not call, and need more of the processor (SapphireRapids needs AMX, which Linux grants per process).
/// Processors below AVX2 keep OpenBLAS's choice, which knows them all.
/// </para>
/// <para>
/// The selection: a kernel forced with SWEEPER_BLAS_CORE wins; otherwise the candidates are tried best first and the
/// first that OpenBLAS actually runs and that passes <see cref="BlasSelfCheck"/> is kept. OPENBLAS_CORETYPE found in
/// the environment does not decide: images and clusters set it to work around an OpenBLAS that does not know its
/// processor, often to a kernel below what the processor runs (Haswell on an AVX-512 machine: half the sgemm rate,
/// measured on a Zen 5 EPYC); Sweeper overrides it with a better candidate, says so, and keeps it only on a processor
/// for which it knows no candidate. Failing every candidate, OpenBLAS's own choice is used, then Prescott; if even that
/// disagrees with the reference, loading fails. A forced kernel that fails the self-check is replaced the same way
/// (wrong products are never kept) and reported.
/// </para>
/// </summary>
internal static class OpenBlasCores
{
    /// <summary>The generic x86-64 kernel (SSE3), the last resort.</summary>
    public const string Generic = "Prescott";

    /// <summary>The kernels Sweeper proposes for <paramref name="cpu"/>, best first; empty to keep OpenBLAS's choice.</summary>
    public static IReadOnlyList<string> Candidates(CpuInfo cpu)
    {
        string[] avx2 = cpu.IsAmd ? ["Zen", "Haswell"] : ["Haswell"];
        return cpu.Avx512 ? ["SkylakeX", .. avx2] : cpu.Avx2 ? avx2 : [];
    }

    /// <summary>
    /// True when <paramref name="cpu"/> has every instruction <paramref name="core"/>'s kernels may use, so switching to
    /// it cannot stop the process with an illegal instruction. False for kernels whose needs are not listed here.
    /// </summary>
    public static bool Runs(CpuInfo cpu, string core) => core.ToUpperInvariant() switch
    {
        "COOPERLAKE" => cpu.Avx512Bf16,
        "SKYLAKEX" => cpu.Avx512,
        "HASWELL" or "ZEN" => cpu.Avx2,
        "SANDYBRIDGE" => cpu.Avx,
        "PRESCOTT" => cpu.Family != 0,
        _ => false,
    };

    /// <summary>Kernel names compare without case, as OpenBLAS reads OPENBLAS_CORETYPE.</summary>
    public static bool Same(string? x, string? y) => string.Equals(x, y, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Chooses and verifies the kernel of <paramref name="library"/>, loaded with OPENBLAS_CORETYPE set to
    /// <paramref name="forced"/> (SWEEPER_BLAS_CORE) or else <paramref name="loadedWith"/> (Sweeper's first candidate,
    /// or the environment's OPENBLAS_CORETYPE, or null: unset). <paramref name="environment"/> is the OPENBLAS_CORETYPE
    /// found in the environment, if any. Leaves the library running the chosen kernel. Throws
    /// <see cref="BlasUnavailableException"/> when no kernel passes the self-check.
    /// </summary>
    public static (BlasCoreSelection Selection, string? CoreType) Select(CpuInfo cpu, string? forced, string? environment, string? loadedWith, IOpenBlasCores library)
    {
        var rejected = new List<string>();
        if (forced is not null)
        {
            if (library.SelfCheck() is not { } failure)
            {
                return Done(BlasCoreOrigin.User, forced);
            }

            rejected.Add($"{library.Current} from {Blas.ForceVariable}={forced}: {failure}");
        }
        else if (environment is not null && Candidates(cpu).Count == 0 && Same(loadedWith, environment))
        {
            // No better kernel known for this processor: the environment's stands, once proven.
            if (library.SelfCheck() is not { } failure)
            {
                return Done(BlasCoreOrigin.Environment, environment);
            }

            rejected.Add($"{library.Current} from OPENBLAS_CORETYPE={environment}: {failure}");
        }
        else
        {
            foreach (var core in Candidates(cpu))
            {
                if (!Same(library.Current, core))
                {
                    if (!library.CanSwitch || !library.Has(core))
                    {
                        rejected.Add(Same(loadedWith, core)
                            ? $"{core}: OpenBLAS ran {library.Current} when asked for it"
                            : $"{core}: {(library.CanSwitch ? "not in this OpenBLAS" : "this OpenBLAS cannot switch kernels")}");
                        continue;
                    }

                    library.Switch(core);
                    if (!Same(library.Current, core))
                    {
                        rejected.Add($"{core}: OpenBLAS ran {library.Current} when asked for it");
                        continue;
                    }
                }

                if (library.SelfCheck() is { } failure)
                {
                    rejected.Add($"{core}: {failure}");
                    continue;
                }

                return Done(BlasCoreOrigin.Sweeper, core);
            }
        }

        // OpenBLAS's own choice: already running unless something was forced or switched to.
        if (library.CanSwitch && (forced is not null || loadedWith is not null || rejected.Count > 0))
        {
            library.Switch(null);
        }

        var own = library.Current;
        if (library.SelfCheck() is not { } ownFailure)
        {
            return Done(BlasCoreOrigin.OpenBlasDefault, null);
        }

        rejected.Add($"{own} (OpenBLAS's own choice): {ownFailure}");
        if (library.CanSwitch && library.Has(Generic) && !Same(own, Generic) && Runs(cpu, Generic))
        {
            library.Switch(Generic);
            if (library.SelfCheck() is not { } genericFailure)
            {
                return Done(BlasCoreOrigin.SafeFallback, Generic);
            }

            rejected.Add($"{library.Current}: {genericFailure}");
        }

        throw new BlasUnavailableException(
            "OpenBLAS's matrix products disagree with a double-precision reference on every kernel tried: " + string.Join("; ", rejected) +
            ". Reinstall OpenBLAS (sudo apt-get install --reinstall libopenblas0-pthread) or report the processor and library version.");

        (BlasCoreSelection, string?) Done(BlasCoreOrigin origin, string? coreType)
        {
            var chosen = library.Current;
            var openBlasDefault = origin == BlasCoreOrigin.OpenBlasDefault ? chosen : null;
            if (openBlasDefault is null && library.CanSwitch)
            {
                // Learn OpenBLAS's own choice for the logs (a table lookup), then return to the chosen kernel.
                library.Switch(null);
                openBlasDefault = library.Current;
                library.Switch(coreType);
            }

            List<string> alternatives = [.. Candidates(cpu).Where(c => Same(c, chosen) || (library.CanSwitch && library.Has(c)))];
            if (Runs(cpu, "Cooperlake") && library.CanSwitch && library.Has("Cooperlake"))
            {
                alternatives.Add("Cooperlake");
            }

            if (openBlasDefault is not null)
            {
                alternatives.Add(openBlasDefault);
            }

            var selection = new BlasCoreSelection
            {
                Cpu = cpu,
                Core = chosen,
                Origin = origin,
                UserValue = forced,
                EnvironmentValue = environment,
                OpenBlasDefault = openBlasDefault,
                Rejected = rejected,
                Alternatives = [.. alternatives.Where(a => Same(a, chosen) || Runs(cpu, a) || Same(a, openBlasDefault)).Distinct(StringComparer.OrdinalIgnoreCase)],
            };
            return (selection, coreType);
        }
    }
}
