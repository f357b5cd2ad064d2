using System.Diagnostics;
using System.Numerics;
using Sweeper.Core;
using Sweeper.Core.Trials;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Training;

/// <summary>
/// The engine's half of a training run, as <see cref="TrainingLoop{T}"/> drives it: a step, an accuracy, and the
/// best-so-far snapshot. Implemented by each engine (the native <see cref="Solver{T}"/>, the torch backend) so that
/// both run the same loop: same shuffles, epochs, samples, best-by-validation rule, decay and divergence rule.
/// </summary>
public interface ITrainingSteps<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>
    /// One training step on exactly one batch of training examples at the loop's current learning rate
    /// (<paramref name="nextIndices"/>, when known, may be prefetched meanwhile). Returns the loss; on a non-finite
    /// loss nothing is updated.
    /// </summary>
    double Step(ReadOnlySpan<int> indices, ReadOnlySpan<int> nextIndices);

    /// <summary>The class each row of <paramref name="x"/> scores highest, in test mode, into <paramref name="classes"/> (x.Rows of them).</summary>
    void Predict(Matrix<T> x, Span<int> classes);

    /// <summary>The current parameters and buffers become the best so far.</summary>
    void KeepBest();

    /// <summary>The best parameters and buffers so far become the current ones.</summary>
    void RestoreBest();
}

