using Sweeper.Core;
using Sweeper.Core.Trials;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Layers;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;
using Normalization = Sweeper.Engine.Models.Normalization;

namespace Sweeper.Engine.Torch;

/// <summary>
/// The torch engine: the native engine's models, update rules and training loop on libtorch tensors, with gradients
/// from libtorch's autograd. Everything that decides the course of a run is shared with the native engine so that the
/// two can be compared step by step: the initial weights (drawn from the seed with the same generator, in the same
/// order), the shuffles and train-accuracy samples, the dropout masks (drawn on the host with the native generator),
/// the update rules' formulas, the L2 convention (0.5 * reg * sum of squared weights, biases excluded), batch norm's
/// biased batch variance and momentum, and the checkpoint format (parameters by the same names and layouts).
/// <para>
/// Every step runs inside a dispose scope, so its temporaries are freed when it ends rather than by the garbage
/// collector (which knows nothing of their native memory). Not thread-safe: one backend per training slot.
/// </para>
/// </summary>
public sealed class TorchBackend : ITrainingBackend, ITrainingSteps<float>
{
    private readonly Device _device;
    private readonly int _hidden;
    private readonly Tensor[] _w, _b;
    private readonly Tensor?[] _gamma, _beta, _runningMean, _runningVar;
    private readonly List<(string Name, Tensor Value, bool Weight)> _params = [];
    private readonly List<(string Name, Tensor Value)> _buffers = [];
    private readonly Tensor[][] _slots;
    private readonly long[] _steps;
    private readonly Tensor[] _bestParams;
    private readonly Tensor[] _bestBuffers;
    private readonly TrainingLoop<float> _loop;
    private readonly int _batch;
    private readonly Matrix<float> _batchX;
    private readonly long[] _batchY;
    private readonly float[]?[] _masks;
    private readonly List<Scalar> _constants = [];
    private readonly Scalar _one, _minusOne, _zero, _normEpsilon, _bnMomentum, _bnOneMinusMomentum, _halfReg;
    private readonly Scalar _momentum, _decay, _oneMinusDecay, _beta1, _oneMinusBeta1, _beta2, _oneMinusBeta2, _epsilon;
    private bool _disposed;

    /// <summary>The training examples as the steps see them (<see cref="TrainingSetup.TrainingExamples"/>).</summary>
    private readonly IDataSplit<float> _train;

