namespace Sweeper.Engine.Kernels;

/// <summary>Who decided which OpenBLAS kernel ("core") the process runs.</summary>
public enum BlasCoreOrigin
{
    /// <summary>The user, who forced it with SWEEPER_BLAS_CORE.</summary>
    User,

    /// <summary>OPENBLAS_CORETYPE from the environment, kept because Sweeper knows no better kernel for the processor.</summary>
    Environment,

    /// <summary>Sweeper, from the processor's instruction sets (CPUID), then verified by the self-check.</summary>
    Sweeper,

    /// <summary>OpenBLAS's own detection: no better kernel was known for this processor, or the better ones failed.</summary>
    OpenBlasDefault,

    /// <summary>OpenBLAS's generic Prescott kernel, after every other choice failed the self-check.</summary>
    SafeFallback,
}

/// <summary>The outcome of choosing OpenBLAS's kernel at load time (see <see cref="Blas"/>).</summary>
public sealed record BlasCoreSelection
{
    /// <summary>The processor the choice was made for.</summary>
    public required CpuInfo Cpu { get; init; }

    /// <summary>The kernel OpenBLAS runs, as <c>openblas_get_corename</c> names it (e.g. <c>SkylakeX</c>).</summary>
    public required string Core { get; init; }

    public required BlasCoreOrigin Origin { get; init; }

    /// <summary>The kernel the user forced with SWEEPER_BLAS_CORE, if set.</summary>
    public string? UserValue { get; init; }

    /// <summary>OPENBLAS_CORETYPE as found in the environment, if set (it decides only what Sweeper has no better choice for).</summary>
    public string? EnvironmentValue { get; init; }

    /// <summary>The kernel OpenBLAS picks by itself on this processor, when known (it is learnt by switching to it).</summary>
    public string? OpenBlasDefault { get; init; }

    /// <summary>Kernels tried and rejected, each with the reason (wrong product, or the library ran another kernel).</summary>
    public IReadOnlyList<string> Rejected { get; init; } = [];

    /// <summary>
    /// The kernels worth comparing on this machine, best first: Sweeper's candidates this library has, Cooperlake when
    /// the processor runs it, and OpenBLAS's own choice. Each can be tried with <see cref="Blas.TryWithCore"/>.
    /// </summary>
    public IReadOnlyList<string> Alternatives { get; init; } = [];

    /// <summary>One line for logs: the kernel, how it was chosen, the CPU, and what was rejected.</summary>
    public override string ToString()
    {
        var how = Origin switch
        {
            BlasCoreOrigin.User => $"forced by the user with {Blas.ForceVariable}={UserValue}",
            BlasCoreOrigin.Environment => $"OPENBLAS_CORETYPE={EnvironmentValue} from the environment",
            BlasCoreOrigin.Sweeper => $"chosen by Sweeper for {Cpu.Level}",
            BlasCoreOrigin.OpenBlasDefault => "OpenBLAS's own choice",
            _ => "safe fallback",
        };
        var alone = Origin != BlasCoreOrigin.OpenBlasDefault && OpenBlasDefault is not null ? $", OpenBLAS alone would run {OpenBlasDefault}" : string.Empty;
        var overridden = Origin is not (BlasCoreOrigin.User or BlasCoreOrigin.Environment) && EnvironmentValue is not null && !OpenBlasCores.Same(EnvironmentValue, Core)
            ? $", overriding OPENBLAS_CORETYPE={EnvironmentValue} from the environment ({Blas.ForceVariable} forces a kernel)"
            : string.Empty;
        var rejected = Rejected.Count > 0 ? $"; rejected: {string.Join("; ", Rejected)}" : string.Empty;
        return $"core {Core} ({how}{overridden}{alone}; self-check passed) on {Cpu}{rejected}";
    }
}
