using Sweeper.Core.Trials;
using Sweeper.Runtime.Cluster;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// How <c>sweeper status</c> and the dashboard name a silo's state, from membership rows as Orleans writes them: a silo
/// that leaves by itself marks its own entry Dead with itself as the only vote; one declared dead carries its
/// accusers' votes.
/// </summary>
public class ClusterViewTests
{
    private static readonly DateTime Now = new(2026, 12, 3, 8, 0, 0, DateTimeKind.Utc);

    private static MemberRow Row(string address, SiloStatus status, TimeSpan? silentFor = null, params string[] voters) =>
        StoreMembershipTable.ToRow(new MembershipEntry
        {
            SiloAddress = SiloAddress.FromParsableString(address),
            Status = status,
            HostName = "host",
            SiloName = "silo",
            StartTime = Now.AddMinutes(-5),
            IAmAliveTime = Now - (silentFor ?? TimeSpan.FromSeconds(2)),
            SuspectTimes = [.. voters.Select(v => Tuple.Create(SiloAddress.FromParsableString(v), Now))],
        });

    private static string State(MemberRow row, params MemberRow[] others) => ClusterView.StateOf(row, [row, .. others], new DateTimeOffset(Now));

    [Fact]
    public void A_silo_that_left_by_itself_is_stopped_and_one_its_peers_declared_dead_is_dead()
    {
        const string A = "10.0.0.1:11111@100", B = "10.0.0.2:11111@100";
        Assert.Equal("alive", State(Row(A, SiloStatus.Active)));
        Assert.Equal("unresponsive", State(Row(A, SiloStatus.Active, TimeSpan.FromSeconds(45))));
        Assert.Equal("joining", State(Row(A, SiloStatus.Joining)));
        Assert.Equal("stopping", State(Row(A, SiloStatus.ShuttingDown)));

        // Ctrl-C: Orleans marks the silo's own entry Dead and lists the silo itself as the one that killed it.
        Assert.Equal("stopped", State(Row(A, SiloStatus.Dead, null, A)));
        Assert.Equal("stopped", State(Row(A, SiloStatus.Dead)));

        // kill -9: its peers voted it dead (with or without an earlier vote of its own).
        Assert.Equal("dead", State(Row(A, SiloStatus.Dead, null, B)));
        Assert.Equal("dead", State(Row(A, SiloStatus.Dead, null, A, B)));
    }

    [Fact]
    public void A_silo_whose_successor_on_the_same_address_and_port_declared_it_dead_is_dead()
    {
        // Killed, then restarted on the same port: the new generation marks the old entry Dead itself, with no peer vote.
        const string Old = "10.0.0.1:11111@100", New = "10.0.0.1:11111@200", OtherPort = "10.0.0.1:22222@300";
        Assert.Equal("dead", State(Row(Old, SiloStatus.Dead, null, Old), Row(New, SiloStatus.Active)));
        Assert.Equal("stopped", State(Row(Old, SiloStatus.Dead, null, Old), Row(OtherPort, SiloStatus.Active)));
        Assert.Equal("stopped", State(Row(New, SiloStatus.Dead, null, New), Row(Old, SiloStatus.Dead, null, Old)));

        // Stopped cleanly (its own record says so), then a new silo on its port: still stopped, whatever the votes.
        Assert.Equal("stopped", ClusterView.StateOf(Row(Old, SiloStatus.Dead, null, Old), [Row(Old, SiloStatus.Dead, null, Old), Row(New, SiloStatus.Active)], new DateTimeOffset(Now), stoppedCleanly: true));
        Assert.Equal("stopped", ClusterView.StateOf(Row(Old, SiloStatus.Dead, null, OtherPort), [Row(Old, SiloStatus.Dead, null, OtherPort)], new DateTimeOffset(Now), stoppedCleanly: true));
        Assert.Equal("alive", ClusterView.StateOf(Row(Old, SiloStatus.Active), [Row(Old, SiloStatus.Active)], new DateTimeOffset(Now), stoppedCleanly: true));
    }
}
