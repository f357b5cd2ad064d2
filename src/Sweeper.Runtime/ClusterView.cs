using Sweeper.Core.Queries;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>A trial a silo trains now.</summary>
public sealed record RunningTrial(string Study, int Number, int Epochs);

/// <summary>
/// One silo as <c>sweeper status</c> and the dashboard show it: from Orleans' membership table (its status and last
/// "I am alive"), its slot count (its own record in the store) and the running trials whose lease it holds.
/// <see cref="State"/>: <c>alive</c> (active, and said so within 30 s), <c>unresponsive</c> (active in the table but
/// silent: killed while no other silo was there to declare it dead), <c>dead</c> (declared dead, or stopped),
/// <c>joining</c>, <c>stopping</c>.
/// </summary>
public sealed record SiloView(
    string Address, string Host, string Name, string State, int Slots, int Busy, DateTimeOffset StartedAt, DateTimeOffset LastAlive, IReadOnlyList<RunningTrial> Trials)
{
    public bool Alive => State == "alive";
}

/// <summary>Reads the cluster's silos from the store (no grain call: status and the dashboard work with every silo down).</summary>
public static class ClusterView
{
    /// <summary>Silos of the cluster, alive first (then by address); dead ones until their entry is cleaned up (an hour).</summary>
    public static async Task<IReadOnlyList<SiloView>> SilosAsync(ITrialStore store, string clusterId = "sweeper", TimeProvider? clock = null, CancellationToken cancellationToken = default)
    {
        if (store is not IMembershipStore membership)
        {
            return [];
        }

        var members = (await membership.ReadMembersAsync(clusterId, null, cancellationToken)).Members;
        var slots = (await store.GetWorkersAsync(cancellationToken)).ToDictionary(w => w.Id, w => w.Slots);
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
                var mine = running.Where(r => r.Owner.StartsWith(m.Address + "/", StringComparison.Ordinal)).Select(r => r.Trial).ToList();
                var state = m.Status switch
                {
                    MemberRow.ActiveStatus => now - m.IAmAliveTime < TimeSpan.FromSeconds(30) ? "alive" : "unresponsive",
                    "Dead" => "dead",
                    "Joining" or "Created" => "joining",
                    _ => "stopping",
                };
                return new SiloView(m.Address, m.HostName, m.SiloName, state, slots.GetValueOrDefault(m.Address), mine.Count, m.StartTime, m.IAmAliveTime, mine);
            })
            .OrderBy(s => s.Alive ? 0 : 1).ThenBy(s => s.Address, StringComparer.Ordinal)
            .ToList();
    }
}
