using System.Diagnostics;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// Separate hosts on this machine: one network namespace per host, joined to the host side by a veth pair on its
/// own subnet 10.77.N.0/24 (host side .1, namespace side .2). PostgreSQL runs on the host side and is reached at
/// 10.77.N.1 from namespace N; the host side also has <see cref="HostAddress"/> (10.77.0.1, on its loopback) for a
/// silo that runs there. The host forwards between the namespaces (each routes everything through its host side), so
/// silos on different hosts reach each other; taking a host-side link down cuts that host off from everything. Needs
/// root and iproute2; without them the tests fail with that message.
/// </summary>
public sealed class NetnsCluster : IDisposable
{
    private readonly string _tag = Guid.NewGuid().ToString("N")[..4];

    public NetnsCluster(int hosts)
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
        {
            throw new InvalidOperationException("the multi-host drills need root and iproute2 (ip netns): run them as root on Linux.");
        }

        Hosts = hosts;
        TryIp("addr", "del", HostAddress + "/32", "dev", "lo"); // a leftover of a killed test run
        Ip("addr", "add", HostAddress + "/32", "dev", "lo");
        File.WriteAllText("/proc/sys/net/ipv4/ip_forward", "1");
        for (var i = 1; i <= hosts; i++)
        {
            Ip("netns", "add", Namespace(i));
            Ip("link", "add", HostSide(i), "type", "veth", "peer", "name", $"swn{_tag}{i}");
            Ip("link", "set", $"swn{_tag}{i}", "netns", Namespace(i));
            Ip("addr", "add", $"{Gateway(i)}/24", "dev", HostSide(i));
            Ip("link", "set", HostSide(i), "up");
            Ip("netns", "exec", Namespace(i), "ip", "addr", "add", $"10.77.{i}.2/24", "dev", $"swn{_tag}{i}");
            Ip("netns", "exec", Namespace(i), "ip", "link", "set", $"swn{_tag}{i}", "up");
            Ip("netns", "exec", Namespace(i), "ip", "link", "set", "lo", "up");
            Ip("netns", "exec", Namespace(i), "ip", "route", "add", "default", "via", Gateway(i));
        }
    }

    public int Hosts { get; }

    /// <summary>The host side's own address, reachable from every namespace (for a silo running on the host side).</summary>
    public const string HostAddress = "10.77.0.1";


    public string Namespace(int host) => $"swp{_tag}{host}";

    /// <summary>The address of the host side (where PostgreSQL listens) as seen from namespace <paramref name="host"/>.</summary>
    public static string Gateway(int host) => $"10.77.{host}.1";

    private string HostSide(int host) => $"swh{_tag}{host}";

    public void Cut(int host) => Ip("link", "set", HostSide(host), "down");

    public void Restore(int host) => Ip("link", "set", HostSide(host), "up");

    public void Dispose()
    {
        TryIp("addr", "del", HostAddress + "/32", "dev", "lo");
        for (var i = 1; i <= Hosts; i++)
        {
            try
            {
                Ip("netns", "del", Namespace(i)); // also removes the veth pair
            }
            catch (InvalidOperationException)
            {
            }
        }
    }

    private static void TryIp(params string[] args)
    {
        try
        {
            Ip(args);
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static void Ip(params string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', args)}: {err}");
        }
    }
}
