namespace Sweeper.Core.Search;

/// <summary>
/// A sweep file's <c>early_terminate: {type: hyperband, ...}</c>, with W&amp;B's keys and meanings: either
/// <c>max_iter</c> and <c>s</c> (rungs at max_iter / eta, max_iter / eta^2, ... s of them, whole epochs, those below 1
/// dropped), or <c>min_iter</c> (rungs at min_iter, min_iter * eta, min_iter * eta^2, ...). W&amp;B uses max_iter and s
/// when both forms are given; so does this. Epochs count from 1.
/// </summary>
/// <param name="MinIter">The first rung, in epochs.</param>
/// <param name="MaxIter">The epoch at which a trial is complete (W&amp;B: the last epoch that trimming works back from).</param>
/// <param name="Eta">The reduction factor: a rung keeps its top 1/eta. Default: 3 (W&amp;B's).</param>
/// <param name="S">How many rungs below max_iter (with max_iter).</param>
public sealed record HyperbandSettings(int? MinIter = null, int? MaxIter = null, double Eta = 3, int? S = null)
{
    /// <summary>Everything wrong with these settings (empty when usable), each naming its key under early_terminate.</summary>
    public IReadOnlyList<SpecProblem> Validate()
    {
        var problems = new List<SpecProblem>();
        if (!(double.IsFinite(Eta) && Eta > 1))
        {
            problems.Add(new SpecProblem("eta", $"must be a number greater than 1 (got {SpecProblem.Num(Eta)})."));
        }

        if (MinIter is < 1)
        {
            problems.Add(new SpecProblem("min_iter", $"must be at least 1 (got {MinIter})."));
        }

        if (MaxIter is < 1)
        {
            problems.Add(new SpecProblem("max_iter", $"must be at least 1 (got {MaxIter})."));
        }

        if (S is < 1)
        {
            problems.Add(new SpecProblem("s", $"must be at least 1 (got {S})."));
        }

        if (MinIter is null && (MaxIter is null || S is null))
        {
            problems.Add(new SpecProblem(MaxIter is null ? "min_iter" : "s", "hyperband needs min_iter, or max_iter and s."));
        }

        if (problems.Count == 0 && MaxIter is { } max && S is { } s && Bands(max, s, Eta).Count == 0)
        {
            problems.Add(new SpecProblem("s", $"max_iter {max} / eta {SpecProblem.Num(Eta)} is below 1 epoch: no rung is left. Increase max_iter, or decrease eta."));
        }

        if (problems.Count == 0 && MinIter is { } first && S is null && MaxIter is { } last && first >= last)
        {
            problems.Add(new SpecProblem("min_iter", $"must be below max_iter (min_iter {first}, max_iter {last})."));
        }

        return problems;
    }

    /// <summary>
    /// The rung schedule. A trial is complete at max_iter, or, without max_iter, at <paramref name="trialEpochs"/> (the
    /// epochs a trial of the study trains); rungs at or past completion are dropped. Throws <see cref="ArgumentException"/>
    /// with every problem of <see cref="Validate"/>.
    /// </summary>
    public RungSchedule Schedule(int trialEpochs)
    {
        var problems = Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException("early_terminate: " + string.Join("; ", problems));
        }

        var complete = MaxIter ?? trialEpochs;
        if (complete < 1)
        {
            throw new ArgumentException($"a trial must train at least 1 epoch (got {complete}).", nameof(trialEpochs));
        }

        IEnumerable<int> rungs;
        if (MaxIter is { } max && S is { } s)
        {
            rungs = Bands(max, s, Eta);
        }
        else
        {
            var list = new List<int>();
            for (var r = (double)MinIter!.Value; r < complete; r *= Eta)
            {
                list.Add((int)r);
            }

            rungs = list;
        }

        return new RungSchedule([.. rungs.Where(r => r < complete).Distinct().Order()], complete, Eta);
    }

    /// <summary>W&amp;B's bands: max_iter divided by eta again and again, s times, each truncated to whole epochs, stopping below 1.</summary>
    private static List<int> Bands(int maxIter, int s, double eta)
    {
        var bands = new List<int>();
        double band = maxIter;
        for (var i = 0; i < s; i++)
        {
            band /= eta;
            if (band < 1)
            {
                break;
            }

            bands.Add((int)band);
        }

        return bands;
    }
}

/// <summary>
/// Rung epochs in increasing order (all below <paramref name="CompleteAt"/>), the epoch at which a trial is complete,
/// and the reduction factor.
/// </summary>
public sealed record RungSchedule(IReadOnlyList<int> Rungs, int CompleteAt, double Eta)
{
    /// <summary>The rung whose epoch is <paramref name="epoch"/>, or -1.</summary>
    public int RungAt(int epoch)
    {
        for (var k = 0; k < Rungs.Count; k++)
        {
            if (Rungs[k] == epoch)
            {
                return k;
            }
        }

        return -1;
    }
}

/// <summary>Where a trial stands in ASHA.</summary>
public enum AshaStatus
{
    /// <summary>Training towards its next rung (or to completion).</summary>
    Training,

