using System.Diagnostics;
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
/// Trains a model with minibatch gradient descent: each epoch shuffles the training split, runs
/// max(N / batch, 1) minibatch steps, measures train accuracy on a subsample and validation accuracy, keeps the best
/// parameters by validation accuracy, and decays the learning rate. Deterministic for a given seed; a run resumed
/// from a checkpoint ends bit-identical to one that never stopped. Not thread-safe.
/// </summary>
public sealed class Solver<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FullyConnectedNet<T> _model;
    private readonly IDataSplit<T> _train;
    private readonly IDataSplit<T> _val;
    private readonly UpdateRule _rule;

    /// <summary>Plain SGD is applied inside the backward pass (see <see cref="FullyConnectedNet{T}.SgdStep"/>).</summary>
    private readonly bool _fusedSgd;
    private readonly ParameterState<T>[] _states;
    private readonly int _batch;
    private readonly int _itersPerEpoch;
    private readonly long _totalIterations;
    private readonly Matrix<T> _batchX;
    private readonly int[] _batchY;
    private readonly int[] _order;
    private Matrix<T>? _evalX;
    private Rng _rng;
    private T[][] _bestParams;
    private T[][] _bestBuffers;

    public Solver(FullyConnectedNet<T> model, IDataSplit<T> train, IDataSplit<T> validation, SolverOptions options)
    {
        options.Validate();
        if (train.Count == 0)
        {
            throw new ArgumentException("the training split is empty.");
        }

        if (train.Dim != model.InputDim || validation.Dim != model.InputDim)
        {
            throw new ArgumentException($"the model takes {model.InputDim} features but the data has {train.Dim}.");
        }

        _model = model;
        _train = train;
        _val = validation;
        Options = options;
        _rule = UpdateRule.Create(options.UpdateRule, options.Update);
        _fusedSgd = _rule.Name == "sgd";
        _states = model.Parameters.Select(p => _rule.CreateState<T>(p.Value.Length)).ToArray();
        _batch = Math.Min(options.BatchSize, train.Count);
        _itersPerEpoch = Math.Max(train.Count / _batch, 1);
        _totalIterations = options.Iterations ?? ((long)options.Epochs * _itersPerEpoch);
        _batchX = new Matrix<T>(_batch, train.Dim);
        _batchY = new int[_batch];
        _order = new int[train.Count];
        _rng = Rng.Derive(options.Seed, 2);
        LearningRate = options.LearningRate;
        _bestParams = model.Parameters.Select(p => (T[])p.Value.Clone()).ToArray();
        _bestBuffers = model.Buffers.Select(b => (T[])b.Value.Clone()).ToArray();
    }

    public SolverOptions Options { get; }

    public FullyConnectedNet<T> Model => _model;

    /// <summary>Epochs finished so far.</summary>
    public int Epoch { get; private set; }

    /// <summary>Minibatch steps taken so far.</summary>
    public long Iteration { get; private set; }

    public long TotalIterations => _totalIterations;

    public int IterationsPerEpoch => _itersPerEpoch;

    /// <summary>The learning rate the next step will use.</summary>
    public double LearningRate { get; private set; }

    public double BestValAccuracy { get; private set; } = -1;

    public int BestEpoch { get; private set; }

    /// <summary>The loss of every minibatch step.</summary>
    public List<double> LossHistory { get; } = [];

    public List<EpochRecord> History { get; } = [];

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
        while (Iteration < _totalIterations)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var inEpoch = (int)(Iteration - ((long)Epoch * _itersPerEpoch));
            if (inEpoch == 0)
            {
                for (var i = 0; i < _order.Length; i++)
                {
                    _order[i] = i;
                }

                _rng.Shuffle(_order);
            }

            var next = inEpoch + 1 < _itersPerEpoch ? _order.AsSpan((inEpoch + 1) * _batch, _batch) : default;
            var loss = Step(_order.AsSpan(inEpoch * _batch, _batch), next);
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

            if (inEpoch + 1 == _itersPerEpoch || Iteration == _totalIterations)
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

        if (_fusedSgd && _model.IsLinear)
        {
            // The linear classifier gathers its batch block by block (see FullyConnectedNet.SgdStep(split, ...)).
            if (!nextIndices.IsEmpty)
            {
                _train.Prefetch(nextIndices);
            }

            return _model.SgdStep(_train, indices, _batchY, LearningRate);
        }

        _train.Gather(indices, _batchX);
        if (!nextIndices.IsEmpty)
        {
            _train.Prefetch(nextIndices);
        }

        if (_fusedSgd)
        {
            return _model.SgdStep(_batchX, _batchY, LearningRate);
        }

        var loss = _model.Loss(_batchX, _batchY);
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

        var predicted = new int[chunk];
        var correct = 0;
        for (var start = 0; start < indices.Length; start += chunk)
        {
            var count = Math.Min(chunk, indices.Length - start);
            var x = count == chunk ? _evalX : new Matrix<T>(count, split.Dim);
            var part = indices.AsSpan(start, count);
            split.Gather(part, x);
            Ops.ArgMaxRows(_model.Scores(x), predicted);
            for (var i = 0; i < count; i++)
            {
                if (predicted[i] == split.Labels[part[i]])
                {
                    correct++;
                }
            }
        }

        return (double)correct / indices.Length;
    }

    /// <summary>Minibatch steps taken by the end of <paramref name="epoch"/>: every epoch is full but a last, partial one (with iterations).</summary>
    private long IterationsAfter(int epoch) => Math.Min((long)epoch * _itersPerEpoch, _totalIterations);

    private EpochRecord EndEpoch(double meanLoss, double seconds)
    {
        Epoch++;
        var sample = new int[Math.Min(Options.TrainAccuracySamples, _train.Count)];
        for (var i = 0; i < sample.Length; i++)
        {
            sample[i] = _rng.NextInt(_train.Count);
        }

        var trainAcc = Accuracy(_train, sample);
        var valIndices = Options.ValidationSamples is { } v && v < _val.Count ? Enumerable.Range(0, v).ToArray() : null;
        var valAcc = Accuracy(_val, valIndices);
        if (valAcc > BestValAccuracy)
        {
            BestValAccuracy = valAcc;
            BestEpoch = Epoch;
            for (var p = 0; p < _bestParams.Length; p++)
            {
                _model.Parameters[p].Value.CopyTo(_bestParams[p], 0);
            }

            for (var b = 0; b < _bestBuffers.Length; b++)
            {
                _model.Buffers[b].Value.CopyTo(_bestBuffers[b], 0);
            }
        }

        var metrics = new EpochRecord(Epoch, meanLoss, trainAcc, valAcc, LearningRate, seconds);
        History.Add(metrics);
        LearningRate *= Options.LrDecay;
        return metrics;
    }

    /// <summary>Puts the best-so-far parameters (by validation accuracy) into the model, e.g. after loading a final checkpoint.</summary>
    public void RestoreBestParameters() => RestoreBest();

    private void RestoreBest()
    {
        if (BestEpoch == 0)
        {
            return;
        }

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
    /// Writes everything needed to resume: parameters, batchnorm statistics, optimizer state, epoch, iteration,
    /// learning rate, both random generators, best-so-far parameters and the histories. Take it between epochs
    /// (inside the epoch callback).
    /// </summary>
    public void SaveCheckpoint(Stream stream)
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(CheckpointMagic);
        w.Write(CheckpointVersion);
        w.Write(System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        w.Write(Epoch);
        w.Write(Iteration);
        w.Write(LearningRate);
        w.Write(BestValAccuracy);
        w.Write(BestEpoch);
        WriteState(w, _rng.GetState());
        WriteState(w, _model.DropoutRng.GetState());
        w.Write(LossHistory.Count);
        foreach (var l in LossHistory)
        {
            w.Write(l);
        }

        w.Write(History.Count);
        foreach (var h in History)
        {
            w.Write(h.Epoch);
            w.Write(IterationsAfter(h.Epoch)); // kept in the format (older builds read it); derived, so not recorded
            w.Write(h.Loss);
            w.Write(h.TrainAccuracy);
            w.Write(h.ValAccuracy);
            w.Write(h.LearningRate);
            w.Write(h.Seconds);
        }

        w.Write(_model.Parameters.Count);
        for (var p = 0; p < _model.Parameters.Count; p++)
        {
            var parameter = _model.Parameters[p];
            w.Write(parameter.Name);
            WriteArray(w, parameter.Value);
            WriteArray(w, _bestParams[p]);
            w.Write(_states[p].Step);
            w.Write(_states[p].Slots.Length);
            foreach (var slot in _states[p].Slots)
            {
                WriteArray(w, slot);
            }
        }

        w.Write(_model.Buffers.Count);
        for (var b = 0; b < _model.Buffers.Count; b++)
        {
            w.Write(_model.Buffers[b].Name);
            WriteArray(w, _model.Buffers[b].Value);
            WriteArray(w, _bestBuffers[b]);
        }
    }

    /// <summary>Restores a checkpoint written by <see cref="SaveCheckpoint"/> for a model of the same shape. Throws <see cref="InvalidDataException"/> otherwise.</summary>
    public void LoadCheckpoint(Stream stream)
    {
        using var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        if (r.ReadInt32() != CheckpointMagic)
        {
            throw new InvalidDataException("not a Sweeper checkpoint.");
        }

        var version = r.ReadInt32();
        if (version != CheckpointVersion)
        {
            throw new InvalidDataException($"checkpoint version {version} is not supported (this build reads {CheckpointVersion}).");
        }

        if (r.ReadInt32() != System.Runtime.CompilerServices.Unsafe.SizeOf<T>())
        {
            throw new InvalidDataException($"checkpoint was written for another precision than {typeof(T).Name}.");
        }

        Epoch = r.ReadInt32();
        Iteration = r.ReadInt64();
        LearningRate = r.ReadDouble();
        BestValAccuracy = r.ReadDouble();
        BestEpoch = r.ReadInt32();
        _rng = Rng.FromState(ReadState(r));
        _model.DropoutRng = Rng.FromState(ReadState(r));
        LossHistory.Clear();
        var losses = r.ReadInt32();
        for (var i = 0; i < losses; i++)
        {
            LossHistory.Add(r.ReadDouble());
        }

        History.Clear();
        var epochs = r.ReadInt32();
        for (var i = 0; i < epochs; i++)
        {
            var epoch = r.ReadInt32();
            _ = r.ReadInt64(); // the iterations after that epoch: see IterationsAfter
            History.Add(new EpochRecord(epoch, r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()));
        }

        if (r.ReadInt32() != _model.Parameters.Count)
        {
            throw new InvalidDataException("checkpoint holds a different number of parameters than the model.");
        }

        for (var p = 0; p < _model.Parameters.Count; p++)
        {
            var parameter = _model.Parameters[p];
            var name = r.ReadString();
            if (name != parameter.Name)
            {
                throw new InvalidDataException($"checkpoint parameter {p} is {name}, the model's is {parameter.Name}.");
            }

            ReadArray(r, parameter.Value, name);
            ReadArray(r, _bestParams[p], name);
            _states[p].Step = r.ReadInt64();
            if (r.ReadInt32() != _states[p].Slots.Length)
            {
                throw new InvalidDataException($"checkpoint optimizer state for {name} does not fit the {_rule.Name} update rule.");
            }

            foreach (var slot in _states[p].Slots)
            {
                ReadArray(r, slot, name);
            }
        }

        if (r.ReadInt32() != _model.Buffers.Count)
        {
            throw new InvalidDataException("checkpoint holds a different number of buffers than the model.");
        }

        for (var b = 0; b < _model.Buffers.Count; b++)
        {
            var name = r.ReadString();
            ReadArray(r, _model.Buffers[b].Value, name);
            ReadArray(r, _bestBuffers[b], name);
        }
    }

    /// <summary>
    /// The best-so-far parameters stored in a checkpoint, by name (W1, b1, ...), without building a model: for
    /// looking at learned weights. Throws <see cref="InvalidDataException"/> on anything but a checkpoint of this precision.
    /// </summary>
    public static Dictionary<string, T[]> ReadBestParameters(Stream stream)
    {
        using var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        if (r.ReadInt32() != CheckpointMagic || r.ReadInt32() != CheckpointVersion || r.ReadInt32() != System.Runtime.CompilerServices.Unsafe.SizeOf<T>())
        {
            throw new InvalidDataException("not a Sweeper checkpoint of this version and precision.");
        }

        r.ReadInt32();
        r.ReadInt64();
        r.ReadDouble();
        r.ReadDouble();
        r.ReadInt32();
        ReadState(r);
        ReadState(r);
        stream.Seek(r.ReadInt32() * 8L, SeekOrigin.Current);
        stream.Seek(r.ReadInt32() * ((4 + 8) + (5 * 8L)), SeekOrigin.Current);
        var result = new Dictionary<string, T[]>();
        var count = r.ReadInt32();
        for (var p = 0; p < count; p++)
        {
            var name = r.ReadString();
            SkipArray(r);
            result[name] = ReadNewArray(r, name);
            r.ReadInt64();
            var slots = r.ReadInt32();
            for (var k = 0; k < slots; k++)
            {
                SkipArray(r);
            }
        }

        return result;
    }

    private static void SkipArray(BinaryReader r) => r.BaseStream.Seek(r.ReadInt32() * (long)System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), SeekOrigin.Current);

    private static T[] ReadNewArray(BinaryReader r, string name)
    {
        var length = r.ReadInt32();
        var values = new T[length];
        try
        {
            r.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"checkpoint ends inside array {name}.");
        }

        return values;
    }

    private const int CheckpointMagic = 0x4B435753; // "SWCK"
    private const int CheckpointVersion = 1;

    private static void WriteState(BinaryWriter w, ulong[] state)
    {
        foreach (var s in state)
        {
            w.Write(s);
        }
    }

    private static ulong[] ReadState(BinaryReader r) => [r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64()];

    private static void WriteArray(BinaryWriter w, T[] values)
    {
        w.Write(values.Length);
        w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static void ReadArray(BinaryReader r, T[] destination, string name)
    {
        var length = r.ReadInt32();
        if (length != destination.Length)
        {
            throw new InvalidDataException($"checkpoint array {name} has {length} elements, the model's has {destination.Length}.");
        }

        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination.AsSpan());
        try
        {
            r.BaseStream.ReadExactly(bytes);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"checkpoint ends inside array {name}.");
        }
    }
}
