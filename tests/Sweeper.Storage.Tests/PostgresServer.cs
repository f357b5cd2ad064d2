using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Sweeper.Storage.Tests;

/// <summary>
/// A real PostgreSQL server for the tests: initdb in a temporary folder, listening on 127.0.0.1 on a free port,
/// stopped (and its folder removed) once the test process has ended. Needs Debian's postgresql package
/// (scripts/setup.sh installs it); when it is missing the tests that use it fail with that message, never skip. As
/// root the server runs as the postgres user, since PostgreSQL refuses to run as root.
/// </summary>
public sealed class PostgresServer
{
    private static readonly Lazy<PostgresServer> _shared = new(() => new PostgresServer(null, durable: false));
    private readonly string _bin;
    private readonly string _dataDir;
    private readonly bool _asPostgresUser;

    public static PostgresServer Shared => _shared.Value;

    public int Port { get; }

    /// <summary>Superuser connection to the maintenance database.</summary>
    public string AdminConnectionString => $"Host=127.0.0.1;Port={Port};Username=sweeper;Database=postgres;Pooling=false;Timeout=30";

    /// <summary>A separate server that also accepts clients from <paramref name="clientNetwork"/> (CIDR), listening on every address.</summary>
    public static PostgresServer StartForNetwork(string clientNetwork) => new(clientNetwork, durable: false);

    /// <summary>A separate server with PostgreSQL's durable defaults (fsync and synchronous commit on), for benchmarks.</summary>
    public static PostgresServer StartDurable() => new(null, durable: true);

    private PostgresServer(string? clientNetwork, bool durable)
    {
        _bin = Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => d).Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/setup.sh, which installs Debian's postgresql package.");
        _asPostgresUser = Environment.UserName == "root";
        RemoveLeftovers();
        _dataDir = Path.Combine(Path.GetTempPath(), "sweeper-pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(_dataDir);
        File.WriteAllText(Path.Combine(_dataDir, "owner"), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (_asPostgresUser)
        {
            Run("chown", "postgres:postgres", _dataDir);
        }

        Port = FreePort();
        Pg("initdb", "-D", Path.Combine(_dataDir, "data"), "-U", "sweeper", "--auth=trust", "-E", "UTF8", "--no-sync");
        var listen = "127.0.0.1";
        if (clientNetwork is not null)
        {
            // Trust the test network too (hosts in network namespaces); listen on every address.
            var hba = Path.Combine(_dataDir, "data", "pg_hba.conf");
            var extra = Path.Combine(_dataDir, "hba-extra");
            File.WriteAllText(extra, $"host all all {clientNetwork} trust\n");
            Pg("sh", "-c", $"cat {extra} >> {hba}");
            listen = "*";
        }

        Pg("pg_ctl", "-D", Path.Combine(_dataDir, "data"), "-l", Path.Combine(_dataDir, "log"), "-w", "-t", "60", "-o",
            $"-p {Port} -c listen_addresses='{listen}' -k {_dataDir} -c max_connections=300" + (durable ? "" : " -c fsync=off -c synchronous_commit=off"), "start");
        StartWatchdog();
    }

    /// <summary>
    /// CPU time (user + system) spent so far by the server's processes alive now (the postmaster and its children),
    /// read from /proc: benchmarks report the server's CPU per operation, which stays meaningful on a busy machine.
    /// </summary>
    public TimeSpan CpuTime()
    {
        var pidFile = Path.Combine(_dataDir, "data", "postmaster.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).First(), out var postmaster))
        {
            return TimeSpan.Zero;
        }

        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // pid (comm) state ppid ... utime stime: fields 14 and 15, counted after the ')' that ends comm.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                var pid = int.Parse(Path.GetFileName(dir), System.Globalization.CultureInfo.InvariantCulture);
                if (pid == postmaster || int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == postmaster)
                {
                    ticks += long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException or IndexOutOfRangeException)
            {
                // not a process, or it ended while being read
            }
        }

        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ is 100 on Linux
    }

    /// <summary>A fresh, empty database on the shared server, as a connection string.</summary>
    public string CreateDatabase()
    {
        var name = "t_" + Guid.NewGuid().ToString("N")[..16];
        using var conn = new NpgsqlConnection(AdminConnectionString);
        conn.Open();
        using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", conn);
        cmd.ExecuteNonQuery();
        return $"Host=127.0.0.1;Port={Port};Username=sweeper;Database={name};Timeout=30;Maximum Pool Size=20";
    }

    public void DropDatabase(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        NpgsqlConnection.ClearAllPools();
        using var conn = new NpgsqlConnection(AdminConnectionString);
        conn.Open();
        using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", conn);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Restarts the server (fast shutdown), as in the "PostgreSQL restarted during the sweep" drill.</summary>
    public void Restart() => Pg("pg_ctl", "-D", Path.Combine(_dataDir, "data"), "-l", Path.Combine(_dataDir, "log"), "-w", "-t", "60", "-m", "fast", "restart");

    /// <summary>
    /// Stops the server and removes its folder once this process is gone, however it ends: a detached shell polls for
    /// it. (An exit handler is not enough: the test runner ends its test processes without waiting for their handlers,
    /// and a killed process runs none; each left server kept its port and 50 MB to gigabytes of disk.)
    /// </summary>
    private void StartWatchdog()
    {
        var stop = string.Join(' ', PgCommand("pg_ctl", "-D", Path.Combine(_dataDir, "data"), "-w", "-m", "immediate", "stop").Select(a => $"'{a}'"));
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false };
        info.ArgumentList.Add("/bin/sh");
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($"exec </dev/null >/dev/null 2>&1; while kill -0 {Environment.ProcessId}; do sleep 1; done; {stop}; rm -rf '{_dataDir}'");
        Process.Start(info)?.Dispose();
    }

    /// <summary>
    /// Removes the folders (and stops the servers) that no watchdog removed: the watchdog itself killed, or left by
    /// versions of this class from before it had one. Left alone, each holds from 50 MB to gigabytes.
    /// A folder is left while the process named in its "owner" file runs (or, without one, for an hour: it may be being
    /// created).
    /// </summary>
    private void RemoveLeftovers()
    {
        foreach (var dir in Directory.GetDirectories(Path.GetTempPath(), "sweeper-pg-*"))
        {
            try
            {
                var owner = Path.Combine(dir, "owner");
                var inUse = File.Exists(owner)
                    ? Directory.Exists("/proc/" + File.ReadAllText(owner).Trim())
                    : Directory.GetLastWriteTimeUtc(dir) > DateTime.UtcNow.AddHours(-1);
                if (inUse)
                {
                    continue;
                }

                if (File.Exists(Path.Combine(dir, "data", "postmaster.pid")))
                {
                    Pg("pg_ctl", "-D", Path.Combine(dir, "data"), "-w", "-m", "immediate", "stop");
                }

                Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // Another process's folder, or one that can't be removed now: the next start tries again.
            }
        }
    }

    private void Pg(string tool, params string[] args)
    {
        var command = PgCommand(tool, args);
        Run(command[0], command[1..]);
    }

    /// <summary>The command line that runs one of PostgreSQL's tools (or sh), as the postgres user when this process is root.</summary>
    private string[] PgCommand(string tool, params string[] args)
    {
        var exe = tool == "sh" ? "/bin/sh" : Path.Combine(_bin, tool);
        return _asPostgresUser ? ["runuser", "-u", "postgres", "--", exe, .. args] : [exe, .. args];
    }

    private static void Run(string exe, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({p.ExitCode}): {stdout} {stderr.Result}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