    public TorchBackend(TrainingSetup setup)
    {
        var (spec, options) = (setup.Model, setup.Options);
        spec.Validate();
        _train = setup.TrainingExamples();
        _loop = new TrainingLoop<float>(_train, setup.Validation, options, this);
        if (setup.Train.Dim != spec.InputDim || setup.Validation.Dim != spec.InputDim)
        {
            throw new ArgumentException($"the model takes {spec.InputDim} features but the data has {setup.Train.Dim}.");
        }

        _device = TorchBackendFactory.DeviceFor(setup.Device);
        Setup = setup;
        Rule = UpdateRule.Create(options.UpdateRule, options.Update);
        Origin = new CheckpointOrigin("torch", setup.Device, $"libtorch {LibTorchRuntime.Version} ({setup.Device})");

        int[] dims = [spec.InputDim, .. spec.HiddenSizes, spec.NumClasses];
        _hidden = spec.HiddenSizes.Count;
        var layers = _hidden + 1;
        _w = new Tensor[layers];
        _b = new Tensor[layers];
        _gamma = new Tensor?[_hidden];
        _beta = new Tensor?[_hidden];
        _runningMean = new Tensor?[_hidden];
        _runningVar = new Tensor?[_hidden];

        // The native engine's initialisation, draw for draw (FullyConnectedNet's constructor): the same seed gives the same weights.
        var init = new Rng(options.Seed);
        for (var l = 0; l < layers; l++)
        {
            int fanIn = dims[l], fanOut = dims[l + 1];
            var std = spec.Init switch
            {
                WeightInit.He => Math.Sqrt(2.0 / fanIn),
                WeightInit.Xavier => Math.Sqrt(2.0 / (fanIn + fanOut)),
                _ => spec.EffectiveWeightScale,
            };
            var w = new float[fanOut * fanIn];
            init.FillGaussian<float>(w, std);
            _w[l] = Parameter($"W{l + 1}", w, [fanOut, fanIn], weight: true);
            _b[l] = Parameter($"b{l + 1}", new float[fanOut], [fanOut], weight: false);
            if (l < _hidden && spec.Normalization != Normalization.None)
            {
                _gamma[l] = Parameter($"gamma{l + 1}", Enumerable.Repeat(1f, fanOut).ToArray(), [fanOut], weight: false);
                _beta[l] = Parameter($"beta{l + 1}", new float[fanOut], [fanOut], weight: false);
                if (spec.Normalization == Normalization.Batch)
                {
                    _runningMean[l] = Buffer($"running_mean{l + 1}", new float[fanOut]);
                    _runningVar[l] = Buffer($"running_var{l + 1}", Enumerable.Repeat(1f, fanOut).ToArray());
                }
            }
        }

        DropoutRng = Rng.Derive(options.Seed, 1);
        _slots = _params.Select(p => Enumerable.Range(0, Rule.Slots).Select(_ => zeros_like(p.Value)).ToArray()).ToArray();
        _steps = new long[_params.Count];
        _bestParams = _params.Select(p => zeros_like(p.Value).copy_(p.Value)).ToArray();
        _bestBuffers = _buffers.Select(b => b.Value.clone()).ToArray();
        _batch = _loop.BatchSize;
        _batchX = new Matrix<float>(_batch, spec.InputDim);
        _batchY = new long[_batch];
        _masks = new float[]?[_hidden];

        // Every constant a step passes to libtorch, made once and kept alive with the backend. A Scalar that C#
        // converts implicitly from a number is garbage as soon as its handle is read, and its finalizer may free the
        // native value while libtorch still uses it (seen as random "Expected false to be true" errors from
        // Scalar::toFloat). TorchSharp 0.107 does that itself in every overload without an explicit alpha (a + b is
        // add(b, 1); square() is pow(2)), so this class calls only the overloads that take every Scalar from here.
        _one = Constant(1);
        _minusOne = Constant(-1); // a.add(b, -1) is a - b exactly, with every Scalar explicit
        _zero = Constant(0);
        _normEpsilon = Constant(BatchNorm.DefaultEpsilon); // LayerNorm.DefaultEpsilon is the same 1e-5
        _bnMomentum = Constant(BatchNorm.DefaultMomentum);
        _bnOneMinusMomentum = Constant(1 - BatchNorm.DefaultMomentum);
        _halfReg = Constant(0.5 * spec.Reg);
        var u = options.Update;
        _momentum = Constant(u.Momentum);
        _decay = Constant(u.DecayRate);
        _oneMinusDecay = Constant(1 - u.DecayRate);
        _beta1 = Constant(u.Beta1);
        _oneMinusBeta1 = Constant(1 - u.Beta1);
        _beta2 = Constant(u.Beta2);
        _oneMinusBeta2 = Constant(1 - u.Beta2);
        _epsilon = Constant(u.Epsilon);
    }

    public TrainingSetup Setup { get; }

    public CheckpointOrigin Origin { get; }

    public UpdateRule Rule { get; }

    public int Epoch => _loop.Epoch;

    public long Iteration => _loop.Iteration;

    public long TotalIterations => _loop.TotalIterations;

    public int IterationsPerEpoch => _loop.IterationsPerEpoch;

    /// <summary>The run's bookkeeping: learning rate, best epoch, histories (the loop both engines share).</summary>
    public TrainingLoop<float> Loop => _loop;

    /// <summary>The loss of every minibatch step.</summary>
    public List<double> LossHistory => _loop.LossHistory;

    /// <summary>Draws the dropout masks (as the native model's does). Tests reset it to get the same masks twice.</summary>
    public Rng DropoutRng { get; set; }

    private ModelSpec Spec => Setup.Model;

    private SolverOptions Options => Setup.Options;

    /// <summary>The loop both engines share (<see cref="TrainingLoop{T}"/>): same shuffles, epochs, samples, best-by-validation and divergence rule.</summary>
    public TrainingResult Train(Func<EpochRecord, bool>? onEpoch = null, Action<long, double>? onIteration = null, CancellationToken cancellationToken = default) =>
        _loop.Train(onEpoch, onIteration, cancellationToken);