    /// <summary>Stopped at its last rung, waiting to be promoted (perhaps for ever).</summary>
    Paused,

    /// <summary>Complete, failed or otherwise finished: never promoted again, but its rung values still rank the others.</summary>
    Finished,
}

/// <summary>
/// One trial as ASHA sees it: its number, its metric value at each rung it reached (RungValues[k] at epoch
/// Rungs[k]), and its status. A trial that reached rung k and is not paused there was promoted from it.
/// </summary>
public sealed record AshaTrial(int Number, IReadOnlyList<double> RungValues, AshaStatus Status);

/// <summary>What a trial does after an epoch.</summary>
public enum AshaDecision
{
    /// <summary>Train on.</summary>
    Continue,

    /// <summary>Stop at this rung and wait: its slot takes the next promotion or a new trial.</summary>
    Pause,

    /// <summary>It reached the last epoch.</summary>
    Complete,
}

/// <summary>
/// Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel Hyperparameter Tuning"), counted
/// in epochs, as a pure function of the rung schedule and every trial's values at the rungs it reached. A new trial
/// trains to the first rung and pauses there; whenever a slot is free, ASHA promotes (resumes towards the next rung) a
/// paused trial that is among the top floor(n / eta) of the n results of its rung and not yet promoted, looking at the
/// highest rung first; only when there is none does the slot start a new trial. The top of a rung is ranked by value
/// (by <see cref="Goal"/>; a NaN value is the worst), ties broken by the lower trial number; the choice among several
/// promotable trials of a rung is the best one.
/// </summary>
public sealed class Asha
{
    /// <summary>Throws <see cref="ArgumentException"/> when eta is not above 1 or the rungs are not increasing epochs below completion.</summary>
    public Asha(RungSchedule schedule, Goal goal)
    {
        if (!(double.IsFinite(schedule.Eta) && schedule.Eta > 1))
        {
            throw new ArgumentException($"eta must be a number greater than 1 (got {SpecProblem.Num(schedule.Eta)}).", nameof(schedule));
        }

        var epochs = schedule.Rungs.Append(schedule.CompleteAt).ToList();
        if (epochs[0] < 1 || epochs.Zip(epochs.Skip(1)).Any(p => p.First >= p.Second))
        {
            throw new ArgumentException($"rungs must be increasing epochs from 1, below completion at {schedule.CompleteAt} (got {string.Join(", ", schedule.Rungs)}).", nameof(schedule));
        }

        (Schedule, Goal) = (schedule, goal);
    }

    public RungSchedule Schedule { get; }

    public Goal Goal { get; }

    /// <summary>
    /// After trial <paramref name="number"/> finished <paramref name="epoch"/> with <paramref name="value"/>: complete at
    /// the last epoch; at a rung epoch, continue if ASHA's next promotion (with this result recorded at the rung) is this
    /// very trial, which frees no slot, otherwise pause; at any other epoch, continue. <paramref name="trials"/> is the
    /// state before this result (the trial itself as Training, with the rung values it had).
    /// </summary>
    public AshaDecision AfterEpoch(int number, int epoch, double value, IReadOnlyList<AshaTrial> trials)
    {
        if (epoch >= Schedule.CompleteAt)
        {
            return AshaDecision.Complete;
        }

        var rung = Schedule.RungAt(epoch);
        if (rung < 0)
        {
            return AshaDecision.Continue;
        }

        var self = trials.FirstOrDefault(t => t.Number == number);
        var values = (self?.RungValues ?? []).Take(rung).Append(value).ToList();
        var after = trials.Where(t => t.Number != number).Append(new AshaTrial(number, values, AshaStatus.Paused)).ToList();
        return NextPromotion(after) == number ? AshaDecision.Continue : AshaDecision.Pause;
    }

    /// <summary>
    /// The paused trial a free slot should resume (towards the next rung), or null when none is due and the slot should
    /// start a new trial. Highest rung first; within a rung, the best not-yet-promoted trial among its top floor(n / eta).
    /// </summary>
    public int? NextPromotion(IReadOnlyList<AshaTrial> trials)
    {
        for (var k = Schedule.Rungs.Count - 1; k >= 0; k--)
        {
            var rung = k;
            var ranked = trials.Where(t => t.RungValues.Count > rung)
                .OrderBy(t => Goal.Loss(t.RungValues[rung])).ThenBy(t => t.Number).ToList();
            var top = (int)Math.Floor(ranked.Count / Schedule.Eta);
            foreach (var t in ranked.Take(top))
            {
                if (t.RungValues.Count == rung + 1 && t.Status == AshaStatus.Paused)
                {
                    return t.Number;
                }
            }
        }

        return null;
    }

    /// <summary>The epoch a trial that reached <paramref name="rungsReached"/> rungs trains to next: the next rung's, or completion.</summary>
    public int TargetEpoch(int rungsReached) => rungsReached < Schedule.Rungs.Count ? Schedule.Rungs[rungsReached] : Schedule.CompleteAt;

    /// <summary>Whether a trial that finished <paramref name="epoch"/> epochs is complete.</summary>
    public bool IsComplete(int epoch) => epoch >= Schedule.CompleteAt;
}
