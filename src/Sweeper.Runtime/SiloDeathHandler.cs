using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Sweeper.Runtime;

/// <summary>
/// What a silo does on an Orleans fatal error, above all on learning that the cluster declared it dead (cut off,
/// frozen): Orleans' default aborts the process with a stack trace. This says plainly what happened and ends the process
/// at once with <see cref="ExitCode"/>, so that its supervisor (<c>sweeper run</c>'s user, compose, Kubernetes, Slurm)
/// starts a new silo. Nothing is lost: the trials it trained were requeued when it was declared dead and resume
/// elsewhere from their last checkpoint; any late write of this process is rejected by the store's fencing.
/// </summary>
public sealed class SiloDeathHandler(ILogger<SiloDeathHandler> log) : IFatalErrorHandler
{
    /// <summary>The exit code of a silo stopped by a fatal cluster error (EX_TEMPFAIL: restart it).</summary>
    public const int ExitCode = 75;

    public bool IsUnexpected(Exception exception) => true;

    public void OnFatalException(object? sender = null, string? context = null, Exception? exception = null)
    {
        var dead = context?.Contains("dead", StringComparison.OrdinalIgnoreCase) == true;
        log.LogCritical(dead
            ? "This silo was declared dead by the cluster (it was cut off or stalled); it stops now so that its supervisor restarts it. Its trials resume elsewhere from their last checkpoint."
            : "Fatal cluster error ({Context}{Error}); this silo stops now so that its supervisor restarts it.", context, exception is null ? "" : ": " + exception.Message);
        Serilog.Log.CloseAndFlush();
        Console.Error.Flush();
        Exit(ExitCode);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void Exit(int status);
}
