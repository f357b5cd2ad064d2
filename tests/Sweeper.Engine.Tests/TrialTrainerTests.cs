using Sweeper.Core.Sweeps;
using Sweeper.Engine.Training;
using Sweeper.Runtime;

namespace Sweeper.Engine.Tests;

/// <summary>The runtime trains trials through the engines' seam, on the engine and device it is given as plain names.</summary>
public class TrialTrainerTests
{
    private static readonly SweepDefinition _sweep = new()
    {
        Name = "engines",
        Method = "random",
        Parameters = new Dictionary<string, ParameterDomain>(),
        SourceText = "",
        Data = new DataSettings { TrainSize = 500, ValSize = 100, TestSize = 100 },
    };

    private static readonly Dictionary<string, object> _trial = new()
    {
        ["model"] = "two_layer", ["hidden_size"] = 20L, ["update_rule"] = "adam", ["learning_rate"] = 1e-3, ["epochs"] = 2L, ["batch_size"] = 100L,
    };

    [Fact]
    public void A_trial_trains_on_the_named_engine_and_a_resume_elsewhere_says_what_changed()
    {
        using var trainer = new TrialTrainer(TestData.CifarDir);
        Assert.Equal(("native", "cpu"), (trainer.Engine, trainer.Device));

        byte[] checkpoint;
        var (native, from) = trainer.CreateBackend(_sweep, _trial, 7, checkpoint: null);
        using (native)
        {
            Assert.Null(from);
            Assert.Equal("native", native.Origin.Engine);
            native.Train(_ => true);
            var stream = new MemoryStream();
            native.SaveCheckpoint(stream);
            checkpoint = stream.ToArray();
        }

        var (torch, origin) = trainer.CreateBackend(_sweep, _trial, 7, checkpoint, engine: "torch");
        using (torch)
        {
            Assert.Equal("torch", torch.Origin.Engine);
            Assert.Equal(2, torch.Epoch);
            Assert.Equal(native.Origin, origin);
            Assert.StartsWith("engine native -> torch", torch.Origin.DifferenceFrom(origin!));
        }

        // The test split, evaluated once from the final checkpoint, gives the same accuracy on either engine (to an example or two).
        var (onNative, examples) = trainer.EvaluateOnTest(_sweep, _trial, 7, checkpoint);
        var (onTorch, _) = trainer.EvaluateOnTest(_sweep, _trial, 7, checkpoint, engine: "torch");
        Assert.Equal(100, examples);
        Assert.InRange(onTorch, onNative - 0.02, onNative + 0.02);
        Assert.True(onNative > 0.1, $"test accuracy {onNative}");
    }

    [Fact]
    public void The_runner_trains_on_the_sweeps_engine_and_notes_a_resume_from_another_engines_checkpoint()
    {
        using var trainer = new TrialTrainer(TestData.CifarDir);
        var runner = new SolverTrialRunner(trainer);
        var lease = new Sweeper.Core.Trials.Lease(1, "engines", 0, ParamJson.Serialize(_trial), 7, "silo/slot0", 1, 1, false);
        byte[]? checkpoint = null;
        var notes = new List<string>();
        var lasts = new List<bool>();
        var first = runner.Run(_sweep, lease, null, (epoch, take, last) =>
        {
            lasts.Add(last);
            checkpoint = take();
            return epoch.Epoch < 1; // stop after the first epoch, as if the silo had died there
        }, CancellationToken.None, notes.Add);
        Assert.Equal(1, first.Epochs);
        Assert.Equal("native", Sweeper.Engine.Training.CheckpointOrigin.Read(checkpoint!).Engine);
        Assert.Empty(notes);

        // The same sweep on the torch engine resumes the native checkpoint, and says so.
        var epochs = new List<int>();
        var finish = runner.Run(_sweep with { Engine = "torch" }, lease, checkpoint, (epoch, take, last) =>
        {
            lasts.Add(last);
            epochs.Add(epoch.Epoch);
            Assert.Equal("torch", Sweeper.Engine.Training.CheckpointOrigin.Read(take()).Engine);
            return true;
        }, CancellationToken.None, notes.Add);
        Assert.Equal([2], epochs);
        Assert.Equal([false, true], lasts); // only the trial's final epoch is announced as its last, on both engines
        Assert.Equal(Sweeper.Core.Trials.TrialState.Completed, finish.State);
        Assert.Contains("engine native -> torch", Assert.Single(notes));
    }

    [Fact]
    public void An_unusable_device_is_refused_with_what_to_install()
    {
        using var trainer = new TrialTrainer(TestData.CifarDir, engine: "torch", device: "cuda");
        var e = Assert.Throws<TrainingEngineUnavailableException>(() => trainer.CreateBackend(_sweep, _trial, 7, checkpoint: null));
        Assert.Contains("libtorch-cuda", e.Message);
    }
}
