using Microsoft.Extensions.Hosting;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// A test with a folder of its own and the silo and store it starts there: after the test the silo is stopped, the
/// store closed and the folder deleted.
/// </summary>
public abstract class SiloTest(string prefix) : IAsyncLifetime
{
    protected string Dir { get; } = Path.Combine(Path.GetTempPath(), prefix + Guid.NewGuid().ToString("N")[..10]);

    protected IHost? Silo { get; set; }

    protected ITrialStore? Store { get; set; }

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (Silo is not null)
        {
            await Silo.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token);
            Silo.Dispose();
        }

        if (Store is not null)
        {
            await Store.DisposeAsync();
        }

        Directory.Delete(Dir, recursive: true);
    }
}
