using Sweeper.Core.Search;

namespace Sweeper.Core.Tests.Search;

public class AshaTests
{
    [Fact]
    public void The_wandb_example_s_2_eta_3_max_iter_27_has_rungs_at_3_and_9()
    {
        var schedule = new HyperbandSettings(MaxIter: 27, Eta: 3, S: 2).Schedule(trialEpochs: 100);
        Assert.Equal([3, 9], schedule.Rungs);
        Assert.Equal(27, schedule.CompleteAt);
        var asha = new Asha(schedule, Goal.Maximize);
        Assert.Equal([3, 9, 27], new[] { 0, 1, 2 }.Select(asha.TargetEpoch));
        Assert.False(asha.IsComplete(26));
        Assert.True(asha.IsComplete(27));
    }

    [Theory]
    [InlineData(null, 27, 3.0, 5, 50, new[] { 1, 3, 9 }, 27)] // s larger than the rungs there are: stops below 1 epoch
    [InlineData(null, 10, 3.0, 2, 50, new[] { 1, 3 }, 10)] // 10/3 = 3.33 -> 3, 10/9 = 1.11 -> 1 (whole epochs, as W&B truncates)
    [InlineData(null, 5, 2.0, 2, 50, new[] { 1, 2 }, 5)] // W&B's own docstring example
    [InlineData(1, null, 3.0, null, 27, new[] { 1, 3, 9 }, 27)] // min_iter: min_iter * eta^k below the trial's epochs
    [InlineData(2, 20, 2.0, null, 50, new[] { 2, 4, 8, 16 }, 20)] // min_iter with max_iter: complete at max_iter
    [InlineData(1, null, 1.5, null, 6, new[] { 1, 2, 3, 5 }, 6)] // 1, 1.5, 2.25, 3.375, 5.06: truncated, repeats dropped
    [InlineData(3, 27, 3.0, 2, 50, new[] { 3, 9 }, 27)] // both forms: max_iter and s win, as in W&B
    public void Rung_schedules_follow_wandb_s_definitions(int? minIter, int? maxIter, double eta, int? s, int trialEpochs, int[] rungs, int complete)
    {
        var schedule = new HyperbandSettings(minIter, maxIter, eta, s).Schedule(trialEpochs);
        Assert.Equal(rungs, schedule.Rungs);
        Assert.Equal(complete, schedule.CompleteAt);
    }

    [Theory]
    [InlineData(null, 27, 1.0, 2, "eta")]
    [InlineData(null, 27, 0.5, 2, "eta")]
    [InlineData(null, 27, double.NaN, 2, "eta")]
    [InlineData(null, null, 3.0, null, "min_iter")]
    [InlineData(null, 27, 3.0, null, "s")]
    [InlineData(0, null, 3.0, null, "min_iter")]
    [InlineData(null, 2, 3.0, 1, "s")] // 2 / 3 < 1 epoch: no rung
    [InlineData(null, 27, 3.0, 0, "s")]
    [InlineData(27, 27, 3.0, null, "min_iter")]
    public void Bad_settings_are_listed_with_their_key_and_refused(int? minIter, int? maxIter, double eta, int? s, string key)
    {
        var settings = new HyperbandSettings(minIter, maxIter, eta, s);
        var problem = Assert.Single(settings.Validate());
        Assert.Equal(key, problem.Key);
        var e = Assert.Throws<ArgumentException>(() => settings.Schedule(50));
        Assert.StartsWith($"early_terminate: {key}: ", e.Message);
    }

    [Fact]
    public void A_schedule_built_by_hand_is_checked_too()
    {
        Assert.Contains("eta", Assert.Throws<ArgumentException>(() => new Asha(new RungSchedule([1, 3], 9, 1), Goal.Maximize)).Message);
        Assert.Contains("increasing", Assert.Throws<ArgumentException>(() => new Asha(new RungSchedule([3, 3], 9, 3), Goal.Maximize)).Message);
        Assert.Contains("increasing", Assert.Throws<ArgumentException>(() => new Asha(new RungSchedule([3, 9], 9, 3), Goal.Maximize)).Message);
        Assert.Contains("increasing", Assert.Throws<ArgumentException>(() => new Asha(new RungSchedule([0, 3], 9, 3), Goal.Maximize)).Message);
        Assert.Empty(new Asha(new RungSchedule([], 9, 3), Goal.Maximize).Schedule.Rungs); // no rungs: every trial runs to completion
    }

