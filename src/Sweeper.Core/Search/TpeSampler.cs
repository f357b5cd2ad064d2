using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>TPE's settings. The defaults are Optuna's <c>TPESampler</c>'s (4.9 and later), each named where Optuna names it.</summary>
public sealed record TpeOptions
{
    /// <summary>Trials proposed at random before TPE starts: it starts once this many trials are complete or pruned (n_startup_trials). Default: 10.</summary>
    public int StartupTrials { get; init; } = 10;

    /// <summary>Candidates drawn from the good trials' estimator l(x), of which the best l(x) / g(x) is proposed (n_ei_candidates). Default: 24.</summary>
    public int EiCandidates { get; init; } = 24;

    /// <summary>Weight of the prior kernel against an observation's weight (prior_weight). Default: 1.</summary>
    public double PriorWeight { get; init; } = 1.0;

    /// <summary>Floor kernel widths at range / min(100, 1 + kernels) (consider_magic_clip). Default: true.</summary>
    public bool MagicClip { get; init; } = true;

    /// <summary>Let the outermost kernels measure to the end of the range (consider_endpoints). Default: false.</summary>
    public bool ConsiderEndpoints { get; init; }

    /// <summary>
    /// Count the prior's centre among the neighbours that set the kernels' widths, as Optuna did before 4.9 (its pull
    /// request 6574 took it out); it narrows the kernels near the middle of the range. Default: false (Optuna 4.9 on).
    /// </summary>
    public bool PriorAmongNeighbours { get; init; }

    /// <summary>
    /// Model the unconditional parameters jointly (multivariate TPE: product kernels, one per trial) instead of one by
    /// one; conditional parameters stay independent (multivariate). Default: false.
    /// </summary>
    public bool Multivariate { get; init; }

    /// <summary>Count running trials as bad observations, so that parallel workers do not all propose the same point (constant_liar). Default: true.</summary>
    public bool ConstantLiar { get; init; } = true;

    /// <summary>Good trials are the best ceiling(GammaFraction * n) of n, at most <see cref="GammaCap"/> (Optuna's default_gamma). Default: 0.1.</summary>
    public double GammaFraction { get; init; } = 0.1;

    /// <summary>The most good trials. Default: 25.</summary>
    public int GammaCap { get; init; } = 25;

    /// <summary>How many good trials there are among <paramref name="n"/> complete or pruned ones: min(ceil(0.1 n), 25) by default.</summary>
    public int GoodCount(int n) => Math.Min((int)Math.Ceiling(GammaFraction * n), GammaCap);

    /// <summary>
    /// The weights of n observations in trial-number order (Optuna's default_weights): 1 each up to 25; beyond, the
    /// newest 25 weigh 1 and the older ones ramp linearly from 1/n up to 1, so that old trials fade.
    /// </summary>
    public static double[] ObservationWeights(int n)
    {
        if (n < 25)
        {
            return Enumerable.Repeat(1.0, n).ToArray();
        }

        var ramp = n - 25;
        var w = new double[n];
        for (var i = 0; i < ramp; i++)
        {
            w[i] = ramp == 1 ? 1.0 / n : (1.0 / n) + (i * (1.0 - (1.0 / n)) / (ramp - 1));
        }

        for (var i = ramp; i < n; i++)
        {
            w[i] = 1.0;
        }

        return w;
    }
}

/// <summary>What became of a trial, as the sampler sees it.</summary>
public enum TrialOutcome
{
    /// <summary>Still training; with the constant liar its parameters count as a bad observation.</summary>
    Running,

    /// <summary>Finished with a value.</summary>
    Complete,

    /// <summary>Stopped early; ranked by how far it got, then by its last value.</summary>
    Pruned,

    /// <summary>Failed or diverged, or complete without a usable value: ignored (as Optuna ignores failed trials).</summary>
    Failed,
}

/// <summary>
/// One trial of a study's history: its number, its parameters, what became of it, and its value (for a pruned trial,
/// the last value it reported, at epoch <paramref name="Epoch"/>).
/// </summary>
public sealed record Observation(int Number, IReadOnlyDictionary<string, object> Parameters, TrialOutcome Outcome, double? Value = null, int Epoch = 0);

