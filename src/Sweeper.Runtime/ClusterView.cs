using Sweeper.Core.Queries;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>A trial a silo trains now.</summary>
public sealed record RunningTrial(string Study, int Number, int Epochs);

/// <summary>
/// One silo as <c>sweeper status</c> and the dashboard show it: from Orleans' membership table (its status and last
/// "I am alive"), its slot count (its own record in the store) and the running trials whose lease it holds.
/// <see cref="State"/>: see <see cref="ClusterView.StateOf"/>.
/// </summary>
public sealed record SiloView(
    string Address, string Host, string Name, string State, int Slots, int Busy, DateTimeOffset StartedAt, DateTimeOffset LastAlive, IReadOnlyList<RunningTrial> Trials)
{
    public bool Alive => State == "alive";
}

/// <summary>Reads the cluster's silos from the store (no grain call: status and the dashboard work with every silo down).</summary>
public static class ClusterView
{
    /// <summary>
    /// A silo's state as users read it: <c>alive</c> (active, and said so within 30 s); <c>unresponsive</c> (active in
    /// the table but silent: killed while no other silo was there to declare it dead); <c>stopped</c> (it left the
    /// cluster itself, e.g. on Ctrl-C: Orleans marks that Dead too; told by the silo's own record of its clean stop,
    /// <paramref name="stoppedCleanly"/>, or, where it could not write that, by its row: the silo itself the only vote
    /// against it and no successor); <c>dead</c> (declared dead by other silos, or by its own successor: a silo
    /// restarted on the same address and port); <c>joining</c>; <c>stopping</c>.
    /// </summary>
    public static string StateOf(MemberRow member, IReadOnlyList<MemberRow> members, DateTimeOffset now, bool stoppedCleanly = false) => member.Status switch
    {
        MemberRow.ActiveStatus => now - member.IAmAliveTime < TimeSpan.FromSeconds(30) ? "alive" : "unresponsive",
        "Dead" => stoppedCleanly || (Cluster.StoreMembershipTable.Suspecters(member).All(voter => voter == member.Address) && !members.Any(other => Succeeds(other, member))) ? "stopped" : "dead",
        "Joining" or "Created" => "joining",
        _ => "stopping",
    };

    /// <summary>Whether <paramref name="later"/> is a newer generation of <paramref name="earlier"/>'s address and port ("ip:port@generation").</summary>
    private static bool Succeeds(MemberRow later, MemberRow earlier)
    {
        static (string Endpoint, long Generation)? Parse(string address) =>
            address.LastIndexOf('@') is var at and > 0 && long.TryParse(address[(at + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var generation)
                ? (address[..at], generation)
                : null;
        return Parse(later.Address) is { } l && Parse(earlier.Address) is { } e && l.Endpoint == e.Endpoint && l.Generation > e.Generation;
    }

    /// <summary>Silos of the cluster, alive first (then by address); dead ones until their entry is cleaned up (an hour).</summary>
    public static async Task<IReadOnlyList<SiloView>> SilosAsync(ITrialStore store, string clusterId = "sweeper", TimeProvider? clock = null, CancellationToken cancellationToken = default)
    {
        if (store is not IMembershipStore membership)
        {
            return [];
        }

        var members = (await membership.ReadMembersAsync(clusterId, null, cancellationToken)).Members;
        var workers = (await store.GetWorkersAsync(cancellationToken)).ToDictionary(w => w.Id);
        var running = new List<(string Owner, RunningTrial Trial)>();
        foreach (var study in await store.ListStudiesAsync(cancellationToken))
        {
            if (study.Closed)
            {
                continue;
            }

            var (trials, _) = await store.QueryTrialsAsync(study.Name, new TrialQuery(new Comparison("state", "=", "running", 0), [], 0, 100_000, CountMatches: false), cancellationToken);
            running.AddRange(trials.Where(t => t.Owner is not null).Select(t => (t.Owner!, new RunningTrial(study.Name, t.Number, t.EpochsDone))));
        }

        var now = (clock ?? TimeProvider.System).GetUtcNow();
        return members.Select(m =>
            {
                var mine = running.Where(r => r.Owner.StartsWith(m.Address + "/", StringComparison.Ordinal)).ToList();
                var worker = workers.GetValueOrDefault(m.Address);
                // Alive by either of its two heartbeats in the store: Orleans' "I am alive" in its membership row, or the
                // silo's own every 5 s. After a store outage the first lagged the second by 10-20 s (a write retried
                // inside Orleans' loop), and the silo is not unresponsive meanwhile.
                var row = worker is not null && worker.LastHeartbeat > m.IAmAliveTime ? m with { IAmAliveTime = worker.LastHeartbeat } : m;

                // Busy slots, not running trials: a slot takes its next trial while the outcome of its last one is still
                // being written, and for that moment the store holds two running trials of one slot.
                var busy = mine.Select(r => r.Owner).Distinct(StringComparer.Ordinal).Count();
                return new SiloView(m.Address, m.HostName, m.SiloName, StateOf(row, members, now, worker?.StoppedAt is not null), worker?.Slots ?? 0, busy, m.StartTime, row.IAmAliveTime, mine.Select(r => r.Trial).ToList());
            })
            .OrderBy(s => s.Alive ? 0 : 1).ThenBy(s => s.Address, StringComparer.Ordinal)
            .ToList();
    }
}
