using System.CommandLine;
using System.Runtime.InteropServices;
using Serilog;
using Serilog.Events;
using Sweeper.Cli;

var logLevel = Environment.GetEnvironmentVariable("SWEEPER_LOG_LEVEL") is { } level && Enum.TryParse<LogEventLevel>(level, true, out var l) ? l : LogEventLevel.Information;
Log.Logger = new LoggerConfiguration()
    .MinimumLevel.Is(logLevel)
    .WriteTo.Sink(new LiveConsole(stackTraces: logLevel <= LogEventLevel.Debug))
    .CreateLogger();

// Ctrl-C (SIGINT) and SIGTERM cancel the command's token instead of killing the process, so that a worker can
// hand its trial back and `sweeper run` can stop its workers cleanly. A second signal still stops at once.
using var shutdown = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = !shutdown.IsCancellationRequested;
    shutdown.Cancel();
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

try
{
    var parse = SweeperProgram.CreateRootCommand().Parse(args);
    if (parse.Errors.Count > 0 && !parse.Tokens.Any(t => t.Value is "--help" or "-h" or "-?"))
    {
        // A bad argument: exit 2 (as README says), one line per problem in the user's terms, and where to read more
        // (not the whole help text, nor .NET's type names).
        return ParseErrors.Report(parse);
    }

    return await parse.InvokeAsync(
        new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false }, shutdown.Token);
}
catch (Exception e) when (e is Sweeper.Core.Trials.StoreOpenException or CliException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    // A store address that cannot be read (not a URL, no host, a port that is not a number) is a bad argument.
    return e is Sweeper.Core.Trials.StoreOpenException { InnerException: ArgumentException or FormatException } ? 2 : 1;
}
catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
{
    return 130;
}
catch (Exception e)
{
    // Nothing else should get here; if it does, one line for the user and the details only when asked for.
    Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message}" + (logLevel <= LogEventLevel.Debug ? Environment.NewLine + e : " (run with SWEEPER_LOG_LEVEL=Debug for details)"));
    return 1;
}
finally
{
    await Log.CloseAndFlushAsync();
}
