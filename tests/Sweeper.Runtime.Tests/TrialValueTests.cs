using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Storage;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// Built-in trials store their value of the sweep's metric too (the slot writes it with the finish), and the study picks
/// its best trial by it: a train_loss study by each trial's last loss, with no epoch read back.
/// </summary>
public sealed class TrialValueTests() : SiloTest("sweeper-values-")
{
    [Theory]
    [InlineData("train_loss", "minimize")]
    [InlineData("val_accuracy", "maximize")]
    public async Task A_built_in_trial_stores_its_value_of_the_sweeps_metric_and_the_study_picks_by_it(string metric, string goal)
    {
        Store = await TrialStores.OpenAsync("sqlite:" + Path.Combine(Dir, "store.db"));
        var settings = new SiloSettings { Slots = 2, SiloPort = 0, Poll = TimeSpan.FromMilliseconds(20), IdleRecheck = TimeSpan.FromMilliseconds(100), Tick = TimeSpan.FromMilliseconds(200) };
        Silo = SweeperSilo.Build(Store, new Curves(), settings, Logger.None);
        await Silo.StartAsync();
        var sweep = $$"""
            name: b
            method: grid
            model: softmax
            metric: {name: {{metric}}, goal: {{goal}}}
            parameters:
              learning_rate: {values: [0.3, 0.1, 0.2]}
              epochs: {value: 3}
            """;
        await Silo.Services.GetRequiredService<IGrainFactory>().GetGrain<IStudyGrain>("b").OpenAsync(sweep, "b.yaml");
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        StudyResult? result;
        while ((result = await Store.GetResultAsync("b")) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the study did not close");
            await Task.Delay(20);
        }

        var trials = await Store.GetTrialsAsync("b");
        foreach (var t in trials)
        {
            var lr = (double)ParamJson.Deserialize(t.ParametersJson)["learning_rate"];
            // train_loss: the last epoch's loss, lr * 10 / 3; val_accuracy: the record's (best) validation accuracy.
            Assert.Equal(metric == "train_loss" ? lr * 10 / 3 : 0.4 + lr, t.Value!.Value, 12);
        }

        // Lowest loss: learning rate 0.1 (trial 1); highest accuracy: 0.3 (trial 0). Either is tested once.
        Assert.Equal(metric == "train_loss" ? 1 : 0, result.BestTrialNumber);
        Assert.Equal(0.5, result.TestAccuracy);
    }

    /// <summary>Trains nothing: epoch e of learning rate lr has loss lr * 10 / e and validation accuracy 0.4 + lr.</summary>
    private sealed class Curves : ITrialRunner
    {
        public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null)
        {
            var lr = (double)ParamJson.Deserialize(lease.ParametersJson)["learning_rate"];
            for (var e = 1; e <= 3; e++)
            {
                onEpoch(new EpochRecord(e, lr * 10 / e, 0.5, 0.4 + lr, lr, 0.01), () => [1]);
            }

            return new TrialFinish(TrialState.Completed, 0.4 + lr, 0.5, 3, null);
        }

        public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) => (0.5, 10);
    }
}
