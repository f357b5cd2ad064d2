namespace Sweeper.Cli;

/// <summary>Resource figures of this process, for reports.</summary>
public static class ProcessStats
{
    /// <summary>Peak resident memory in MiB (VmHWM on Linux; the current working set elsewhere).</summary>
    public static double PeakResidentMegabytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                    return kb / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }

        return Environment.WorkingSet / (1024.0 * 1024.0);
    }
}
