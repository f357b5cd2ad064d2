using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Engine.Tests;

public class SolverTests
{
    private static readonly Lazy<Cifar10Dataset<float>> _small = new(() =>
        Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 2_000, ValSize = 500, TestSize = 0 }));

    private static InMemorySplit<float> First(IDataSplit<float> split, int n)
    {
        var x = new Matrix<float>(n, split.Dim);
        split.Gather(Enumerable.Range(0, n).ToArray(), x);
        return new InMemorySplit<float>(x, split.Labels[..n]);
    }

    [Theory]
    [InlineData("sgd", 3e-3, 0)]
    [InlineData("adam", 1e-3, 1)]
    public void Overfits_50_real_examples_to_full_training_accuracy(string rule, double lr, int normalization)
    {
        var train = First(_small.Value.Train, 50);
        var spec = new ModelSpec { HiddenSizes = [100, 100], Normalization = (Normalization)normalization, WeightScale = 1e-2 };
        var model = new FullyConnectedNet<float>(spec, seed: 1);
        var solver = new Solver<float>(model, train, First(_small.Value.Validation, 50),
            new SolverOptions { UpdateRule = rule, LearningRate = lr, BatchSize = 25, Epochs = 40, Seed = 1 });
        var finalTrainAccuracy = 0.0;
        var result = solver.Train(onEpoch: m =>
        {
            // Measured on all 50 before the best-by-validation parameters are restored.
            finalTrainAccuracy = solver.Accuracy(train);
            return true;
        });
        Assert.Equal(TrainingOutcome.Completed, result.Outcome);
        Assert.Equal(1.0, finalTrainAccuracy);
        Assert.True(solver.LossHistory[^1] < solver.LossHistory[0] / 10, $"loss {solver.LossHistory[0]} -> {solver.LossHistory[^1]}");
    }

    [Fact]
    public void A_diverging_run_ends_as_diverged_with_its_reason_and_the_best_parameters()
    {
        var model = new FullyConnectedNet<float>(new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [50], WeightScale = 1e-2 }, seed: 1);
        var solver = new Solver<float>(model, _small.Value.Train, _small.Value.Validation,
            new SolverOptions { LearningRate = 1e3, BatchSize = 100, Epochs = 5, Seed = 1 });
        var result = solver.Train();
        Assert.Equal(TrainingOutcome.Diverged, result.Outcome);
        Assert.Contains("loss became", result.Reason);
        Assert.All(model.Parameters, p => Assert.All(p.Value, v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void The_same_seed_gives_the_same_run_and_another_seed_a_different_one()
    {
        TrainingResult Run(ulong seed)
        {
            var model = new FullyConnectedNet<float>(new ModelSpec { HiddenSizes = [40], Dropout = 0.2, Normalization = Normalization.Batch }, seed);
            return new Solver<float>(model, _small.Value.Train, _small.Value.Validation,
                new SolverOptions { UpdateRule = "adam", LearningRate = 1e-3, BatchSize = 100, Epochs = 2, Seed = seed }).Train();
        }

        var a = Run(5);
        var b = Run(5);
        var c = Run(6);
        Assert.Equal(a.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy)), b.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy)));
        Assert.NotEqual(a.History[^1].Loss, c.History[^1].Loss);
    }

    [Theory]
    [InlineData("adam", 2, "none")]
    [InlineData("sgd_momentum", 1, "none")]
    [InlineData("rmsprop", 0, "none")]
    [InlineData("adam", 0, "flip")]
    public void A_run_resumed_from_a_checkpoint_ends_bit_identical_to_one_that_never_stopped(string rule, int normalization, string augment)
    {
        var spec = new ModelSpec { HiddenSizes = [30, 20], Dropout = 0.3, Normalization = (Normalization)normalization };
        var options = new SolverOptions { UpdateRule = rule, LearningRate = 5e-4, LrDecay = 0.9, BatchSize = 100, Epochs = 4, Seed = 9, TrainAccuracySamples = 300, Augment = augment };
        var data = _small.Value;
        var setup = new TrainingSetup(spec, options, data.Train, data.Validation);

        var straightModel = new FullyConnectedNet<float>(spec, seed: 9);
        var straight = new Solver<float>(straightModel, setup.TrainingExamples(), data.Validation, options);
        var straightResult = straight.Train();

        var checkpoint = new MemoryStream();
        var first = new Solver<float>(new FullyConnectedNet<float>(spec, seed: 9), setup.TrainingExamples(), data.Validation, options);
        first.Train(onEpoch: m =>
        {
            if (m.Epoch < 2)
            {
                return true;
            }

            first.SaveCheckpoint(checkpoint);
            return false; // the process "dies" here
        });

        var resumedModel = new FullyConnectedNet<float>(spec, seed: 12345); // different init: everything must come from the checkpoint
        var resumed = new Solver<float>(resumedModel, setup.TrainingExamples(), data.Validation, options);
        checkpoint.Position = 0;
        resumed.LoadCheckpoint(checkpoint);
        Assert.Equal(2, resumed.Epoch);
        var resumedResult = resumed.Train();

        Assert.Equal(straightResult.Epochs, resumedResult.Epochs);
        Assert.Equal(straightResult.BestValAccuracy, resumedResult.BestValAccuracy);
        Assert.Equal(straight.LossHistory, resumed.LossHistory);
        Assert.Equal(straight.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy, h.LearningRate)),
            resumed.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy, h.LearningRate)));
        for (var p = 0; p < straightModel.Parameters.Count; p++)
        {
            Assert.Equal(straightModel.Parameters[p].Value, resumedModel.Parameters[p].Value);
        }

        for (var b = 0; b < straightModel.Buffers.Count; b++)
        {
            Assert.Equal(straightModel.Buffers[b].Value, resumedModel.Buffers[b].Value);
        }
    }

    [Fact]
    public void Flip_augmentation_trains_on_mirrored_images_and_the_same_shuffles()
    {
        var spec = new ModelSpec { HiddenSizes = [30] };
        var options = new SolverOptions { UpdateRule = "adam", LearningRate = 5e-4, BatchSize = 100, Epochs = 2, Seed = 3, TrainAccuracySamples = 300 };
        var data = _small.Value;
        var plain = new Solver<float>(new FullyConnectedNet<float>(spec, seed: 3), data.Train, data.Validation, options);
        plain.Train();
        var flipSetup = new TrainingSetup(spec, options with { Augment = "flip" }, data.Train, data.Validation);
        var examples = Assert.IsType<MirroredSplit<float>>(flipSetup.TrainingExamples());
        var flipped = new Solver<float>(new FullyConnectedNet<float>(spec, seed: 3), examples, data.Validation, flipSetup.Options);
        flipped.Train();

        // The first step sees the same examples (the shuffle comes first), about half of them mirrored: another loss.
        Assert.NotEqual(plain.LossHistory[0], flipped.LossHistory[0]);
        Assert.Equal(plain.LossHistory.Count, flipped.LossHistory.Count);
        Assert.Same(data.Train, examples.Original);
    }

    [Fact]
    public void A_checkpoint_for_another_model_shape_is_rejected()
    {
        var data = _small.Value;
        var options = new SolverOptions { BatchSize = 100, Epochs = 1 };
        var a = new Solver<float>(new FullyConnectedNet<float>(new ModelSpec { HiddenSizes = [30] }, 1), data.Train, data.Validation, options);
        var stream = new MemoryStream();
        a.SaveCheckpoint(stream);
        stream.Position = 0;
        var b = new Solver<float>(new FullyConnectedNet<float>(new ModelSpec { HiddenSizes = [31] }, 1), data.Train, data.Validation, options);
        Assert.Throws<InvalidDataException>(() => b.LoadCheckpoint(stream));
        Assert.Throws<InvalidDataException>(() => b.LoadCheckpoint(new MemoryStream([1, 2, 3, 4, 5, 6, 7, 8])));
    }

    [Fact]
    public void Iterations_mode_runs_exactly_that_many_steps_and_decays_each_epoch()
    {
        var data = _small.Value;
        var model = new FullyConnectedNet<float>(new ModelSpec { Kind = ModelKind.Softmax, HiddenSizes = [] }, 1);
        var solver = new Solver<float>(model, data.Train, data.Validation,
            new SolverOptions { LearningRate = 1e-7, LrDecay = 0.5, BatchSize = 200, Iterations = 25, Seed = 1 });
        var result = solver.Train();
        Assert.Equal(25, result.Iterations);
        Assert.Equal(3, result.Epochs); // 10 + 10 + 5 steps
        Assert.Equal([1e-7, 0.5e-7, 0.25e-7], solver.History.Select(h => h.LearningRate).ToArray(), new ToleranceComparer(1e-20));
        Assert.Equal(25, solver.LossHistory.Count);
    }

    [Fact]
    public void The_epoch_callback_can_stop_training_and_the_best_epoch_is_restored()
    {
        var data = _small.Value;
        var model = new FullyConnectedNet<float>(new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [50] }, 1);
        var solver = new Solver<float>(model, data.Train, data.Validation,
            new SolverOptions { LearningRate = 1e-3, BatchSize = 100, Epochs = 10, Seed = 1 });
        var result = solver.Train(onEpoch: m => m.Epoch < 3);
        Assert.Equal(TrainingOutcome.Stopped, result.Outcome);
        Assert.Equal(3, result.Epochs);
        Assert.Equal(result.BestValAccuracy, solver.Accuracy(data.Validation));
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }
}
