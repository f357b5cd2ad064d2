using System.CommandLine;
using Serilog;
using Serilog.Events;
using Sweeper.Cli;

Log.Logger = new LoggerConfiguration()
    .MinimumLevel.Is(Environment.GetEnvironmentVariable("SWEEPER_LOG_LEVEL") is { } level && Enum.TryParse<LogEventLevel>(level, true, out var l) ? l : LogEventLevel.Information)
    .WriteTo.Console(standardErrorFromLevel: LogEventLevel.Verbose, outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}")
    .CreateLogger();

try
{
    var root = new RootCommand("Sweeper: hyperparameter sweeps for cs231n-style models on CIFAR-10.");
    root.Subcommands.Add(TrainCommand.Create());
    root.Subcommands.Add(DataCommand.Create());
    return await root.Parse(args).InvokeAsync();
}
finally
{
    await Log.CloseAndFlushAsync();
}
