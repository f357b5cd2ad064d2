using Sweeper.Core.Search;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Runtime;

/// <summary>
/// The parts of a study's search that its coordinator grain runs as the study goes, over the store's history:
/// Bayesian search (<c>method: bayes</c>) proposes each trial when a slot frees up, with TPE over every trial so far
/// (running ones count as the constant liar's bad observations; paused, pruned and diverged ones by how far they got);
/// successive halving (<c>early_terminate: hyperband</c>, ASHA) pauses a trial at each rung and promotes the top 1/eta
/// of a rung before any new trial starts. Both are pure functions of the store's history and the study's seed, so a coordinator
/// that re-activates elsewhere carries on exactly where the last one left off.
/// </summary>
public sealed class StudySearch
{
    private readonly ITrialStore _store;
    private readonly string _study;
    private readonly SweepDefinition _sweep;
    private readonly TpeSampler? _tpe;
    private readonly ParameterSpace? _space;
    private readonly Goal _goal;

    // Proposals of one study one at a time: two free slots asking at once must not both propose trial n.
    private readonly SemaphoreSlim _proposing = new(1, 1);

    public StudySearch(ITrialStore store, string study, SweepDefinition sweep)
    {
        _store = store;
        _study = study;
        _sweep = sweep;
        _goal = Goals.Parse(sweep.Goal);
        if (SearchSpace.ProposesAsItGoes(sweep))
        {
            _tpe = new TpeSampler(SearchSpace.TpeOptionsOf(sweep));
            _space = ParameterSpace.Of(sweep);
        }

        if (sweep.EarlyTerminate is { Type: EarlyTerminate.Hyperband } et)
        {
            Halving = new Asha(new HyperbandSettings(et.MinIter, et.MaxIter, et.Eta, et.S).Schedule(TrialEpochs(sweep)), _goal);
        }
    }

    /// <summary>Whether trials are proposed one at a time (Bayesian search).</summary>
    public bool Proposes => _tpe is not null;

    /// <summary>Successive halving's rungs and rule, or null when the study does not use it.</summary>
    public Asha? Halving { get; }

    /// <summary>
    /// The epochs a trial of the study trains when nothing stops it (successive halving's last epoch without max_iter):
    /// the <c>epochs</c> parameter (its largest value when it is searched), else the engine's default of 10.
    /// </summary>
    public static int TrialEpochs(SweepDefinition sweep) => sweep.Parameters.TryGetValue("epochs", out var domain)
        ? domain switch
        {
            FixedValue f => (int)ParamValue.AsDouble(f.Value),
            ValueList l => l.Values.Max(v => (int)ParamValue.AsDouble(v)),
            Distribution d => (int)d.Max,
            _ => 10,
        }
        : 10;

    /// <summary>
    /// The value of the sweep's metric in an epoch's record: a built-in field (val_accuracy, train_accuracy, train_loss
    /// or loss) when it holds a number, else the extra metric of that name a program reported; null when neither
    /// (<see cref="EpochRecord.ValueOf"/>). The median rule and successive halving judge epochs by it.
    /// </summary>
    public double? Value(EpochRecord epoch) => epoch.ValueOf(_sweep.Metric);

    /// <summary>
    /// A trial's value of the sweep's metric: its record's val_accuracy or train_accuracy for those, else the value its
    /// finish (or pause) stored (<see cref="StudySelection.RecordedValue"/>); no epoch is read.
    /// </summary>
    public double? Value(TrialRecord trial) => StudySelection.RecordedValue(trial, _sweep.Metric);

    /// <summary>
    /// Proposes the study's next trial and adds it as pending, unless the study already has <paramref name="planned"/>
    /// trials. True when a pending trial is there to claim (this call's, or one another call added meanwhile).
    /// </summary>
    public async Task<bool> ProposeAsync(int planned)
    {
        if (_tpe is null || _space is null)
        {
            return false;
        }

        await _proposing.WaitAsync();
        try
        {
            var trials = await _store.GetTrialsAsync(_study);
            if (trials.Any(t => t.State == TrialState.Pending))
            {
                return true;
            }

            if (trials.Count >= planned)
            {
                return false;
            }

            var number = trials.Count == 0 ? 0 : trials.Max(t => t.Number) + 1;
            var point = _tpe.Propose(_space, [.. trials.Select(t => Observe(t, Value(t)))], number, _sweep.Seed, _goal);
            return await _store.AddTrialAsync(_study, new NewTrial(number, ParamJson.Serialize(point), SearchSpace.TrialSeed(_sweep.Seed, number)));
        }
        finally
        {
            _proposing.Release();
        }
    }

