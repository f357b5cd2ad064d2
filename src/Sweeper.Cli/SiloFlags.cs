using System.CommandLine;
using System.Globalization;
using System.Net;
using Sweeper.Runtime;

namespace Sweeper.Cli;

/// <summary>The flags of every command that hosts a silo: its port, its address, the lease length, its GPU slots.</summary>
public sealed class SiloFlags
{
    private readonly Option<int> _port;
    private readonly Option<string?> _address = new("--address")
    {
        Description = "The address other silos reach this one at. Default: 127.0.0.1 on the embedded (sqlite:) store, else this machine's first IPv4 address.",
    };

    private readonly Option<double> _lease = new("--lease-seconds")
    {
        Description = "Trial lease length, renewed every third of it; only a backstop (a silo declared dead loses its trials within about 2 s).",
        DefaultValueFactory = _ => 30,
    };

    private readonly Option<int> _gpuSlots = new("--gpu-slots")
    {
        Description = "GPU training slots, one per GPU: they train the trials of studies with device: cuda, which CPU slots never take. Default: 0.",
        DefaultValueFactory = _ => 0,
    };

    public SiloFlags(int defaultPort)
    {
        _port = new Option<int>("--silo-port")
        {
            Description = $"TCP port for silo-to-silo traffic (open it between the cluster's machines); 0 picks a free one. Default: {defaultPort.ToString(CultureInfo.InvariantCulture)}.",
            DefaultValueFactory = _ => defaultPort,
        };
    }

    public void AddTo(Command command)
    {
        command.Options.Add(_port);
        command.Options.Add(_address);
        command.Options.Add(_lease);
        command.Options.Add(_gpuSlots);
    }

    /// <summary>The longest lease: a backstop for a silo that is cut off yet not declared dead, not an epoch's length.</summary>
    public const int MaxLeaseSeconds = 86_400;

    /// <summary>The most training slots a silo takes (CPU slots: one dedicated thread each, with a model and its batch).</summary>
    public const int MaxSlots = 1024;

    /// <summary>Whether <paramref name="slots"/> is a number of CPU slots a silo can have; otherwise says why, naming the flag.</summary>
    public static bool SlotsValid(int slots)
    {
        if (slots is >= 1 and <= MaxSlots)
        {
            return true;
        }

        Console.Error.WriteLine($"error: --slots must be between 1 and {MaxSlots.ToString(CultureInfo.InvariantCulture)} (got {slots.ToString(CultureInfo.InvariantCulture)})");
        return false;
    }

    /// <summary>The silo settings these flags give, or null after printing an error that names the flag.</summary>
    public SiloSettings? Settings(ParseResult parse)
    {
        try
        {
            return Read(parse);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return null;
        }
    }

    private SiloSettings Read(ParseResult parse)
    {
        var port = parse.GetValue(_port);
        if (port is < 0 or > 65535)
        {
            throw new ArgumentException($"--silo-port must be between 0 and 65535 (got {port}).");
        }

        var lease = parse.GetValue(_lease);
        if (!(lease is >= 1 and <= MaxLeaseSeconds))
        {
            throw new ArgumentException($"--lease-seconds must be between 1 and {MaxLeaseSeconds.ToString(CultureInfo.InvariantCulture)} (one day; got {lease.ToString(CultureInfo.InvariantCulture)}).");
        }

        IPAddress? address = null;
        if (parse.GetValue(_address) is { } text && !IPAddress.TryParse(text, out address))
        {
            throw new ArgumentException($"--address must be an IP address (got '{text}').");
        }

        var gpuSlots = parse.GetValue(_gpuSlots);
        if (gpuSlots is < 0 or > 64)
        {
            throw new ArgumentException($"--gpu-slots must be between 0 and 64 (got {gpuSlots}).");
        }

        if (gpuSlots > 0)
        {
            // Checked now rather than by each device: cuda trial the slots would take and fail.
            try
            {
                Engine.Torch.TorchBackendFactory.DeviceFor("cuda");
            }
            catch (Engine.Training.TrainingEngineUnavailableException e)
            {
                throw new ArgumentException($"--gpu-slots {gpuSlots.ToString(CultureInfo.InvariantCulture)}: {e.Message}");
            }
        }

        return new SiloSettings { SiloPort = port, Address = address, Lease = TimeSpan.FromSeconds(lease), GpuSlots = gpuSlots };
    }
}