/// <summary>
/// The training loop every engine runs: each epoch shuffles the training split, runs max(N / batch, 1) minibatch
/// steps (or stops at <see cref="SolverOptions.Iterations"/>), measures train accuracy on a subsample and validation
/// accuracy, keeps the best parameters by validation accuracy, and decays the learning rate. A non-finite loss ends
/// the run as diverged. It owns the run's bookkeeping (epoch, iteration, learning rate, best epoch, histories, the
/// shuffle generator) and its part of a checkpoint; the engine does the steps (<see cref="ITrainingSteps{T}"/>).
/// Deterministic for a given seed. Not thread-safe.
/// </summary>
public sealed class TrainingLoop<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly IDataSplit<T> _train;
    private readonly IDataSplit<T> _validation;
    private readonly ITrainingSteps<T> _engine;
    private readonly int[] _order;
    private Matrix<T>? _evalX;
    private int[] _predicted = [];

    public TrainingLoop(IDataSplit<T> train, IDataSplit<T> validation, SolverOptions options, ITrainingSteps<T> engine)
    {
        options.Validate();
        if (train.Count == 0)
        {
            throw new ArgumentException("the training split is empty.");
        }

        _train = train;
        _validation = validation;
        _engine = engine;
        Options = options;
        BatchSize = Math.Min(options.BatchSize, train.Count);
        IterationsPerEpoch = Math.Max(train.Count / BatchSize, 1);
        TotalIterations = options.Iterations ?? ((long)options.Epochs * IterationsPerEpoch);
        _order = new int[train.Count];
        ShuffleRng = Rng.Derive(options.Seed, 2);
        LearningRate = options.LearningRate;
    }

    public SolverOptions Options { get; }

    /// <summary>Examples per step: the options' batch size, or the whole split if it is smaller.</summary>
    public int BatchSize { get; }

    public int IterationsPerEpoch { get; }

    public long TotalIterations { get; }

    /// <summary>Epochs finished so far.</summary>
    public int Epoch { get; private set; }

    /// <summary>Minibatch steps taken so far.</summary>
    public long Iteration { get; private set; }

    /// <summary>The learning rate the next step will use.</summary>
    public double LearningRate { get; private set; }

    public double BestValAccuracy { get; private set; } = -1;

    public int BestEpoch { get; private set; }

    /// <summary>The loss of every minibatch step.</summary>
    public List<double> LossHistory { get; } = [];

    public List<EpochRecord> History { get; } = [];

    /// <summary>Draws the shuffles and the train-accuracy samples. Part of a checkpoint.</summary>
    public Rng ShuffleRng { get; private set; }

    /// <summary>
    /// Runs until the last iteration, a diverging loss, or <paramref name="onEpoch"/> returning false.
    /// <paramref name="onIteration"/> sees every step's (iteration, loss). The best parameters are restored at the end.
    /// A checkpoint taken inside <paramref name="onEpoch"/> resumes exactly there.
    /// </summary>
    public TrainingResult Train(Func<EpochRecord, bool>? onEpoch = null, Action<long, double>? onIteration = null, CancellationToken cancellationToken = default)
    {
        var outcome = TrainingOutcome.Completed;
        string? reason = null;
        var epochLoss = 0.0;
        var epochSteps = 0;
        var clock = Stopwatch.StartNew();
        while (Iteration < TotalIterations)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var inEpoch = (int)(Iteration - ((long)Epoch * IterationsPerEpoch));
            if (inEpoch == 0)
            {
                for (var i = 0; i < _order.Length; i++)
                {
                    _order[i] = i;
                }

                ShuffleRng.Shuffle(_order);
                if (_train is MirroredSplit<T> mirrored)
                {
                    // Which examples this epoch mirrors: drawn from the generator a checkpoint keeps (and only when
                    // augmenting, so that runs without it draw the same shuffles as ever).
                    mirrored.Key = ShuffleRng.NextULong();
                }
            }

            var next = inEpoch + 1 < IterationsPerEpoch ? _order.AsSpan((inEpoch + 1) * BatchSize, BatchSize) : default;
            var loss = _engine.Step(_order.AsSpan(inEpoch * BatchSize, BatchSize), next);
            if (!double.IsFinite(loss))
            {
                outcome = TrainingOutcome.Diverged;
                reason = $"loss became {loss} at iteration {Iteration + 1} (epoch {Epoch + 1}, learning rate {LearningRate:g4})";
                onIteration?.Invoke(Iteration + 1, loss);
                break;
            }

            Iteration++;
            LossHistory.Add(loss);
            epochLoss += loss;
            epochSteps++;
            onIteration?.Invoke(Iteration, loss);

            if (inEpoch + 1 == IterationsPerEpoch || Iteration == TotalIterations)
            {
                var metrics = EndEpoch(epochLoss / epochSteps, clock.Elapsed.TotalSeconds);
                epochLoss = 0;
                epochSteps = 0;
                clock.Restart();
                if (onEpoch is not null && !onEpoch(metrics))
                {
                    outcome = TrainingOutcome.Stopped;
                    reason = $"stopped after epoch {metrics.Epoch}";
                    break;
                }
            }
        }

        RestoreBest();
        var best = History.FirstOrDefault(h => h.Epoch == BestEpoch);
        return new TrainingResult(outcome, Epoch, Iteration, BestEpoch, Math.Max(BestValAccuracy, 0), best?.TrainAccuracy ?? 0,
            LossHistory.Count > 0 ? LossHistory[^1] : double.NaN, History, reason);
    }

    /// <summary>
    /// Fraction of <paramref name="split"/>'s examples (all, or the given indices) the engine classifies right, in
    /// test mode, gathered <see cref="SolverOptions.EvaluationBatch"/> rows at a time.
    /// </summary>
    public double Accuracy(IDataSplit<T> split, int[]? indices = null)
    {
        indices ??= Enumerable.Range(0, split.Count).ToArray();
        if (indices.Length == 0)
        {
            return 0;
        }

        var chunk = Math.Min(Options.EvaluationBatch, indices.Length);
        if (_evalX is null || _evalX.Rows != chunk || _evalX.Cols != split.Dim)
        {
            _evalX = new Matrix<T>(chunk, split.Dim);
        }

        if (_predicted.Length < chunk)
        {
            _predicted = new int[chunk];
        }

        var correct = 0;
        for (var start = 0; start < indices.Length; start += chunk)
        {
            var count = Math.Min(chunk, indices.Length - start);
            var x = count == chunk ? _evalX : new Matrix<T>(count, split.Dim);
            var part = indices.AsSpan(start, count);
            split.Gather(part, x);
            _engine.Predict(x, _predicted.AsSpan(0, count));
            for (var i = 0; i < count; i++)
            {
                if (_predicted[i] == split.Labels[part[i]])
                {
                    correct++;
                }
            }
        }

        return (double)correct / indices.Length;
    }

    /// <summary>Puts the best-so-far parameters (by validation accuracy) into the model; nothing before the first epoch ends.</summary>
    public void RestoreBest()
    {
        if (BestEpoch != 0)
        {
            _engine.RestoreBest();
        }
    }

    /// <summary>A checkpoint of the run: the loop's bookkeeping with the engine's generator state, parameters and buffers.</summary>
    public CheckpointState<T> Checkpoint(ulong[] dropoutRng, IReadOnlyList<CheckpointParameter<T>> parameters, IReadOnlyList<CheckpointBuffer<T>> buffers) => new()
    {
        Epoch = Epoch,
        Iteration = Iteration,
        LearningRate = LearningRate,
        BestValAccuracy = BestValAccuracy,
        BestEpoch = BestEpoch,
        ShuffleRng = ShuffleRng.GetState(),
        DropoutRng = dropoutRng,
        LossHistory = LossHistory,
        History = History,
        IterationsPerEpoch = IterationsPerEpoch,
        TotalIterations = TotalIterations,
        Parameters = parameters,
        Buffers = buffers,
    };

    /// <summary>Takes the loop's bookkeeping from a checkpoint (the engine has checked that the rest fits its model).</summary>
    public void Resume(CheckpointState<T> state)
    {
        Epoch = state.Epoch;
        Iteration = state.Iteration;
        LearningRate = state.LearningRate;
        BestValAccuracy = state.BestValAccuracy;
        BestEpoch = state.BestEpoch;
        ShuffleRng = Rng.FromState(state.ShuffleRng);
        LossHistory.Clear();
        LossHistory.AddRange(state.LossHistory);
        History.Clear();
        History.AddRange(state.History);
    }

    private EpochRecord EndEpoch(double meanLoss, double seconds)
    {
        Epoch++;
        var sample = new int[Math.Min(Options.TrainAccuracySamples, _train.Count)];
        for (var i = 0; i < sample.Length; i++)
        {
            sample[i] = ShuffleRng.NextInt(_train.Count);
        }

        var trainAcc = Accuracy(_train is MirroredSplit<T> m ? m.Original : _train, sample);
        var valIndices = Options.ValidationSamples is { } v && v < _validation.Count ? Enumerable.Range(0, v).ToArray() : null;
        var valAcc = Accuracy(_validation, valIndices);
        if (valAcc > BestValAccuracy)
        {
            BestValAccuracy = valAcc;
            BestEpoch = Epoch;
            _engine.KeepBest();
        }

        var metrics = new EpochRecord(Epoch, meanLoss, trainAcc, valAcc, LearningRate, seconds);
        History.Add(metrics);
        LearningRate *= Options.LrDecay;
        return metrics;
    }
}