    /// <summary>A stored trial as TPE sees it, with its value of the sweep's metric.</summary>
    private static Observation Observe(TrialRecord t, double? value)
    {
        var parameters = ParamJson.Deserialize(t.ParametersJson);
        return t.State switch
        {
            TrialState.Completed => new Observation(t.Number, parameters, value is null ? TrialOutcome.Failed : TrialOutcome.Complete, value),
            TrialState.Pruned or TrialState.Paused => new Observation(t.Number, parameters, TrialOutcome.Pruned, value, t.EpochsDone),

            // A diverged trial is a bad result, not a missing one: as pruned at the epoch it reached with no value, it
            // ranks below every trial that got as far (ignored, as Optuna ignores failed trials, TPE kept proposing the
            // learning rates that diverge).
            TrialState.Diverged => new Observation(t.Number, parameters, TrialOutcome.Pruned, null, t.EpochsDone),
            TrialState.Pending or TrialState.Running => new Observation(t.Number, parameters, TrialOutcome.Running),
            _ => new Observation(t.Number, parameters, TrialOutcome.Failed),
        };
    }

    /// <summary>Successive halving's answer after a trial's epoch (already stored): continue, pause at a rung, or complete.</summary>
    public async Task<EpochVerdict> AfterEpochAsync(int number, EpochRecord metrics)
    {
        var asha = Halving ?? throw new InvalidOperationException("the study does not use successive halving.");
        if (asha.IsComplete(metrics.Epoch))
        {
            return EpochVerdict.Complete;
        }

        if (asha.Schedule.RungAt(metrics.Epoch) < 0)
        {
            return EpochVerdict.Continue;
        }

        var (trials, _) = await RungsAsync();
        return asha.AfterEpoch(number, metrics.Epoch, Value(metrics) ?? double.NaN, trials) == AshaDecision.Pause ? EpochVerdict.Pause : EpochVerdict.Continue;
    }

    /// <summary>Promotes the paused trial that successive halving says is due (pending again, to resume from its checkpoint). True when one was.</summary>
    public async Task<bool> PromoteDueAsync()
    {
        if (Halving is not { } asha)
        {
            return false;
        }

        var (trials, ids) = await RungsAsync();
        if (asha.NextPromotion(trials) is not { } number)
        {
            return false;
        }

        var reached = trials.First(t => t.Number == number).RungValues.Count;
        return await _store.PromoteAsync(ids[number],
            $"trial {number} promoted: among the top 1/{asha.Schedule.Eta:0.###} at the rung of epoch {asha.Schedule.Rungs[reached - 1]}; it trains on to epoch {asha.TargetEpoch(reached)}");
    }

    /// <summary>Whether a paused trial is due for promotion (then the study is not over).</summary>
    public async Task<bool> PromotionDueAsync() => Halving is { } asha && asha.NextPromotion((await RungsAsync()).Trials) is not null;

    /// <summary>Every trial with its values at the rungs it reached and its status, and the trials' ids by number.</summary>
    private async Task<(IReadOnlyList<AshaTrial> Trials, Dictionary<int, long> Ids)> RungsAsync()
    {
        var asha = Halving!;
        var records = await _store.GetTrialsAsync(_study);
        var rungs = new List<Dictionary<int, double>>();
        foreach (var epoch in asha.Schedule.Rungs)
        {
            rungs.Add((await _store.GetEpochOfTrialsAsync(_study, epoch)).ToDictionary(x => x.Number, x => Value(x.Metrics) ?? double.NaN));
        }

        var trials = records.Select(t =>
        {
            var values = new List<double>();
            for (var k = 0; k < rungs.Count && rungs[k].TryGetValue(t.Number, out var v); k++)
            {
                values.Add(v);
            }

            var status = t.State switch
            {
                TrialState.Paused => AshaStatus.Paused,
                TrialState.Pending or TrialState.Running => AshaStatus.Training,
                _ => AshaStatus.Finished,
            };
            return new AshaTrial(t.Number, values, status);
        }).ToList();
        return (trials, records.ToDictionary(t => t.Number, t => t.Id));
    }
}
