using System.Numerics;
using Sweeper.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;

namespace Sweeper.Engine.Training;

/// <summary>How the Solver trains. Every default is here, each with its reason.</summary>
public sealed record SolverOptions
{
    /// <summary>sgd, sgd_momentum, rmsprop or adam. Default: sgd.</summary>
    public string UpdateRule { get; init; } = "sgd";

    /// <summary>Initial learning rate. Default: 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>The learning rate is multiplied by this after every epoch. Default: 1 (no decay).</summary>
    public double LrDecay { get; init; } = 1.0;

    /// <summary>Examples per minibatch. Default: 200.</summary>
    public int BatchSize { get; init; } = 200;

    /// <summary>Passes over the training split. Ignored when <see cref="Iterations"/> is set. Default: 10.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Total minibatch steps, as in the cs231n notebooks; the last epoch may be partial. Default: none (use epochs).</summary>
    public long? Iterations { get; init; }

    public UpdateSettings Update { get; init; } = new();

    /// <summary>Data augmentation of the training examples: none, or flip (each image mirrored left to right with probability 1/2, drawn afresh each epoch; <see cref="Data.MirroredSplit{T}"/>). Default: none.</summary>
    public string Augment { get; init; } = "none";

    /// <summary>Training examples drawn (with replacement) for each epoch's train accuracy. Default: 1,000.</summary>
    public int TrainAccuracySamples { get; init; } = 1_000;

    /// <summary>Validation examples used for validation accuracy; null uses all. Default: all.</summary>
    public int? ValidationSamples { get; init; }

    /// <summary>Rows per forward pass when computing accuracies. Default: 1,000.</summary>
    public int EvaluationBatch { get; init; } = 1_000;

    /// <summary>Seeds the shuffles and subsamples. Default: 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// How a trial trains: every setting it names (its seed too), the defaults above for the rest (those of
    /// <see cref="UpdateSettings"/> for the update rules' settings). Throws <see cref="ArgumentException"/> for options
    /// <see cref="Validate"/> refuses.
    /// </summary>
    public static SolverOptions From(TrialConfiguration trial)
    {
        var defaults = new SolverOptions();
        var update = new UpdateSettings();
        var options = new SolverOptions
        {
            UpdateRule = trial.UpdateRule ?? defaults.UpdateRule,
            LearningRate = trial.LearningRate ?? defaults.LearningRate,
            LrDecay = trial.LrDecay ?? defaults.LrDecay,
            BatchSize = trial.BatchSize ?? defaults.BatchSize,
            Epochs = trial.Epochs ?? defaults.Epochs,
            Iterations = trial.Iterations ?? defaults.Iterations,
            Seed = trial.Seed,
            Augment = trial.Augment ?? defaults.Augment,
            Update = update with
            {
                Momentum = trial.Momentum ?? update.Momentum,
                DecayRate = trial.DecayRate ?? update.DecayRate,
                Beta1 = trial.Beta1 ?? update.Beta1,
                Beta2 = trial.Beta2 ?? update.Beta2,
            },
        };
        options.Validate();
        return options;
    }

    public void Validate()
    {
        _ = Training.UpdateRule.Create(UpdateRule, Update);
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate))
        {
            throw new ArgumentException($"learning rate must be a finite number > 0 (got {LearningRate}).");
        }

        if (!(LrDecay > 0 && LrDecay <= 1))
        {
            throw new ArgumentException($"lr decay must lie in (0, 1] (got {LrDecay}).");
        }

        if (Augment is not ("none" or "flip"))
        {
            throw new ArgumentException($"augment must be none or flip (got {Augment}).");
        }

        if (BatchSize <= 0 || Epochs <= 0 || Iterations is <= 0 || TrainAccuracySamples <= 0 || EvaluationBatch <= 0)
        {
            throw new ArgumentException("batch size, epochs, iterations, train accuracy samples and evaluation batch must be positive.");
        }
    }
}

