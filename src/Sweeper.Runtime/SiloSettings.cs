using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Orleans.Runtime;

namespace Sweeper.Runtime;

/// <summary>How a silo runs: its training slots, which studies it serves, its lease, its ports. Defaults suit a cluster.</summary>
public sealed record SiloSettings
{
    /// <summary>Training slots (trials trained at once). Default: one per core. 0 makes a silo that only coordinates.</summary>
    public int Slots { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// GPU training slots, one per GPU: they train only the trials of studies with <c>device: cuda</c>, which CPU slots
    /// never take (so such a trial waits for a silo with a free GPU slot). Default: 0.
    /// </summary>
    public int GpuSlots { get; init; }

    /// <summary>Only this study's trials; null serves every open study, oldest first. Default: null.</summary>
    public string? Study { get; init; }

    /// <summary>How long a trial's lease lasts without renewal (renewed every third of it). Only a backstop: a silo declared dead loses its trials at once. Default: 30 s.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Wait of an idle slot between asks for work. Default: 0.5 s.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long a study grain trusts that it has no pending trial before asking the store again. Default: 2 s.</summary>
    public TimeSpan IdleRecheck { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Period of each silo's housekeeping call to its studies' grains (requeue, close). Default: 1 s.</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Silo-to-silo port; 0 picks a free one. Default: 11111.</summary>
    public int SiloPort { get; init; } = 11111;

    /// <summary>The address other silos reach this one at. Default: 127.0.0.1 for an embedded (SQLite) cluster, else this machine's first IPv4 address.</summary>
    public IPAddress? Address { get; init; }

    /// <summary>Name of the cluster in the store's membership table. Default: sweeper.</summary>
    public string ClusterId { get; init; } = "sweeper";

    /// <summary>Failure detection: a silo that misses this many probes of this timeout is declared dead. Defaults: 2 x 1 s.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public int MissedProbes { get; init; } = 2;

    /// <summary>The owner prefix of every lease taken by a slot of <paramref name="silo"/>: the silo address with its generation.</summary>
    public static string OwnerPrefix(SiloAddress silo) => silo.ToParsableString() + "/";

    /// <summary>The <see cref="OwnerPrefix"/> part of a slot's owner name (its silo's), or null when it has none.</summary>
    public static string? OwnerPrefixOf(string owner) => owner.LastIndexOf('/') is var slash and > 0 ? owner[..(slash + 1)] : null;

    /// <summary>A free TCP port on this machine (for <see cref="SiloPort"/> 0).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>This machine's first up, non-loopback IPv4 address, or loopback when it has none.</summary>
    public static IPAddress MachineAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)) ?? IPAddress.Loopback;
}
