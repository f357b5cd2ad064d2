using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>Whether a study looks for the smallest or the largest value of its metric.</summary>
public enum Goal
{
    Minimize,
    Maximize,
}

/// <summary>Reading a sweep file's <c>metric.goal</c>.</summary>
public static class Goals
{
    /// <summary>"maximize" or "minimize" (as a sweep file writes them).</summary>
    public static Goal Parse(string goal) => goal switch
    {
        "maximize" => Goal.Maximize,
        "minimize" => Goal.Minimize,
        _ => throw new ArgumentException($"goal must be maximize or minimize (got {goal})."),
    };

    /// <summary>
    /// Sort key in which smaller is better whatever the goal: the value, negated when maximizing; a missing or NaN value
    /// is +infinity, the worst.
    /// </summary>
    public static double Loss(this Goal goal, double? value) =>
        value is not { } v || double.IsNaN(v) ? double.PositiveInfinity : goal == Goal.Maximize ? -v : v;
}

/// <summary>A parameter of the space and how it is searched.</summary>
public sealed record SpaceParameter(string Name, SearchDimension Dimension);

/// <summary>Parameters that exist only when the unconditional parameters named in <paramref name="When"/> have one of the listed values.</summary>
public sealed record SpaceBlock(IReadOnlyDictionary<string, IReadOnlyList<object>> When, IReadOnlyList<SpaceParameter> Parameters)
{
    /// <summary>Whether <paramref name="assignment"/> meets every condition (values compared as <see cref="ParamValue.Format"/> writes them, as <see cref="ConditionalBlock.Matches"/> does).</summary>
    public bool Matches(IReadOnlyDictionary<string, object> assignment) =>
        When.All(kv => assignment.TryGetValue(kv.Key, out var v) && kv.Value.Any(w => ParamValue.Format(w) == ParamValue.Format(v)));
}

/// <summary>
/// A study's parameters as a model-based sampler sees them: the unconditional ones in order, then the conditions
/// blocks. A trial has a block's parameters when the block matches its unconditional values; when several matching
/// blocks name one parameter, the last one's dimension counts (as in <see cref="RandomSampler"/>).
/// </summary>
public sealed record ParameterSpace(IReadOnlyList<SpaceParameter> Parameters, IReadOnlyList<SpaceBlock> Blocks)
{
    /// <summary>The space of a parsed sweep file (each domain through <see cref="SearchDimension.Of(ParameterDomain)"/>).</summary>
    public static ParameterSpace Of(SweepDefinition sweep) => new(
        [.. sweep.Parameters.Select(kv => new SpaceParameter(kv.Key, SearchDimension.Of(kv.Value)))],
        [.. sweep.Conditions.Select(c => new SpaceBlock(c.When, [.. c.Parameters.Select(kv => new SpaceParameter(kv.Key, SearchDimension.Of(kv.Value)))]))]);

    /// <summary>The conditional parameters a trial with these unconditional values has, each with its dimension (the last matching block's).</summary>
    public IReadOnlyList<SpaceParameter> ConditionalFor(IReadOnlyDictionary<string, object> unconditional)
    {
        var chosen = new Dictionary<string, SpaceParameter>();
        var order = new List<string>();
        foreach (var block in Blocks.Where(b => b.Matches(unconditional)))
        {
            foreach (var p in block.Parameters)
            {
                if (!chosen.ContainsKey(p.Name))
                {
                    order.Add(p.Name);
                }

                chosen[p.Name] = p;
            }
        }

        return [.. order.Select(n => chosen[n])];
    }
}
