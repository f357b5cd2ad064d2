namespace Sweeper.Core.Sweeps;

/// <summary>A sweep file that cannot be used, with the place and key at fault: <c>file:line:column: key: message</c>.</summary>
public sealed class SweepFileException(string file, int line, int column, string key, string problem)
    : Exception($"{file}:{line}:{column}: {(key.Length > 0 ? key + ": " : "")}{problem}")
{
    public string File { get; } = file;

    public int Line { get; } = line;

    public int Column { get; } = column;

    /// <summary>The key's path, e.g. parameters.learning_rate.min.</summary>
    public string Key { get; } = key;

    public string Problem { get; } = problem;
}
