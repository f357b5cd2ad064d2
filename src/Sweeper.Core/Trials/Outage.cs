namespace Sweeper.Core.Trials;

/// <summary>
/// Says a run of failures once: a loop that retries something (a store out of reach, housekeeping that cannot run)
/// reports the first failure, stays quiet while the same failure repeats, reports a different one, and reports the
/// first success after them with how long they lasted. Not thread-safe: one per loop.
/// </summary>
public sealed class Outage(TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private DateTimeOffset? _since;
    private string? _said;

    /// <summary>Whether failures are going on (the last attempt failed).</summary>
    public bool Ongoing => _since is not null;

    /// <summary>Records a failure; true when it is to be said: the first of a run, or one that says something else than the last said.</summary>
    public bool Failed(string message)
    {
        _since ??= _clock.GetUtcNow();
        if (message == _said)
        {
            return false;
        }

        _said = message;
        return true;
    }

    /// <summary>Records a success; the length of the run of failures it ends, or null when there was none.</summary>
    public TimeSpan? Succeeded()
    {
        if (_since is not { } since)
        {
            return null;
        }

        _since = null;
        _said = null;
        return _clock.GetUtcNow() - since;
    }
}