/// <summary>
/// The tree-structured Parzen estimator (Bergstra et al. 2011), independent per parameter (or, with
/// <see cref="TpeOptions.Multivariate"/>, joint over the unconditional ones), after Optuna's
/// <c>TPESampler</c>: once enough trials finished, they are split into the best ceiling(10%) ("good", at most 25) and
/// the rest; for each parameter a Parzen estimator l is fitted to the good trials' values and g to the others' (running
/// trials join g: the constant liar); 24 candidates are drawn from l and the one with the largest l / g is proposed.
/// Before that, and for parameters no trial has yet, values come from the parameter's own distribution.
/// <para>
/// A proposal is a pure function of the space, the history, the trial's number and the study's seed: every draw comes
/// from <c>Rng.Derive(seed, number)</c> (one stream per parameter, so that a conditional branch does not shift the
/// others' draws), and the history is read in trial-number order whatever order it is given in. A resumed study
/// therefore proposes exactly what an uninterrupted one would, given the same history.
/// </para>
/// <para>
/// Failed trials are ignored. Pruned trials count towards the number of finished trials, and are good only when too few
/// trials completed (the furthest-reaching first, then the best last value). A parameter that only some trials have (a
/// conditions block's) is fitted on the trials that have it, with values its dimension can hold.
/// </para>
/// </summary>
public sealed class TpeSampler
{
    /// <summary>Throws <see cref="ArgumentException"/> for settings TPE cannot work with.</summary>
    public TpeSampler(TpeOptions? options = null)
    {
        var o = options ?? new TpeOptions();
        if (o.StartupTrials < 0 || o.EiCandidates < 1 || !(o.PriorWeight >= 0) || !(o.GammaFraction > 0 && o.GammaFraction <= 1) || o.GammaCap < 1)
        {
            throw new ArgumentException(
                $"TPE needs start-up trials >= 0 (got {o.StartupTrials}), candidates >= 1 (got {o.EiCandidates}), a prior weight >= 0 (got {o.PriorWeight}), " +
                $"a gamma fraction in (0, 1] (got {o.GammaFraction}) and a gamma cap >= 1 (got {o.GammaCap}).", nameof(options));
        }

        Options = o;
    }

    public TpeOptions Options { get; }

    /// <summary>The parameters of trial <paramref name="number"/> (a trial with that number in the history is left out of it).</summary>
    public IReadOnlyDictionary<string, object> Propose(ParameterSpace space, IReadOnlyList<Observation> history, int number, ulong seed, Goal goal)
    {
        var trials = history.Where(t => t.Number != number).OrderBy(t => t.Number).ToList();
        var (good, bad, finished) = Split(trials, goal);
        var model = finished >= Options.StartupTrials;
        var root = Rng.Derive(seed, (ulong)number).NextULong();

        var joint = model && Options.Multivariate
            ? ChooseJoint([.. space.Parameters.Where(p => p.Dimension is NumericDimension or CategoricalDimension)], good, bad, root)
            : [];
        var point = new Dictionary<string, object>();
        foreach (var p in space.Parameters)
        {
            point[p.Name] = joint.TryGetValue(p.Name, out var v) ? v : Choose(p, model, good, bad, root);
        }

        foreach (var p in space.ConditionalFor(new Dictionary<string, object>(point)))
        {
            point[p.Name] = Choose(p, model, good, bad, root);
        }

        return point;
    }