    /// <summary>One training step: gather, forward, loss, autograd backward, update at the current learning rate. On a non-finite loss nothing is updated.</summary>
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

        _train.Gather(indices, _batchX);
        if (!nextIndices.IsEmpty)
        {
            _train.Prefetch(nextIndices);
        }

        using var scope = NewDisposeScope();
        var (loss, value) = LossOf(_batchX, _batchY);
        if (!double.IsFinite(value))
        {
            return value;
        }

        var grads = autograd.grad([loss], _params.Select(p => p.Value).ToArray());
        using (no_grad())
        {
            for (var p = 0; p < _params.Count; p++)
            {
                if (Rule.Name != "sgd")
                {
                    _steps[p]++; // as the native engine, whose plain SGD is fused into its backward pass and counts no steps
                }

                Update(_params[p].Value, grads[p], _slots[p], _steps[p]);
            }
        }

        return value;
    }

    /// <summary>
    /// Train-mode loss on a batch and the gradient of every parameter, by name, without updating anything: what the
    /// cross-check tests compare with the native engine. Draws dropout masks as a step would.
    /// </summary>
    public (double Loss, Dictionary<string, float[]> Gradients) LossAndGradients(Matrix<float> x, ReadOnlySpan<int> y)
    {
        var labels = new long[y.Length];
        for (var i = 0; i < y.Length; i++)
        {
            labels[i] = y[i];
        }

        using var scope = NewDisposeScope();
        var (loss, value) = LossOf(x, labels);
        var grads = autograd.grad([loss], _params.Select(p => p.Value).ToArray());
        return (value, _params.Select((p, i) => (p.Name, Host(grads[i]))).ToDictionary(g => g.Name, g => g.Item2));
    }

    public double Accuracy(IDataSplit<float> split, int[]? indices = null) => _loop.Accuracy(split, indices);

    void ITrainingSteps<float>.Predict(Matrix<float> x, Span<int> classes)
    {
        using (NewDisposeScope())
        using (no_grad())
        {
            var predicted = Forward(Input(x), train: false).argmax(1).cpu().data<long>();
            for (var i = 0; i < classes.Length; i++)
            {
                classes[i] = (int)predicted[i];
            }
        }
    }

    public void RestoreBestParameters() => _loop.RestoreBest();

    void ITrainingSteps<float>.RestoreBest()
    {
        using (no_grad())
        {
            for (var p = 0; p < _params.Count; p++)
            {
                _params[p].Value.copy_(_bestParams[p]);
            }

            for (var b = 0; b < _buffers.Count; b++)
            {
                _buffers[b].Value.copy_(_bestBuffers[b]);
            }
        }
    }

    public void SaveCheckpoint(Stream stream) => CheckpointFormat.Write(stream, Origin, _loop.Checkpoint(
        DropoutRng.GetState(),
        _params.Select((p, i) => new CheckpointParameter<float>(p.Name, Host(p.Value), Host(_bestParams[i]), _steps[i], _slots[i].Select(Host).ToArray())).ToArray(),
        _buffers.Select((b, i) => new CheckpointBuffer<float>(b.Name, Host(b.Value), Host(_bestBuffers[i]))).ToArray()));

    public CheckpointOrigin LoadCheckpoint(Stream stream)
    {
        var (origin, state) = CheckpointFormat.Read<float>(stream);
        if (state.Parameters.Count != _params.Count || state.Buffers.Count != _buffers.Count)
        {
            throw new InvalidDataException("checkpoint holds a different number of parameters or buffers than the model.");
        }

        for (var p = 0; p < _params.Count; p++)
        {
            var (saved, length) = (state.Parameters[p], _params[p].Value.numel());
            if (saved.Name != _params[p].Name)
            {
                throw new InvalidDataException($"checkpoint parameter {p} is {saved.Name}, the model's is {_params[p].Name}.");
            }

            if (saved.Slots.Length != _slots[p].Length)
            {
                throw new InvalidDataException($"checkpoint optimizer state for {saved.Name} does not fit the {Rule.Name} update rule.");
            }

            if (saved.Value.Length != length || saved.Best.Length != length || saved.Slots.Any(s => s.Length != length))
            {
                throw new InvalidDataException($"checkpoint array {saved.Name} has {saved.Value.Length} elements, the model's has {length}.");
            }
        }

        for (var b = 0; b < _buffers.Count; b++)
        {
            if (state.Buffers[b].Value.Length != _buffers[b].Value.numel() || state.Buffers[b].Best.Length != _buffers[b].Value.numel())
            {
                throw new InvalidDataException($"checkpoint array {state.Buffers[b].Name} does not fit the model's.");
            }
        }

        _loop.Resume(state);
        DropoutRng = Rng.FromState(state.DropoutRng);
        using (no_grad())
        {
            for (var p = 0; p < _params.Count; p++)
            {
                var saved = state.Parameters[p];
                CopyIn(_params[p].Value, saved.Value);
                CopyIn(_bestParams[p], saved.Best);
                _steps[p] = saved.Step;
                for (var k = 0; k < saved.Slots.Length; k++)
                {
                    CopyIn(_slots[p][k], saved.Slots[k]);
                }
            }

            for (var b = 0; b < _buffers.Count; b++)
            {
                CopyIn(_buffers[b].Value, state.Buffers[b].Value);
                CopyIn(_bestBuffers[b], state.Buffers[b].Best);
            }
        }

        return origin;
    }

    public IReadOnlyDictionary<string, float[]> ExportParameters() => _params.ToDictionary(p => p.Name, p => Host(p.Value));

    /// <summary>Overwrites the parameters (by name) with the given values: tests start both engines from the same weights.</summary>
    public void ImportParameters(IReadOnlyDictionary<string, float[]> values)
    {
        using (no_grad())
        {
            foreach (var (name, value, _) in _params)
            {
                CopyIn(value, values[name]);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var t in _params.Select(p => p.Value).Concat(_buffers.Select(b => b.Value)).Concat(_slots.SelectMany(s => s)).Concat(_bestParams).Concat(_bestBuffers))
        {
            t.Dispose();
        }

        foreach (var c in _constants)
        {
            c.Dispose();
        }
    }

    void ITrainingSteps<float>.KeepBest()
    {
        using (no_grad())
        {
            for (var p = 0; p < _params.Count; p++)
            {
                _bestParams[p].copy_(_params[p].Value);
            }

            for (var b = 0; b < _buffers.Count; b++)
            {
                _bestBuffers[b].copy_(_buffers[b].Value);
            }
        }
    }

    /// <summary>The train-mode loss tensor (data loss + 0.5 reg sum W^2) and its value. Call inside a dispose scope.</summary>
    private (Tensor Loss, double Value) LossOf(Matrix<float> x, long[] y)
    {
        var scores = Forward(Input(x), train: true);
        var labels = tensor(y, [y.Length], device: _device);
        var loss = Spec.Kind == ModelKind.Svm ? SvmLoss(scores, labels) : nn.functional.cross_entropy(scores, labels);
        if (Spec.Reg != 0)
        {
            Tensor squares = _w[0].mul(_w[0]).sum();
            for (var l = 1; l < _w.Length; l++)
            {
                squares = squares.add(_w[l].mul(_w[l]).sum(), _one);
            }

            loss = loss.add(squares, _halfReg);
        }

        return (loss, loss.item<float>());
    }

    /// <summary>Multiclass hinge loss with margin 1, summed over the wrong classes and averaged over examples (cs231n; not torch's multi_margin_loss, which also divides by C).</summary>
    private Tensor SvmLoss(Tensor scores, Tensor labels)
    {
        var correct = scores.gather(1, labels.unsqueeze(1));
        var margins = scores.add(correct, _minusOne).add(_one, _one).clamp_min(_zero).scatter(1, labels.unsqueeze(1), zeros_like(correct));
        return margins.sum(1).mean();
    }

    /// <summary>Class scores: L - 1 blocks {affine - [batch/layer norm] - relu - [dropout]}, then affine.</summary>
    private Tensor Forward(Tensor x, bool train)
    {
        var input = x;
        var dropout = train && Spec.Dropout > 0;
        for (var l = 0; l < _hidden; l++)
        {
            var z = nn.functional.linear(input, _w[l], _b[l]);
            switch (Spec.Normalization)
            {
                case Normalization.Batch when train:
                    {
                        // Biased batch variance and running = m * running + (1 - m) * batch, as the native engine (torch's own batch_norm keeps the unbiased variance).
                        var mean = z.mean([0]);
                        var centered = z.add(mean, _minusOne);
                        var variance = centered.mul(centered).mean([0]);
                        z = (centered * variance.add(_normEpsilon, _one).rsqrt() * _gamma[l]!).add(_beta[l]!, _one);
                        using (no_grad())
                        {
                            _runningMean[l]!.mul_(_bnMomentum).add_(mean.detach(), _bnOneMinusMomentum);
                            _runningVar[l]!.mul_(_bnMomentum).add_(variance.detach(), _bnOneMinusMomentum);
                        }

                        break;
                    }

                case Normalization.Batch:
                    z = (z.add(_runningMean[l]!, _minusOne) * _runningVar[l]!.add(_normEpsilon, _one).rsqrt() * _gamma[l]!).add(_beta[l]!, _one);
                    break;
                case Normalization.Layer:
                    {
                        var mean = z.mean([1], keepdim: true);
                        var centered = z.add(mean, _minusOne);
                        var variance = centered.mul(centered).mean([1], keepdim: true);
                        z = (centered * variance.add(_normEpsilon, _one).rsqrt() * _gamma[l]!).add(_beta[l]!, _one);
                        break;
                    }
            }

            var a = nn.functional.relu(z);
            if (dropout)
            {
                var rows = (int)a.shape[0];
                var width = (int)a.shape[1];
                var mask = _masks[l] is { } existing && existing.Length == rows * width ? existing : _masks[l] = new float[rows * width];
                DropoutRng.FillDropoutMask<float>(mask, Spec.Dropout);
                a = a * tensor(mask, [rows, width], device: _device);
            }

            input = a;
        }

        return nn.functional.linear(input, _w[_hidden], _b[_hidden]);
    }

    /// <summary>The update rules of <see cref="UpdateRule"/>, formula for formula, in place on the device.</summary>
    private void Update(Tensor w, Tensor g, Tensor[] slots, long t)
    {
        using var negativeLr = (-_loop.LearningRate).ToScalar();
        switch (Rule.Name)
        {
            case "sgd":
                w.add_(g, negativeLr);
                break;
            case "sgd_momentum":
                slots[0].mul_(_momentum).add_(g, negativeLr);
                w.add_(slots[0], _one);
                break;
            case "rmsprop":
                slots[0].mul_(_decay).addcmul_(g, g, _oneMinusDecay);
                w.addcdiv_(g, slots[0].sqrt().add_(_epsilon, _one), negativeLr);
                break;
            case "adam":
                {
                    var u = Options.Update;
                    using var invC2 = (1.0 / (1.0 - Math.Pow(u.Beta2, t))).ToScalar();
                    using var step = (-_loop.LearningRate / (1.0 - Math.Pow(u.Beta1, t))).ToScalar();
                    slots[0].mul_(_beta1).add_(g, _oneMinusBeta1);
                    slots[1].mul_(_beta2).addcmul_(g, g, _oneMinusBeta2);
                    w.addcdiv_(slots[0], slots[1].mul(invC2).sqrt_().add_(_epsilon, _one), step);
                    break;
                }

            default:
                throw new InvalidOperationException($"update rule {Rule.Name} has no torch implementation.");
        }
    }

    private Scalar Constant(double value)
    {
        var scalar = value.ToScalar();
        _constants.Add(scalar);
        return scalar;
    }

    private Tensor Input(Matrix<float> x) => tensor(x.Data, [x.Rows, x.Cols], device: _device);

    private Tensor Parameter(string name, float[] values, long[] shape, bool weight)
    {
        var t = tensor(values, shape, device: _device).requires_grad_(true);
        _params.Add((name, t, weight));
        return t;
    }

    private Tensor Buffer(string name, float[] values)
    {
        var t = tensor(values, [values.Length], device: _device);
        _buffers.Add((name, t));
        return t;
    }

    private static float[] Host(Tensor t)
    {
        using var detached = t.detach();
        using var cpu = detached.cpu();
        return cpu.data<float>().ToArray();
    }

    private void CopyIn(Tensor destination, float[] values)
    {
        using var source = tensor(values, destination.shape, device: _device);
        destination.copy_(source);
    }
}
