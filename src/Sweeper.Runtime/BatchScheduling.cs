using System.Runtime.InteropServices;

namespace Sweeper.Runtime;

/// <summary>
/// Linux's <c>SCHED_BATCH</c> policy for a training slot's thread: the kernel treats it as the CPU-bound work it is and
/// never lets its wake-up preempt a running thread. A slot wakes each time a grain call it waits for completes; without
/// this, each such wake-up preempted the silo thread that completed it (the grain scheduler, membership's probes), which
/// then had to be switched back in. Elsewhere, or where the call is refused, nothing changes.
/// </summary>
public static partial class BatchScheduling
{
    private const int SchedBatch = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct SchedParam
    {
        public int Priority;
    }

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SetScheduler(int pid, int policy, ref SchedParam param);

    /// <summary>Puts the calling thread under <c>SCHED_BATCH</c> (Linux); true when it took.</summary>
    public static bool ApplyToCurrentThread()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            var param = new SchedParam { Priority = 0 };
            return SetScheduler(0, SchedBatch, ref param) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