    /// <summary>
    /// The good and the bad trials (each in trial-number order) and how many trials finished (complete or pruned).
    /// Good: the best ceil(10%) complete trials; when too few completed, the pruned ones that got furthest (then by their
    /// last value) fill up. Bad: every other finished trial, and the running ones when the constant liar is on.
    /// </summary>
    public (IReadOnlyList<Observation> Good, IReadOnlyList<Observation> Bad, int Finished) Split(IReadOnlyList<Observation> trials, Goal goal)
    {
        var complete = trials.Where(t => t.Outcome == TrialOutcome.Complete && t.Value is { } v && !double.IsNaN(v)).ToList();
        var pruned = trials.Where(t => t.Outcome == TrialOutcome.Pruned).ToList();
        var finished = complete.Count + pruned.Count;
        var goodCount = Options.GoodCount(finished);

        var rankedComplete = complete.OrderBy(t => goal.Loss(t.Value)).ThenBy(t => t.Number).ToList();
        var rankedPruned = pruned.OrderByDescending(t => t.Epoch).ThenBy(t => goal.Loss(t.Value)).ThenBy(t => t.Number).ToList();
        var fromComplete = Math.Min(goodCount, rankedComplete.Count);
        var fromPruned = Math.Min(goodCount - fromComplete, rankedPruned.Count);

        var good = rankedComplete.Take(fromComplete).Concat(rankedPruned.Take(fromPruned)).OrderBy(t => t.Number).ToList();
        var bad = rankedComplete.Skip(fromComplete).Concat(rankedPruned.Skip(fromPruned))
            .Concat(Options.ConstantLiar ? trials.Where(t => t.Outcome == TrialOutcome.Running) : [])
            .OrderBy(t => t.Number).ToList();
        return (good, bad, finished);
    }

    private object Choose(SpaceParameter p, bool model, IReadOnlyList<Observation> good, IReadOnlyList<Observation> bad, ulong root)
    {
        var rng = Rng.Derive(root, NameStream(p.Name));
        if (!model || p.Dimension is ConstantDimension)
        {
            return p.Dimension.SamplePrior(rng);
        }

        switch (p.Dimension)
        {
            case NumericDimension numeric:
                {
                    List<double> Values(IReadOnlyList<Observation> trials) =>
                        [.. trials.Select(t => t.Parameters.TryGetValue(p.Name, out var v) ? numeric.TryInternal(v) : null).OfType<double>()];
                    var goodValues = Values(good);
                    var badValues = Values(bad);
                    var l = new NumericParzenEstimator(numeric, goodValues, TpeOptions.ObservationWeights(goodValues.Count), Options);
                    var g = new NumericParzenEstimator(numeric, badValues, TpeOptions.ObservationWeights(badValues.Count), Options);
                    object best = null!;
                    var bestScore = double.NegativeInfinity;
                    var scores = new Dictionary<double, double>(); // candidates on a grid repeat: score each value once
                    for (var i = 0; i < Options.EiCandidates; i++)
                    {
                        var candidate = l.Sample(rng);
                        var x = ParamValue.AsDouble(candidate);
                        if (!scores.TryGetValue(x, out var score))
                        {
                            scores[x] = score = l.LogDensity(x) - g.LogDensity(x);
                        }

                        if (i == 0 || score > bestScore)
                        {
                            (best, bestScore) = (candidate, score);
                        }
                    }

                    return best;
                }

            case CategoricalDimension categorical:
                {
                    List<int> Indices(IReadOnlyList<Observation> trials) =>
                        [.. trials.Select(t => t.Parameters.TryGetValue(p.Name, out var v) ? categorical.IndexOf(v) : -1).Where(i => i >= 0)];
                    var goodIndices = Indices(good);
                    var badIndices = Indices(bad);
                    var n = categorical.Values.Count;
                    var l = new CategoricalParzenEstimator(n, goodIndices, TpeOptions.ObservationWeights(goodIndices.Count), Options);
                    var g = new CategoricalParzenEstimator(n, badIndices, TpeOptions.ObservationWeights(badIndices.Count), Options);
                    var best = 0;
                    var bestScore = double.NegativeInfinity;
                    for (var i = 0; i < Options.EiCandidates; i++)
                    {
                        var candidate = l.Sample(rng);
                        var score = l.LogDensity(candidate) - g.LogDensity(candidate);
                        if (i == 0 || score > bestScore)
                        {
                            (best, bestScore) = (candidate, score);
                        }
                    }

                    return categorical.Values[best];
                }

            default:
                throw new ArgumentException($"unknown kind of dimension {p.Dimension.GetType().Name} for {p.Name}.");
        }
    }

