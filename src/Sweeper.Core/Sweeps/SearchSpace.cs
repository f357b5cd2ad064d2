namespace Sweeper.Core.Sweeps;

/// <summary>One point of the search: its number in the study, its parameters and its training seed.</summary>
public sealed record ProposedTrial(int Number, IReadOnlyDictionary<string, object> Parameters, ulong Seed);

/// <summary>A finished trial as a sampler sees it (for samplers that learn from results).</summary>
public sealed record FinishedTrial(IReadOnlyDictionary<string, object> Parameters, double? Value);

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
    public static ISampler CreateSampler(SweepDefinition sweep) => sweep.Method switch
    {
        "grid" => new GridSampler(),
        "random" => new RandomSampler(),
        _ => throw new ArgumentException($"unknown search method {sweep.Method}."),
    };

    /// <summary>How many trials the sweep creates: the grid's size, or the budget for random search.</summary>
    public static long TrialCount(SweepDefinition sweep) => sweep.Method == "grid" ? GridSize(sweep) : sweep.Budget.MaxTrials;

    /// <summary>Size of the grid: the product of the unconditional axes, each point times the product of its matching conditional blocks.</summary>
    public static long GridSize(SweepDefinition sweep)
    {
        long total = 0;
        foreach (var point in Cartesian(sweep.Parameters))
        {
            long sub = 1;
            foreach (var block in sweep.Conditions.Where(c => c.Matches(point)))
            {
                sub = checked(sub * block.Parameters.Values.Aggregate(1L, (a, d) => checked(a * (d.GridValues?.Count ?? 1))));
            }

            total = checked(total + sub);
            if (total > 100_000_000)
            {
                return total;
            }
        }

        return total;
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
            var blocks = sweep.Conditions.Where(c => c.Matches(point)).SelectMany(c => c.Parameters).ToDictionary();
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