    /// <summary>
    /// Rungs at epochs 1 and 3, complete at 9, eta 3, maximizing. Trials report at their rungs one after the other;
    /// <c>Report</c> applies ASHA's answer to the state as the coordinator would.
    /// </summary>
    [Fact]
    public void Promotions_go_to_the_top_third_of_a_rung_best_first_highest_rung_first()
    {
        var asha = new Asha(new HyperbandSettings(MinIter: 1, Eta: 3).Schedule(9), Goal.Maximize);
        Assert.Equal([1, 3], asha.Schedule.Rungs);
        var state = new Dictionary<int, AshaTrial>();
        IReadOnlyList<AshaTrial> Now() => [.. state.Values];
        AshaDecision Report(int trial, int epoch, double value)
        {
            var before = state.TryGetValue(trial, out var t) ? t : new AshaTrial(trial, [], AshaStatus.Training);
            state[trial] = before with { Status = AshaStatus.Training };
            var decision = asha.AfterEpoch(trial, epoch, value, Now());
            var rung = asha.Schedule.RungAt(epoch);
            if (rung >= 0)
            {
                state[trial] = new AshaTrial(trial, [.. before.RungValues.Take(rung), value], decision == AshaDecision.Pause ? AshaStatus.Paused : AshaStatus.Training);
            }

            return decision;
        }

        void Promote(int trial) => state[trial] = state[trial] with { Status = AshaStatus.Training };

        Assert.Equal(AshaDecision.Pause, Report(0, 1, 0.5)); // 1 result: top floor(1/3) = 0
        Assert.Equal(AshaDecision.Pause, Report(1, 1, 0.7));
        Assert.Null(asha.NextPromotion(Now()));
        Assert.Equal(AshaDecision.Pause, Report(2, 1, 0.6)); // 3 results: the top one is trial 1, paused, not trial 2
        Assert.Equal(1, asha.NextPromotion(Now())); // so the free slot resumes trial 1 rather than start a new trial
        Promote(1);
        Assert.Null(asha.NextPromotion(Now()));
        Assert.Equal(AshaDecision.Continue, Report(3, 1, 0.9)); // 4 results, top 1 = trial 3 itself: it goes straight on
        Assert.Equal(AshaDecision.Continue, Report(3, 2, 0.91)); // not a rung epoch
        Assert.Equal(AshaDecision.Pause, Report(4, 1, 0.65)); // 5 results, top 1 = trial 3 (promoted)
        Assert.Equal(AshaDecision.Pause, Report(5, 1, 0.1)); // 6 results, top 2 = trials 3 and 1, both promoted
        Assert.Equal(AshaDecision.Pause, Report(6, 1, 0.2));
        Assert.Equal(AshaDecision.Pause, Report(7, 1, 0.3));
        Assert.Null(asha.NextPromotion(Now()));
        Assert.Equal(AshaDecision.Pause, Report(8, 1, 0.4)); // 9 results, top 3 = 3, 1, and 4 (0.65), which waits paused
        Assert.Equal(4, asha.NextPromotion(Now()));

        // Rung 1 (epoch 3): trials 1 and 3 reach it and pause (too few there); trial 4 is still due at rung 0.
        Assert.Equal(AshaDecision.Pause, Report(1, 3, 0.75));
        Assert.Equal(AshaDecision.Pause, Report(3, 3, 0.8));
        Assert.Equal(4, asha.NextPromotion(Now()));
        Promote(4);
        // Trial 4 reaches rung 1 lowest of three: the top one there (trial 3) is promoted to completion before anything else.
        Assert.Equal(AshaDecision.Pause, Report(4, 3, 0.7));
        Assert.Equal(3, asha.NextPromotion(Now()));
        Promote(3);
        Assert.Equal(AshaDecision.Complete, Report(3, 9, 0.95));
        Assert.Equal(9, asha.TargetEpoch(2));
    }

    [Fact]
    public void A_higher_rung_s_candidate_is_promoted_before_a_lower_rung_s_and_ties_go_to_the_lower_number()
    {
        var asha = new Asha(new RungSchedule([1, 3], 9, 3), Goal.Minimize);
        AshaTrial P(int n, params double[] values) => new(n, values, AshaStatus.Paused);
        List<AshaTrial> trials =
        [
            P(0, 0.5), P(1, 0.2), P(2, 0.9), // rung 0: trial 1 is due
            P(3, 0.1, 0.4), P(4, 0.3, 0.4), P(5, 0.2, 0.6), // rung 1: trials 3 and 4 tie at 0.4; 3 is due
        ];
        Assert.Equal(3, asha.NextPromotion(trials));
        trials[3] = trials[3] with { Status = AshaStatus.Training };
        Assert.Equal(1, asha.NextPromotion(trials)); // rung 1's top 1 is used: rung 0's turn
        trials[1] = trials[1] with { Status = AshaStatus.Finished }; // failed while paused: no longer promotable
        Assert.Null(asha.NextPromotion(trials));

        // The same results maximized: rung 1's best is trial 5 (0.6).
        var max = new Asha(new RungSchedule([1, 3], 9, 3), Goal.Maximize);
        Assert.Equal(5, max.NextPromotion([P(0, 0.5), P(1, 0.2), P(2, 0.9), P(3, 0.1, 0.4), P(4, 0.3, 0.4), P(5, 0.2, 0.6)]));
        // NaN is the worst value whatever the goal.
        Assert.Equal(1, max.NextPromotion([P(0, double.NaN), P(1, 0.2), P(2, 0.1)]));
        Assert.Equal(2, asha.NextPromotion([P(0, double.NaN), P(1, 0.2), P(2, 0.1)]));
    }