    /// <summary>
    /// Multivariate TPE over <paramref name="parameters"/>: l and g are joint estimators fitted on the good and bad
    /// trials that have a usable value for every one of them; 24 joint candidates from l, the best l / g wins.
    /// </summary>
    private Dictionary<string, object> ChooseJoint(IReadOnlyList<SpaceParameter> parameters, IReadOnlyList<Observation> good, IReadOnlyList<Observation> bad, ulong root)
    {
        if (parameters.Count == 0)
        {
            return [];
        }

        var dimensions = parameters.Select(p => p.Dimension).ToList();
        List<double[]> Rows(IReadOnlyList<Observation> trials)
        {
            var rows = new List<double[]>();
            foreach (var t in trials)
            {
                var row = new double[parameters.Count];
                var usable = true;
                for (var d = 0; d < parameters.Count && usable; d++)
                {
                    double? x = !t.Parameters.TryGetValue(parameters[d].Name, out var v) ? null : dimensions[d] switch
                    {
                        NumericDimension n => n.TryInternal(v),
                        CategoricalDimension c => c.IndexOf(v) is var i and >= 0 ? i : null,
                        _ => null,
                    };
                    usable = x is not null;
                    row[d] = x ?? 0;
                }

                if (usable)
                {
                    rows.Add(row);
                }
            }

            return rows;
        }

        var goodRows = Rows(good);
        var badRows = Rows(bad);
        var l = new JointParzenEstimator(dimensions, goodRows, TpeOptions.ObservationWeights(goodRows.Count), Options);
        var g = new JointParzenEstimator(dimensions, badRows, TpeOptions.ObservationWeights(badRows.Count), Options);
        var rng = Rng.Derive(root, NameStream(" joint"));
        object[] best = [];
        var bestScore = double.NegativeInfinity;
        for (var i = 0; i < Options.EiCandidates; i++)
        {
            var candidate = l.Sample(rng);
            var score = l.LogDensity(candidate) - g.LogDensity(candidate);
            if (i == 0 || score > bestScore)
            {
                (best, bestScore) = (candidate, score);
            }
        }

        return Enumerable.Range(0, parameters.Count).ToDictionary(d => parameters[d].Name, d => best[d]);
    }

    /// <summary>A parameter's stream number: FNV-1a of its name's UTF-8 bytes (stable across processes, unlike string.GetHashCode).</summary>
    internal static ulong NameStream(string name)
    {
        var h = 14695981039346656037UL;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(name))
        {
            h = (h ^ b) * 1099511628211UL;
        }

        return h;
    }
}

/// <summary>
/// <see cref="TpeSampler"/> behind the sweep's <see cref="ISampler"/> contract (method <c>bayes</c>), for callers that
/// only have <see cref="FinishedTrial"/>s: history entry i is trial i, a missing value means it failed, and the trials
/// of one call are proposed one after the other, each earlier one of the call counting as running. A caller that knows
/// its running and pruned trials calls <see cref="TpeSampler.Propose"/> directly.
/// </summary>
public sealed class BayesSampler(TpeOptions? options = null) : ISampler
{
    private readonly TpeSampler _tpe = new(options);

    public string Name => "bayes";

    public IReadOnlyList<ProposedTrial> Propose(SweepDefinition sweep, int count, IReadOnlyList<FinishedTrial>? history = null, int firstNumber = 0)
    {
        var space = ParameterSpace.Of(sweep);
        var goal = Goals.Parse(sweep.Goal);
        var observations = (history ?? []).Select((t, i) => new Observation(i, t.Parameters, t.Value is null ? TrialOutcome.Failed : TrialOutcome.Complete, t.Value)).ToList();
        var proposed = new List<ProposedTrial>();
        for (var number = firstNumber; number < firstNumber + count; number++)
        {
            var point = _tpe.Propose(space, observations, number, sweep.Seed, goal);
            observations.Add(new Observation(number, point, TrialOutcome.Running));
            proposed.Add(new ProposedTrial(number, point, SearchSpace.TrialSeed(sweep.Seed, number)));
        }

        return proposed;
    }
}
