using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>The studies a silo serves: its one study, or every open study in the store (oldest first), re-read at most every 2 s.</summary>
public sealed class StudyDirectory(ITrialStore store, SiloSettings settings, TimeProvider clock)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<string> _open = [];
    private DateTimeOffset _readAt = DateTimeOffset.MinValue;

    public async Task<IReadOnlyList<string>> OpenAsync(CancellationToken cancellationToken)
    {
        if (settings.Study is { } one)
        {
            return [one];
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (clock.GetUtcNow() - _readAt > TimeSpan.FromSeconds(2))
            {
                _open = [.. (await store.ListStudiesAsync(cancellationToken)).Where(s => !s.Closed).Select(s => s.Name)];
                _readAt = clock.GetUtcNow();
            }

            return _open;
        }
        finally
        {
            _gate.Release();
        }
    }
}
