using System.Diagnostics;
using System.Text;

namespace Sweeper.Runtime.Tests;

/// <summary>Runs the real sweeper program in a scratch folder, with the real CIFAR-10 copy.</summary>
public sealed class Harness : IDisposable
{
    public Harness()
    {
        Dir = Path.Combine(Path.GetTempPath(), "sweeper-e2e-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
    }

    public string Dir { get; }

    public static string CifarDir
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("SWEEPER_DATA");
            if (!string.IsNullOrEmpty(env))
            {
                return env;
            }

            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "shared", "data", "cifar-10-batches-bin");
                if (File.Exists(Path.Combine(candidate, "data_batch_1.bin")))
                {
                    return candidate;
                }
            }

            throw new DirectoryNotFoundException("The real CIFAR-10 copy was not found: set SWEEPER_DATA or keep ../shared/data/cifar-10-batches-bin beside the checkout.");
        }
    }

    public string Write(string name, string text)
    {
        var path = Path.Combine(Dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    public string Store(string name = "store.db") => "sqlite:" + Path.Combine(Dir, name);

    /// <summary>Starts <c>sweeper ARGS</c> in the scratch folder; output is collected.</summary>
    public RunningSweeper Start(params string[] args) => StartIn(null, args);

    /// <summary>Starts <c>sweeper ARGS</c> inside a network namespace (a separate host) when <paramref name="netns"/> is given.</summary>
    public RunningSweeper StartIn(string? netns, params string[] args)
    {
        var info = new ProcessStartInfo(netns is null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Dir,
        };
        if (netns is not null)
        {
            // ip netns exec replaces itself with dotnet: the process is the worker itself.
            foreach (var a in new[] { "netns", "exec", netns, "dotnet" })
            {
                info.ArgumentList.Add(a);
            }
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "sweeper.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["SWEEPER_DATA"] = CifarDir;
        return new RunningSweeper(Process.Start(info)!);
    }

    public (int Code, string Stdout, string Stderr) Run(TimeSpan timeout, params string[] args)
    {
        using var p = Start(args);
        return p.Wait(timeout);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed class RunningSweeper : IDisposable
{
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();

    public RunningSweeper(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) =>
        {
            lock (_out)
            {
                _out.AppendLine(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (_err)
            {
                _err.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }

    public string Stderr
    {
        get
        {
            lock (_err)
            {
                return _err.ToString();
            }
        }
    }

    public (int Code, string Stdout, string Stderr) Wait(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout))
        {
            Process.Kill(entireProcessTree: true);
            throw new TimeoutException($"sweeper did not finish within {timeout}. stderr:\n{Stderr}");
        }

        Process.WaitForExit();
        lock (_out)
        {
            return (Process.ExitCode, _out.ToString(), Stderr);
        }
    }

    public void Dispose()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
        }

        Process.Dispose();
    }
}
