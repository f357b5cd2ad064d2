using System.Numerics;

namespace Sweeper.Core.Sweeps;

/// <summary>One point of the search: its number in the study, its parameters and its training seed.</summary>
public sealed record ProposedTrial(int Number, IReadOnlyDictionary<string, object> Parameters, ulong Seed);

/// <summary>A finished trial as a sampler sees it (for samplers that learn from results).</summary>
public sealed record FinishedTrial(IReadOnlyDictionary<string, object> Parameters, double? Value);

/// <summary>
/// A grid's size: <paramref name="Trials"/> in all, <paramref name="Points"/> of the unconditional axes, and for each
/// conditions block the points it matches (<paramref name="BlockPoints"/>, in the blocks' order).
/// </summary>
public sealed record GridShape(BigInteger Trials, BigInteger Points, IReadOnlyList<BigInteger> BlockPoints);

/// <summary>
/// Proposes trials. Grid and random search propose every trial up front; a model-based sampler (Bayesian
/// optimisation) would use <paramref name="history"/> and be asked again as trials finish.
/// </summary>
public interface ISampler
{
    string Name { get; }

    /// <summary>Up to <paramref name="count"/> trials numbered from <paramref name="firstNumber"/>. Deterministic for a given sweep seed.</summary>
    IReadOnlyList<ProposedTrial> Propose(SweepDefinition sweep, int count, IReadOnlyList<FinishedTrial>? history = null, int firstNumber = 0);
}

public static class SearchSpace
{
    /// <summary>
    /// The sampler of the sweep's method. For <c>bayes</c> (TPE) this proposes trials one after the other from a history
    /// of finished ones (what <c>validate</c> shows: the start-up trials); the study's coordinator proposes each trial when
    /// a slot frees up instead, from the study's whole history (<see cref="Search.TpeSampler"/>).
    /// </summary>
    public static ISampler CreateSampler(SweepDefinition sweep) => sweep.Method switch
    {
        "grid" => new GridSampler(),
        "random" => new RandomSampler(),
        "bayes" => new Search.BayesSampler(TpeOptionsOf(sweep)),
        _ => throw new ArgumentException($"unknown search method {sweep.Method}."),
    };

    /// <summary>TPE's options from the sweep's <c>bayes:</c> block (start-up trials and candidates; Optuna's defaults otherwise).</summary>
    public static Search.TpeOptions TpeOptionsOf(SweepDefinition sweep) =>
        new() { StartupTrials = sweep.Bayes.StartupTrials, EiCandidates = sweep.Bayes.Candidates };

    /// <summary>Whether the study's trials are proposed one at a time as slots free up (Bayesian search) rather than all at its creation.</summary>
    public static bool ProposesAsItGoes(SweepDefinition sweep) => sweep.Method == "bayes";

    /// <summary>The most trials a grid may have: a sweep file whose grid is larger is refused when it is read.</summary>
    public const long MaxGridTrials = 1_000_000;

    /// <summary>How many trials the sweep creates: the grid's size, or the budget (run_cap) for random and bayes search.</summary>
    public static long TrialCount(SweepDefinition sweep) => sweep.Method == "grid" ? GridSize(sweep) : sweep.Budget.MaxTrials;

    /// <summary>
    /// Size of the grid: over the points of the unconditional axes, the product of the axes of the conditional blocks
    /// that match each point. Counted without enumerating the grid, exactly; a size past <see cref="long.MaxValue"/>
    /// reads as <see cref="long.MaxValue"/>. A continuous axis counts as one value (a grid refuses it anyway).
    /// </summary>
    public static long GridSize(SweepDefinition sweep) => (long)BigInteger.Min(CountGrid(sweep).Trials, long.MaxValue);

