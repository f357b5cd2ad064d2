using System.CommandLine;

namespace Sweeper.Cli;

/// <summary>The command tree of the <c>sweeper</c> program (also used by tests that check deployment files against it).</summary>
public static class SweeperProgram
{
    /// <summary>Every environment variable the program reads.</summary>
    public static readonly IReadOnlyList<string> EnvironmentVariables =
        ["SWEEPER_STORE", "SWEEPER_STORE_PASSWORD", "SWEEPER_DASHBOARD_TOKEN", "SWEEPER_DATA", "SWEEPER_CACHE", "SWEEPER_LOG_LEVEL", "PGPASSWORD", "XDG_CACHE_HOME"];

    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("Sweeper: hyperparameter sweeps for cs231n-style models on CIFAR-10.");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        foreach (var command in SweepCommands.Create())
        {
            root.Subcommands.Add(command);
        }

        return root;
    }
}
