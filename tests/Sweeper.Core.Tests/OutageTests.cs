using Sweeper.Core.Trials;

namespace Sweeper.Core.Tests;

public class OutageTests
{
    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void A_run_of_the_same_failure_is_said_once_and_its_end_with_its_length()
    {
        var clock = new Clock();
        var outage = new Outage(clock);
        Assert.Null(outage.Succeeded()); // nothing to end
        Assert.False(outage.Ongoing);

        Assert.True(outage.Failed("store unreachable"));
        clock.Now += TimeSpan.FromSeconds(5);
        Assert.False(outage.Failed("store unreachable"));
        Assert.False(outage.Failed("store unreachable"));
        Assert.True(outage.Ongoing);

        // A different failure within the run is said; the run is counted from its first failure.
        Assert.True(outage.Failed("grain call timed out"));
        Assert.False(outage.Failed("grain call timed out"));
        clock.Now += TimeSpan.FromSeconds(55);
        Assert.Equal(TimeSpan.FromSeconds(60), outage.Succeeded());
        Assert.Null(outage.Succeeded());

        // The next run starts afresh: its first failure is said again, even with the same words.
        Assert.True(outage.Failed("grain call timed out"));
        clock.Now += TimeSpan.FromSeconds(2);
        Assert.Equal(TimeSpan.FromSeconds(2), outage.Succeeded());
    }
}
