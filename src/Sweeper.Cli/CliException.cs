namespace Sweeper.Cli;

/// <summary>A failure whose message says all a user needs (what, where, which flag to change): printed as it is, exit status 1.</summary>
public sealed class CliException(string message) : Exception(message);