    /// <summary>
    /// The grid's size and, for each conditions block, how many unconditional points it matches. A block's axes
    /// multiply the points it matches; when several matching blocks name one parameter, the last one's axis counts
    /// (as in <see cref="GridSampler"/> and <see cref="RandomSampler"/>, where the last block's value wins).
    /// <para>
    /// Only the values that some <c>when</c> names can tell points apart, so the count goes over the unconditional
    /// axes one at a time keeping, for each set of blocks still matching, how many partial points lead to it: the work
    /// grows with the values the conditions name, not with the size of the grid.
    /// </para>
    /// </summary>
    public static GridShape CountGrid(SweepDefinition sweep)
    {
        var blocks = sweep.Conditions;
        var matching = new Dictionary<string, BigInteger> { [new string('1', blocks.Count)] = BigInteger.One };
        BigInteger points = BigInteger.One;
        foreach (var (name, domain) in sweep.Parameters)
        {
            var size = new BigInteger(domain.GridCount ?? 1);
            points *= size;
            var testing = Enumerable.Range(0, blocks.Count).Where(b => blocks[b].When.ContainsKey(name)).ToList();
            if (testing.Count == 0)
            {
                foreach (var key in matching.Keys.ToList())
                {
                    matching[key] *= size;
                }

                continue;
            }

            // The values some block names for this axis (those the axis has), each with the blocks it satisfies; every
            // other value of the axis satisfies none of them.
            var named = testing.SelectMany(b => blocks[b].When[name]).Select(ParamValue.Format).Distinct().Where(domain.GridContains).ToList();
            var classes = named.Select(v => (Satisfied: testing.Where(b => blocks[b].When[name].Any(w => ParamValue.Format(w) == v)).ToHashSet(), Count: BigInteger.One)).ToList();
            if (size > named.Count)
            {
                classes.Add((new HashSet<int>(), size - named.Count));
            }

            var next = new Dictionary<string, BigInteger>();
            foreach (var (state, count) in matching)
            {
                foreach (var (satisfied, n) in classes)
                {
                    var chars = state.ToCharArray();
                    foreach (var b in testing.Where(b => !satisfied.Contains(b)))
                    {
                        chars[b] = '0';
                    }

                    var key = new string(chars);
                    next[key] = next.GetValueOrDefault(key) + (count * n);
                }
            }

            matching = next;
        }

        var trials = BigInteger.Zero;
        var blockPoints = new BigInteger[blocks.Count];
        foreach (var (state, count) in matching)
        {
            var axes = new Dictionary<string, long>();
            for (var b = 0; b < blocks.Count; b++)
            {
                if (state[b] == '1')
                {
                    blockPoints[b] += count;
                    foreach (var (name, domain) in blocks[b].Parameters)
                    {
                        axes[name] = domain.GridCount ?? 1;
                    }
                }
            }

            trials += axes.Values.Aggregate(count, (product, size) => product * size);
        }

        return new GridShape(trials, points, blockPoints);
    }

    /// <summary>The seed a trial trains with, derived from the study seed and the trial number.</summary>
    public static ulong TrialSeed(ulong studySeed, int number) => Rng.Derive(studySeed, (ulong)number + 1000).NextULong();

    internal static IEnumerable<Dictionary<string, object>> Cartesian(IReadOnlyDictionary<string, ParameterDomain> domains)
    {
        IEnumerable<Dictionary<string, object>> acc = [new Dictionary<string, object>()];
        foreach (var (name, domain) in domains)
        {
            var values = domain.GridValues ?? throw new ArgumentException($"{name} has no grid values.");
            acc = acc.SelectMany(point => values.Select(v => new Dictionary<string, object>(point) { [name] = v }));
        }

        return acc;
    }
}

/// <summary>The cartesian product of every parameter's values, in file order (the last parameter varies fastest).</summary>
public sealed class GridSampler : ISampler
{
    public string Name => "grid";

    public IReadOnlyList<ProposedTrial> Propose(SweepDefinition sweep, int count, IReadOnlyList<FinishedTrial>? history = null, int firstNumber = 0)
    {
        var trials = new List<ProposedTrial>();
        var number = 0;
        foreach (var point in SearchSpace.Cartesian(sweep.Parameters))
        {
            if (trials.Count >= count)
            {
                break;
            }

            // The matching blocks' parameters; one that several blocks name takes the last block's values.
            var blocks = new Dictionary<string, ParameterDomain>();
            foreach (var (name, domain) in sweep.Conditions.Where(c => c.Matches(point)).SelectMany(c => c.Parameters))
            {
                blocks[name] = domain;
            }

            foreach (var extra in SearchSpace.Cartesian(blocks))
            {
                if (number >= firstNumber && trials.Count < count)
                {
                    var all = new Dictionary<string, object>(point);
                    foreach (var kv in extra)
                    {
                        all[kv.Key] = kv.Value;
                    }

                    trials.Add(new ProposedTrial(number, all, SearchSpace.TrialSeed(sweep.Seed, number)));
                }

                number++;
            }
        }

        return trials;
    }
}

/// <summary>Independent draws: a value list is a uniform choice, distributions are sampled. Trial i depends only on the seed and i.</summary>
public sealed class RandomSampler : ISampler
{
    public string Name => "random";

    public IReadOnlyList<ProposedTrial> Propose(SweepDefinition sweep, int count, IReadOnlyList<FinishedTrial>? history = null, int firstNumber = 0)
    {
        var trials = new List<ProposedTrial>();
        for (var number = firstNumber; number < firstNumber + count; number++)
        {
            var rng = Rng.Derive(sweep.Seed, (ulong)number);
            var point = new Dictionary<string, object>();
            foreach (var (name, domain) in sweep.Parameters)
            {
                point[name] = domain.Sample(rng);
            }

            foreach (var block in sweep.Conditions.Where(c => c.Matches(point)).ToList())
            {
                foreach (var (name, domain) in block.Parameters)
                {
                    point[name] = domain.Sample(rng);
                }
            }

            trials.Add(new ProposedTrial(number, point, SearchSpace.TrialSeed(sweep.Seed, number)));
        }

        return trials;
    }
}