    [Fact]
    public void In_a_simulated_study_no_rung_promotes_more_than_its_top_share_and_the_best_trials_complete()
    {
        // Three slots, 60 trials of known quality q (the value at epoch e is q * e / 9 plus a little noise); ASHA
        // decides everything. Every promotion (a resume, or going straight on at a rung) takes a trial in its rung's top
        // floor(n / eta) at that moment; at the end no rung has a paused trial left in its top share; the best-quality
        // trial completed. (ASHA may promote more than a third in all: a trial promoted early can drop out of the top.)
        var asha = new Asha(new HyperbandSettings(MaxIter: 9, Eta: 3, S: 2).Schedule(9), Goal.Maximize);
        var rng = new Rng(17);
        var quality = Enumerable.Range(0, 60).Select(_ => rng.NextDouble()).ToArray();
        var state = new Dictionary<int, AshaTrial>();
        var epochs = new Dictionary<int, int>();
        var completed = new List<int>();
        var nextNew = 0;
        var slots = new int?[3];
        while (true)
        {
            for (var s = 0; s < slots.Length; s++)
            {
                if (slots[s] is null)
                {
                    var promote = asha.NextPromotion([.. state.Values]);
                    if (promote is { } p)
                    {
                        AssertInTop(state[p], state[p].RungValues.Count - 1);
                        state[p] = state[p] with { Status = AshaStatus.Training };
                        slots[s] = p;
                    }
                    else if (nextNew < quality.Length)
                    {
                        state[nextNew] = new AshaTrial(nextNew, [], AshaStatus.Training);
                        epochs[nextNew] = 0;
                        slots[s] = nextNew++;
                    }
                }
            }

            if (slots.All(s => s is null))
            {
                break;
            }

            for (var s = 0; s < slots.Length; s++)
            {
                if (slots[s] is not { } t)
                {
                    continue;
                }

                var epoch = ++epochs[t];
                var value = (quality[t] * epoch / 9) + (0.001 * rng.NextDouble());
                var decision = asha.AfterEpoch(t, epoch, value, [.. state.Values]);
                var rung = asha.Schedule.RungAt(epoch);
                if (decision == AshaDecision.Complete)
                {
                    state[t] = state[t] with { Status = AshaStatus.Finished };
                    completed.Add(t);
                    slots[s] = null;
                }
                else if (rung >= 0)
                {
                    state[t] = new AshaTrial(t, [.. state[t].RungValues, value], decision == AshaDecision.Pause ? AshaStatus.Paused : AshaStatus.Training);
                    slots[s] = decision == AshaDecision.Pause ? null : t;
                    if (decision == AshaDecision.Continue)
                    {
                        AssertInTop(state[t], rung);
                    }
                }
            }
        }

        for (var k = 0; k < asha.Schedule.Rungs.Count; k++)
        {
            var rung = k;
            var ranked = Ranked(rung);
            Assert.All(ranked.Take(ranked.Count / 3), t => Assert.NotEqual(AshaStatus.Paused, t.RungValues.Count == rung + 1 ? t.Status : AshaStatus.Training));
            Assert.True(ranked.Count(t => t.RungValues.Count > rung + 1 || t.Status != AshaStatus.Paused) >= ranked.Count / 3);
        }

        Assert.Equal(60, state.Count);
        Assert.Contains(Array.IndexOf(quality, quality.Max()), completed);
        Assert.All(completed, t => Assert.Equal(9, epochs[t]));

        List<AshaTrial> Ranked(int rung) => [.. state.Values.Where(t => t.RungValues.Count > rung).OrderByDescending(t => t.RungValues[rung]).ThenBy(t => t.Number)];
        void AssertInTop(AshaTrial trial, int rung)
        {
            var ranked = Ranked(rung);
            var place = ranked.FindIndex(t => t.Number == trial.Number);
            Assert.InRange(place, 0, (ranked.Count / 3) - 1);
        }
    }
}