/// <summary>How a training run ended.</summary>
public enum TrainingOutcome
{
    /// <summary>Every epoch or iteration ran.</summary>
    Completed,

    /// <summary>The loss became NaN or infinite; the best parameters so far were restored.</summary>
    Diverged,

    /// <summary>The epoch callback asked to stop (a stopping rule pruned the run).</summary>
    Stopped,
}

/// <summary>The result of <see cref="Solver{T}.Train"/>. Accuracies are those of the best epoch by validation accuracy.</summary>
public sealed record TrainingResult(
    TrainingOutcome Outcome,
    int Epochs,
    long Iterations,
    int BestEpoch,
    double BestValAccuracy,
    double TrainAccuracy,
    double FinalLoss,
    IReadOnlyList<EpochRecord> History,
    string? Reason);

/// <summary>
/// Trains a model with minibatch gradient descent: the native engine's steps (gather, forward, loss, backward,
/// update) under the <see cref="TrainingLoop{T}"/> that both engines share (each epoch shuffles the training split,
/// runs max(N / batch, 1) minibatch steps, measures train accuracy on a subsample and validation accuracy, keeps the
/// best parameters by validation accuracy, and decays the learning rate). Deterministic for a given seed; a run
/// resumed from a checkpoint ends bit-identical to one that never stopped. Not thread-safe.
/// </summary>
public sealed class Solver<T> : ITrainingSteps<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FullyConnectedNet<T> _model;
    private readonly IDataSplit<T> _train;
    private readonly UpdateRule _rule;

    /// <summary>Plain SGD is applied inside the backward pass (see <see cref="FullyConnectedNet{T}.SgdStep"/>).</summary>
    private readonly bool _fusedSgd;
    private readonly ParameterState<T>[] _states;
    private readonly TrainingLoop<T> _loop;
    private readonly int _batch;
    private readonly Matrix<T> _batchX;
    private readonly int[] _batchY;
    private readonly T[][] _bestParams;
    private readonly T[][] _bestBuffers;

    public Solver(FullyConnectedNet<T> model, IDataSplit<T> train, IDataSplit<T> validation, SolverOptions options)
    {
        _loop = new TrainingLoop<T>(train, validation, options, this);
        if (train.Dim != model.InputDim || validation.Dim != model.InputDim)
        {
            throw new ArgumentException($"the model takes {model.InputDim} features but the data has {train.Dim}.");
        }

        _model = model;
        _train = train;
        Options = options;
        _rule = UpdateRule.Create(options.UpdateRule, options.Update);
        _fusedSgd = _rule.Name == "sgd";
        _states = model.Parameters.Select(p => _rule.CreateState<T>(p.Value.Length)).ToArray();
        _batch = _loop.BatchSize;
        _batchX = new Matrix<T>(_batch, train.Dim);
        _batchY = new int[_batch];
        _bestParams = model.Parameters.Select(p => (T[])p.Value.Clone()).ToArray();
        _bestBuffers = model.Buffers.Select(b => (T[])b.Value.Clone()).ToArray();
    }

    public SolverOptions Options { get; }

    public FullyConnectedNet<T> Model => _model;

    /// <summary>Epochs finished so far.</summary>
    public int Epoch => _loop.Epoch;

    /// <summary>Minibatch steps taken so far.</summary>
    public long Iteration => _loop.Iteration;

    public long TotalIterations => _loop.TotalIterations;

    public int IterationsPerEpoch => _loop.IterationsPerEpoch;

    /// <summary>The learning rate the next step will use.</summary>
    public double LearningRate => _loop.LearningRate;

    public double BestValAccuracy => _loop.BestValAccuracy;

    public int BestEpoch => _loop.BestEpoch;

    /// <summary>The loss of every minibatch step.</summary>
    public List<double> LossHistory => _loop.LossHistory;

    public List<EpochRecord> History => _loop.History;

    /// <inheritdoc cref="TrainingLoop{T}.Train"/>
    public TrainingResult Train(Func<EpochRecord, bool>? onEpoch = null, Action<long, double>? onIteration = null, CancellationToken cancellationToken = default) =>
        _loop.Train(onEpoch, onIteration, cancellationToken);

    /// <summary>
    /// One training step on the given training examples (exactly one batch of them): gather, forward, loss, backward
    /// and update at the current learning rate. <paramref name="nextIndices"/>, when known, are prefetched meanwhile. Returns the loss; on a non-finite loss nothing is updated.
    /// No bookkeeping: <see cref="Train"/> counts iterations and epochs. Benchmarks call it directly.
    /// </summary>
    public double Step(ReadOnlySpan<int> indices, ReadOnlySpan<int> nextIndices = default)
    {
        if (indices.Length != _batch)
        {
            throw new ArgumentException($"a step takes exactly {_batch} examples, not {indices.Length}.", nameof(indices));
        }

        for (var i = 0; i < indices.Length; i++)
        {
            _batchY[i] = _train.Labels[indices[i]];
        }

        double loss;
        if (_model.GathersOwnBatch(_fusedSgd))
        {
            // The model gathers the batch itself, in the layout its kernels read: block by block for the linear
            // classifier, panels and strips for the input-layer kernels (see FullyConnectedNet.UsesInputKernels).
            if (!nextIndices.IsEmpty)
            {
                _train.Prefetch(nextIndices);
            }

            if (_fusedSgd)
            {
                return _model.SgdStep(_train, indices, _batchY, LearningRate);
            }

            loss = _model.Loss(_train, indices, _batchY);
        }
        else
        {
            _train.Gather(indices, _batchX);
            if (!nextIndices.IsEmpty)
            {
                _train.Prefetch(nextIndices);
            }

            if (_fusedSgd)
            {
                return _model.SgdStep(_batchX, _batchY, LearningRate);
            }

            loss = _model.Loss(_batchX, _batchY);
        }

        if (double.IsFinite(loss))
        {
            for (var p = 0; p < _states.Length; p++)
            {
                var parameter = _model.Parameters[p];
                _rule.Update<T>(parameter.Value, parameter.Grad, _states[p], LearningRate);
            }
        }

        return loss;
    }

    /// <summary>Fraction of <paramref name="split"/>'s examples (all, or the given indices) the model classifies right, in test mode.</summary>
    public double Accuracy(IDataSplit<T> split, int[]? indices = null) => _loop.Accuracy(split, indices);

    void ITrainingSteps<T>.Predict(Matrix<T> x, Span<int> classes) => Ops.ArgMaxRows(_model.Scores(x), classes);

    /// <summary>Puts the best-so-far parameters (by validation accuracy) into the model, e.g. after loading a final checkpoint.</summary>
    public void RestoreBestParameters() => _loop.RestoreBest();

    void ITrainingSteps<T>.KeepBest()
    {
        for (var p = 0; p < _bestParams.Length; p++)
        {
            _model.Parameters[p].Value.CopyTo(_bestParams[p], 0);
        }

        for (var b = 0; b < _bestBuffers.Length; b++)
        {
            _model.Buffers[b].Value.CopyTo(_bestBuffers[b], 0);
        }
    }

    void ITrainingSteps<T>.RestoreBest()
    {
        for (var p = 0; p < _bestParams.Length; p++)
        {
            _bestParams[p].CopyTo(_model.Parameters[p].Value, 0);
        }

        for (var b = 0; b < _bestBuffers.Length; b++)
        {
            _bestBuffers[b].CopyTo(_model.Buffers[b].Value, 0);
        }
    }

    /// <summary>
    /// The engine, device and kernel this Solver's checkpoints record: the native engine on the CPU with the OpenBLAS
    /// kernel running now (see <see cref="BlasCoreSelection"/>).
    /// </summary>
    public static CheckpointOrigin NativeOrigin => new("native", "cpu", $"OpenBLAS {Blas.CurrentCore}");

    /// <summary>
    /// Writes everything needed to resume: where it was made (<see cref="NativeOrigin"/>), parameters, batchnorm
    /// statistics, optimizer state, epoch, iteration, learning rate, both random generators, best-so-far parameters
    /// and the histories (see <see cref="CheckpointFormat"/>). Take it between epochs (inside the epoch callback).
    /// </summary>
    public void SaveCheckpoint(Stream stream) => CheckpointFormat.Write(stream, NativeOrigin, _loop.Checkpoint(
        _model.DropoutRng.GetState(),
        _model.Parameters.Select((p, i) => new CheckpointParameter<T>(p.Name, p.Value, _bestParams[i], _states[i].Step, _states[i].Slots)).ToArray(),
        _model.Buffers.Select((b, i) => new CheckpointBuffer<T>(b.Name, b.Value, _bestBuffers[i])).ToArray()));

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> (or by another engine: they share the format) for
    /// a model of the same shape and update rule, and returns where it was made. Throws
    /// <see cref="InvalidDataException"/> otherwise, leaving the Solver as it was.
    /// </summary>
    public CheckpointOrigin LoadCheckpoint(Stream stream)
    {
        var (origin, state) = CheckpointFormat.Read<T>(stream);
        if (state.Parameters.Count != _model.Parameters.Count)
        {
            throw new InvalidDataException("checkpoint holds a different number of parameters than the model.");
        }

        if (state.Buffers.Count != _model.Buffers.Count)
        {
            throw new InvalidDataException("checkpoint holds a different number of buffers than the model.");
        }

        for (var p = 0; p < _model.Parameters.Count; p++)
        {
            var (parameter, saved) = (_model.Parameters[p], state.Parameters[p]);
            if (saved.Name != parameter.Name)
            {
                throw new InvalidDataException($"checkpoint parameter {p} is {saved.Name}, the model's is {parameter.Name}.");
            }

            CheckLength(saved.Name, saved.Value, parameter.Value);
            CheckLength(saved.Name, saved.Best, parameter.Value);
            if (saved.Slots.Length != _states[p].Slots.Length)
            {
                throw new InvalidDataException($"checkpoint optimizer state for {saved.Name} does not fit the {_rule.Name} update rule.");
            }

            foreach (var slot in saved.Slots)
            {
                CheckLength(saved.Name, slot, parameter.Value);
            }
        }

        for (var b = 0; b < _model.Buffers.Count; b++)
        {
            CheckLength(state.Buffers[b].Name, state.Buffers[b].Value, _model.Buffers[b].Value);
            CheckLength(state.Buffers[b].Name, state.Buffers[b].Best, _model.Buffers[b].Value);
        }

        _loop.Resume(state);
        _model.DropoutRng = Rng.FromState(state.DropoutRng);
        for (var p = 0; p < _model.Parameters.Count; p++)
        {
            var saved = state.Parameters[p];
            saved.Value.CopyTo(_model.Parameters[p].Value, 0);
            saved.Best.CopyTo(_bestParams[p], 0);
            _states[p].Step = saved.Step;
            for (var k = 0; k < saved.Slots.Length; k++)
            {
                saved.Slots[k].CopyTo(_states[p].Slots[k], 0);
            }
        }

        for (var b = 0; b < _model.Buffers.Count; b++)
        {
            state.Buffers[b].Value.CopyTo(_model.Buffers[b].Value, 0);
            state.Buffers[b].Best.CopyTo(_bestBuffers[b], 0);
        }

        return origin;
    }

    /// <summary>
    /// The best-so-far parameters stored in a checkpoint of either engine, by name (W1, b1, ...), without building a
    /// model: for looking at learned weights. Throws <see cref="InvalidDataException"/> on anything but a checkpoint of this precision.
    /// </summary>
    public static Dictionary<string, T[]> ReadBestParameters(Stream stream) => CheckpointFormat.ReadBestParameters<T>(stream);

    private static void CheckLength(string name, T[] saved, T[] model)
    {
        if (saved.Length != model.Length)
        {
            throw new InvalidDataException($"checkpoint array {name} has {saved.Length} elements, the model's has {model.Length}.");
        }
    }
}
