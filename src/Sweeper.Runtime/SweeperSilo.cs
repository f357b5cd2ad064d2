using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Serilog.Extensions.Logging;
using Sweeper.Core.Trials;
using Sweeper.Runtime.Cluster;

namespace Sweeper.Runtime;

/// <summary>
/// Builds the Orleans silo of one process: the study and trial grains, the training slots, the housekeeping, and the
/// store as Orleans' membership table (so a cluster needs exactly one database). The same code path serves one machine
/// (SQLite, loopback) and a cluster (PostgreSQL).
/// </summary>
public static class SweeperSilo
{
    /// <summary>
    /// True when <paramref name="e"/> (or an exception inside it) says that the silo's port is taken by another
    /// process. Orleans' AddressInUseException carries the socket's own error as its inner exception.
    /// </summary>
    public static bool IsPortInUse(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse }
                || (e is AggregateException a && a.InnerExceptions.Any(IsPortInUse)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// <paramref name="logger"/> without the events of a start that failed on a port taken by another process: the
    /// start throws, and the command that started the silo says so in one line naming the flag. Orleans logged it
    /// three times before (one error per start stage that gave up).
    /// </summary>
    private static Serilog.ILogger WithoutPortInUse(Serilog.ILogger logger)
    {
        // As quiet as the logger it wraps: events it would drop are not even made (a silo logs each trial it ends).
        var enabled = Enum.GetValues<Serilog.Events.LogEventLevel>().Where(logger.IsEnabled).ToList();
        return enabled.Count == 0
            ? logger
            : new Serilog.LoggerConfiguration().MinimumLevel.Is(enabled.Min()).Filter.ByExcluding(e => IsPortInUse(e.Exception)).WriteTo.Logger(logger).CreateLogger();
    }

    /// <param name="clock">The runtime's clock (idle rechecks, result times). Default: the system's.</param>
    public static IHost Build(ITrialStore store, ITrialRunner runner, SiloSettings settings, Serilog.ILogger logger, TimeProvider? clock = null, Action<IServiceCollection>? services = null)
    {
        if (store is not IMembershipStore membership)
        {
            throw new ArgumentException("this store cannot hold Orleans' membership table.", nameof(store));
        }

        var embedded = store is Storage.SqliteTrialStore;
        var address = settings.Address ?? (embedded ? IPAddress.Loopback : SiloSettings.MachineAddress());
        var port = settings.SiloPort == 0 ? SiloSettings.FreePort() : settings.SiloPort;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new SerilogLoggerProvider(WithoutPortInUse(logger)));
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        // Orleans' own chatter (placement retries, GC advice) is not for users; what matters (a silo declared dead, a
        // trial resumed) is logged by our grains and the cluster watcher.
        builder.Logging.AddFilter("Orleans", LogLevel.Error);
        // Orleans' placement retries through Polly: a retry that works says nothing a user needs (seen as two 500-character
        // warnings on each surviving silo whenever a silo dies); one that does not ends in an error of its own.
        builder.Logging.AddFilter("Polly", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // A start that fails is said once, by the command, naming the cause (e.g. the silo port taken), not twice.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.Critical);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddSingleton(store);
        // Trials of a sweep with program: run the user's program; the others, the runner given (our models).
        builder.Services.AddSingleton<ITrialRunner>(runner as DispatchingTrialRunner ?? new DispatchingTrialRunner(runner, new ProgramTrialRunner()));
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(clock ?? TimeProvider.System);
        builder.Services.AddSingleton<StudyDirectory>();
        builder.Services.AddSingleton<TrainingSlots>();
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = "sweeper";
            });
            silo.Configure<SiloOptions>(o => o.SiloName = $"{Environment.MachineName}-{Environment.ProcessId}");
            // No gateway: nothing outside the cluster calls grains (status and the dashboard read the store).
            silo.ConfigureEndpoints(address, port, gatewayPort: 0, listenOnAnyHostAddress: !IPAddress.IsLoopback(address));
            silo.Services.AddStoreMembership(membership);
            silo.Services.AddSingleton<IFatalErrorHandler, SiloDeathHandler>();
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                // A silo that misses MissedProbes probes of ProbeTimeout is declared dead (about 2 s on a LAN, where
                // Orleans' defaults take 11-18 s); its trials then resume elsewhere at once.
                o.ProbeTimeout = settings.ProbeTimeout;
                o.MaxProbeTimeout = settings.ProbeTimeout * 2;
                o.NumMissedProbesLimit = settings.MissedProbes;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
                o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
                o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(10);
                o.DefunctSiloExpiration = TimeSpan.FromHours(1);
                o.DefunctSiloCleanupPeriod = TimeSpan.FromMinutes(10);
            });
        });

        // Registered after the silo: started once it is active, stopped before it (slots hand their trials back first).
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TrainingSlots>());
        builder.Services.AddHostedService<ClusterWatcher>();
        services?.Invoke(builder.Services); // e.g. a test's grain call filter
        return builder.Build();
    }
}
