using Sweeper.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Torch;
using Sweeper.Engine.Training;

namespace Sweeper.Engine.Tests;

/// <summary>
/// The torch engine against the native one: from the same seed both start from the same weights; on the same
/// minibatches (and the same dropout masks) every model's loss and gradients agree to float32 tolerance; a few epochs
/// of training follow the same curve; and a torch run resumed from a checkpoint ends bit-identical on the CPU.
/// </summary>
public class CrossCheckTests
{
    private static readonly Lazy<Cifar10Dataset<float>> _small = new(() =>
        Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 1_000, ValSize = 200, TestSize = 0 }));

    public static TheoryData<string, ModelSpec> Models()
    {
        var small = new ModelSpec { InputDim = 37, NumClasses = 10, WeightScale = 0.05 };
        var data = new TheoryData<string, ModelSpec>();
        foreach (var reg in new[] { 0.0, 0.3 })
        {
            data.Add($"softmax reg={reg}", small with { Kind = ModelKind.Softmax, HiddenSizes = [], Reg = reg });
            data.Add($"svm reg={reg}", small with { Kind = ModelKind.Svm, HiddenSizes = [], Reg = reg });
            data.Add($"two_layer reg={reg}", small with { Kind = ModelKind.TwoLayer, HiddenSizes = [24], Reg = reg });
            data.Add($"fc reg={reg}", small with { HiddenSizes = [24, 16], Reg = reg });
            data.Add($"fc batchnorm reg={reg}", small with { HiddenSizes = [24, 16], Normalization = Normalization.Batch, Reg = reg });
            data.Add($"fc layernorm reg={reg}", small with { HiddenSizes = [24, 16], Normalization = Normalization.Layer, Reg = reg });
            data.Add($"fc dropout reg={reg}", small with { HiddenSizes = [24, 16], Dropout = 0.3, Reg = reg });
            data.Add($"fc batchnorm+dropout reg={reg}", small with { HiddenSizes = [24, 16, 12], Normalization = Normalization.Batch, Dropout = 0.25, Reg = reg });
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Losses_and_gradients_agree_with_the_native_engine_on_the_same_batches(string name, ModelSpec spec)
    {
        var rng = new Rng(5);
        var x = new Matrix<float>(64, spec.InputDim);
        rng.FillGaussian<float>(x.Span, 1.0);
        var y = Enumerable.Range(0, 64).Select(_ => rng.NextInt(spec.NumClasses)).ToArray();
        var split = new InMemorySplit<float>(x, y);
        var native = new FullyConnectedNet<float>(spec, seed: 11);
        using var torch = new TorchBackend(new TrainingSetup(spec, new SolverOptions { Seed = 11, BatchSize = 64 }, split, split));

        // Same seed, same initial weights, bit for bit.
        var initial = torch.ExportParameters();
        foreach (var p in native.Parameters)
        {
            Assert.Equal(p.Value, initial[p.Name]);
        }

        // Three consecutive batches: dropout masks and batchnorm running statistics move on in step in both engines.
        for (var batch = 0; batch < 3; batch++)
        {
            rng.FillGaussian<float>(x.Span, 1.0 + batch);
            var nativeLoss = native.Loss(x, y);
            var (torchLoss, grads) = torch.LossAndGradients(x, y);
            Assert.True(Math.Abs(nativeLoss - torchLoss) <= 2e-5 * Math.Max(1, Math.Abs(nativeLoss)), $"{name} batch {batch}: loss native {nativeLoss} torch {torchLoss}");
            foreach (var p in native.Parameters)
            {
                AssertClose(p.Grad, grads[p.Name], $"{name} batch {batch}: d{p.Name}");
            }
        }
    }

    [Theory]
    [InlineData("two_layer", "sgd")]
    [InlineData("softmax", "sgd_momentum")]
    [InlineData("fc_bn", "rmsprop")]
    [InlineData("fc_ln_dropout", "adam")]
    [InlineData("two_layer_flip", "adam")]
    public void A_few_epochs_follow_the_native_training_curve(string model, string rule)
    {
        var spec = model switch
        {
            "two_layer" or "two_layer_flip" => new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [50], WeightScale = 1e-3 },
            "softmax" => new ModelSpec { Kind = ModelKind.Softmax, HiddenSizes = [], Reg = 1e-3 },
            "fc_bn" => new ModelSpec { HiddenSizes = [40, 30], Normalization = Normalization.Batch, Reg = 1e-3 },
            _ => new ModelSpec { HiddenSizes = [40, 30], Normalization = Normalization.Layer, Dropout = 0.2 },
        };
        var options = new SolverOptions { UpdateRule = rule, LearningRate = model == "softmax" ? 1e-7 : 1e-4, LrDecay = 0.9, BatchSize = 100, Epochs = 3, Seed = 4, TrainAccuracySamples = 200,
            Augment = model.EndsWith("_flip", StringComparison.Ordinal) ? "flip" : "none" }; // both engines mirror the same images
        var setup = new TrainingSetup(spec, options, _small.Value.Train, _small.Value.Validation);
        using var native = new NativeBackend(setup);
        using var torch = new TorchBackend(setup);
        var a = native.Train();
        var b = torch.Train();

        Assert.Equal(a.Outcome, b.Outcome);
        Assert.Equal(native.Solver.LossHistory.Count, torch.LossHistory.Count);
        for (var i = 0; i < torch.LossHistory.Count; i++)
        {
            var (l1, l2) = (native.Solver.LossHistory[i], torch.LossHistory[i]);
            Assert.True(Math.Abs(l1 - l2) <= 1e-3 * Math.Abs(l1), $"step {i + 1}: loss native {l1} torch {l2}");
        }

        // The loss went down, so the curve is a curve and not two flat lines.
        Assert.True(torch.LossHistory[^1] < torch.LossHistory[0], $"loss {torch.LossHistory[0]} -> {torch.LossHistory[^1]}");
        for (var e = 0; e < a.History.Count; e++)
        {
            // An example or two may flip where float32 rounding differs between the engines.
            Assert.InRange(b.History[e].ValAccuracy, a.History[e].ValAccuracy - 0.015, a.History[e].ValAccuracy + 0.015);
            Assert.InRange(b.History[e].TrainAccuracy, a.History[e].TrainAccuracy - 0.015, a.History[e].TrainAccuracy + 0.015);
            Assert.Equal(a.History[e].LearningRate, b.History[e].LearningRate);
        }
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public void A_torch_run_resumed_from_a_checkpoint_ends_bit_identical_on_the_cpu(string rule)
    {
        var spec = new ModelSpec { HiddenSizes = [40, 30], Normalization = Normalization.Batch, Dropout = 0.2, Reg = 1e-3 };
        var options = new SolverOptions { UpdateRule = rule, LearningRate = 5e-4, LrDecay = 0.9, BatchSize = 100, Epochs = 4, Seed = 9, TrainAccuracySamples = 300 };
        var setup = new TrainingSetup(spec, options, _small.Value.Train, _small.Value.Validation);

        using var straight = new TorchBackend(setup);
        var full = straight.Train();

        var checkpoint = new MemoryStream();
        using (var first = new TorchBackend(setup))
        {
            first.Train(m =>
            {
                checkpoint.SetLength(0);
                first.SaveCheckpoint(checkpoint);
                return m.Epoch < 2;
            });
        }

        checkpoint.Position = 0;
        using var resumed = new TorchBackend(setup with { Options = options with { Seed = 12345 } }); // different init: everything must come from the checkpoint
        var origin = resumed.LoadCheckpoint(checkpoint);
        Assert.Equal(resumed.Origin, origin);
        Assert.Equal(2, resumed.Epoch);
        var rest = resumed.Train();

        Assert.Equal(full.Outcome, rest.Outcome);
        Assert.Equal(straight.LossHistory, resumed.LossHistory);
        Assert.Equal(full.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy)), rest.History.Select(h => (h.Loss, h.TrainAccuracy, h.ValAccuracy)));
        var (p1, p2) = (straight.ExportParameters(), resumed.ExportParameters());
        foreach (var (name, values) in p1)
        {
            Assert.Equal(values, p2[name]);
        }
    }

    [Fact]
    public void Checkpoints_cross_engines_and_say_where_they_were_made()
    {
        var spec = new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [30] };
        var options = new SolverOptions { UpdateRule = "adam", LearningRate = 1e-3, BatchSize = 100, Epochs = 2, Seed = 3, TrainAccuracySamples = 100 };
        var setup = new TrainingSetup(spec, options, _small.Value.Train, _small.Value.Validation);
        using var torch = new TorchBackend(setup);
        torch.Train();
        var bytes = new MemoryStream();
        torch.SaveCheckpoint(bytes);

        var origin = CheckpointOrigin.Read(bytes.ToArray());
        Assert.Equal("torch", origin.Engine);
        Assert.Equal("cpu", origin.Device);
        Assert.StartsWith("libtorch 2.10.0", origin.Kernel);

        // The dashboard's reader takes a torch checkpoint: its best W1 is the torch run's restored best.
        var best = Solver<float>.ReadBestParameters(new MemoryStream(bytes.ToArray()));
        Assert.Equal(torch.ExportParameters()["W1"], best["W1"]);

        // A native backend resumes it and reports the change of engine; its accuracy is the torch model's.
        using var native = new NativeBackend(setup);
        bytes.Position = 0;
        var from = native.LoadCheckpoint(bytes);
        Assert.Equal(origin, from);
        Assert.StartsWith("engine torch -> native", native.Origin.DifferenceFrom(from));
        Assert.Null(torch.Origin.DifferenceFrom(from));
        Assert.InRange(native.Accuracy(_small.Value.Validation), torch.Accuracy(_small.Value.Validation) - 0.01, torch.Accuracy(_small.Value.Validation) + 0.01);
    }

    [Fact]
    public void The_factory_chooses_by_name_and_refuses_cuda_without_a_cuda_runtime_saying_what_to_install()
    {
        var setup = new TrainingSetup(new ModelSpec { Kind = ModelKind.Softmax, HiddenSizes = [] }, new SolverOptions(), _small.Value.Train, _small.Value.Validation);
        using (var torch = TrainingEngines.Create("torch", setup))
        {
            Assert.IsType<TorchBackend>(torch);
        }

        using (var native = TrainingEngines.Create(null, setup))
        {
            Assert.IsType<NativeBackend>(native);
        }

        var cuda = Assert.Throws<TrainingEngineUnavailableException>(() => TrainingEngines.Create("torch", setup with { Device = "cuda" }));
        Assert.Contains("no usable CUDA runtime", cuda.Message);
        Assert.Contains("libtorch-cuda", cuda.Message);
        Assert.Contains("CPU only", Assert.Throws<ArgumentException>(() => TrainingEngines.Create("native", setup with { Device = "cuda" })).Message);
        Assert.Contains("unknown engine 'jax'", Assert.Throws<ArgumentException>(() => TrainingEngines.Create("jax", setup)).Message);
        Assert.Contains("unknown device 'tpu'", Assert.Throws<ArgumentException>(() => TrainingEngines.Create("torch", setup with { Device = "tpu" })).Message);
    }

    [Fact]
    public void A_diverging_torch_run_ends_as_diverged_with_finite_best_parameters()
    {
        var setup = new TrainingSetup(new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [50], WeightScale = 1e-2 },
            new SolverOptions { LearningRate = 1e3, BatchSize = 100, Epochs = 5, Seed = 1 }, _small.Value.Train, _small.Value.Validation);
        using var torch = new TorchBackend(setup);
        var result = torch.Train();
        Assert.Equal(TrainingOutcome.Diverged, result.Outcome);
        Assert.Contains("loss became", result.Reason);
        Assert.All(torch.ExportParameters().Values, p => Assert.All(p, v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void Training_steps_free_their_native_memory_as_they_go_and_libtorch_runs_one_thread()
    {
        var setup = new TrainingSetup(new ModelSpec { HiddenSizes = [100, 100], Normalization = Normalization.Batch, Dropout = 0.5 },
            new SolverOptions { UpdateRule = "adam", BatchSize = 200, Seed = 1 }, _small.Value.Train, _small.Value.Validation);
        using var backend = (TorchBackend)new TorchBackendFactory().Create(setup);
        Assert.Equal(1, TorchSharp.torch.get_num_threads());
        var batch = Enumerable.Range(0, 200).ToArray();
        for (var i = 0; i < 50; i++)
        {
            backend.Step(batch);
        }

        // Each step makes about 3 MB of tensors (the 200 x 3072 input alone is 2.4 MB): 300 steps that leaked them
        // would add 900 MB, which the garbage collector would not notice (it sees only the small managed wrappers).
        var before = ResidentMegabytes();
        for (var i = 0; i < 300; i++)
        {
            backend.Step(batch);
        }

        var growth = ResidentMegabytes() - before;
        Assert.True(growth < 100, $"resident memory grew by {growth:F0} MB over 300 steps");
    }

    [Fact]
    public void Long_runs_beside_a_busy_garbage_collector_never_see_a_freed_libtorch_value()
    {
        // A Scalar that nothing references any more may be finalized (its native value freed) while libtorch still
        // reads it; with collections running all the time that shows within a few hundred steps.
        var stop = false;
        var collector = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        collector.Start();
        try
        {
            var batch = Enumerable.Range(0, 100).ToArray();
            foreach (var rule in UpdateRule.Names)
            {
                foreach (var norm in new[] { Normalization.Batch, Normalization.Layer })
                {
                    var setup = new TrainingSetup(new ModelSpec { HiddenSizes = [30, 20], Normalization = norm, Dropout = 0.3, Reg = 1e-3 },
                        new SolverOptions { UpdateRule = rule, LearningRate = 1e-4, BatchSize = 100, Seed = 1 }, _small.Value.Train, _small.Value.Validation);
                    using var backend = new TorchBackend(setup);
                    for (var i = 0; i < 150; i++)
                    {
                        Assert.True(double.IsFinite(backend.Step(batch)), $"{rule} {norm} step {i}");
                    }
                }
            }

            using var svm = new TorchBackend(new TrainingSetup(new ModelSpec { Kind = ModelKind.Svm, HiddenSizes = [], Reg = 1e-3 },
                new SolverOptions { UpdateRule = "sgd_momentum", LearningRate = 1e-7, BatchSize = 100, Seed = 1 }, _small.Value.Train, _small.Value.Validation));
            for (var i = 0; i < 150; i++)
            {
                svm.Step(batch);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            collector.Join();
        }
    }

    private static double ResidentMegabytes()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
    }

    /// <summary>Float32 agreement of two gradients: every element within 1e-4 of the gradient's largest magnitude (at least 1e-3).</summary>
    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(expected.Max(Math.Abs), 1e-3f); // a floor for gradients that are zero but for rounding (a bias before batch norm)
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= 1e-4 * scale, $"{what}: largest difference {worst:e3} against a scale of {scale:e3}");
    }
}
