using System.Numerics;
using System.Numerics.Tensors;
using Sweeper.Core;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Layers;

namespace Sweeper.Engine.Models;

/// <summary>
/// The one network behind every model family: L - 1 hidden blocks {affine - [batch/layer norm] - relu - [dropout]}
/// followed by affine and the loss. With no hidden block it is the linear softmax or SVM classifier; with one it is
/// the two-layer net. Shapes: input N x D, scores N x C.
/// <para>
/// Buffers are allocated once per batch size and reused, so a training step allocates nothing. The input's gradient
/// is never computed (nobody needs it). Not thread-safe: one model per training run.
/// </para>
/// </summary>
public sealed class FullyConnectedNet<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int[] _dims;
    private readonly int _hidden;
    private readonly Parameter<T>[] _w, _b;
    private readonly Parameter<T>?[] _gamma, _beta;
    private readonly T[]?[] _runningMean, _runningVar;
    private readonly Dictionary<int, Workspace> _workspaces = [];
    private LinearWorkspace? _linear;

    public FullyConnectedNet(ModelSpec spec, ulong seed)
    {
        spec.Validate();
        Spec = spec;
        LossKind = spec.Kind == ModelKind.Svm ? LossKind.Svm : LossKind.Softmax;
        _dims = [spec.InputDim, .. spec.HiddenSizes, spec.NumClasses];
        _hidden = spec.HiddenSizes.Count;
        var layers = _hidden + 1;
        _w = new Parameter<T>[layers];
        _b = new Parameter<T>[layers];
        _gamma = new Parameter<T>?[_hidden];
        _beta = new Parameter<T>?[_hidden];
        _runningMean = new T[]?[_hidden];
        _runningVar = new T[]?[_hidden];
        var parameters = new List<Parameter<T>>();
        var buffers = new List<NamedBuffer<T>>();
        var init = new Rng(seed);
        for (var l = 0; l < layers; l++)
        {
            int fanIn = _dims[l], fanOut = _dims[l + 1];
            _w[l] = new Parameter<T>($"W{l + 1}", [fanOut, fanIn], regularized: true);
            _b[l] = new Parameter<T>($"b{l + 1}", [fanOut], regularized: false);
            var std = spec.Init switch
            {
                WeightInit.He => Math.Sqrt(2.0 / fanIn),
                WeightInit.Xavier => Math.Sqrt(2.0 / (fanIn + fanOut)),
                _ => spec.EffectiveWeightScale,
            };
            init.FillGaussian<T>(_w[l].Value, std);
            parameters.Add(_w[l]);
            parameters.Add(_b[l]);
            if (l < _hidden && spec.Normalization != Normalization.None)
            {
                _gamma[l] = new Parameter<T>($"gamma{l + 1}", [fanOut], regularized: false);
                _beta[l] = new Parameter<T>($"beta{l + 1}", [fanOut], regularized: false);
                _gamma[l]!.Value.AsSpan().Fill(T.One);
                parameters.Add(_gamma[l]!);
                parameters.Add(_beta[l]!);
                if (spec.Normalization == Normalization.Batch)
                {
                    _runningMean[l] = new T[fanOut];
                    _runningVar[l] = new T[fanOut];
                    _runningVar[l].AsSpan().Fill(T.One);
                    buffers.Add(new NamedBuffer<T>($"running_mean{l + 1}", _runningMean[l]!));
                    buffers.Add(new NamedBuffer<T>($"running_var{l + 1}", _runningVar[l]!));
                }
            }
        }

        Parameters = parameters;
        Buffers = buffers;
        DropoutRng = Rng.Derive(seed, 1);
    }

    public ModelSpec Spec { get; }

    public LossKind LossKind { get; }

    public int InputDim => _dims[0];

    public int NumClasses => _dims[^1];

    /// <summary>All trainable parameters, in a fixed order (W1, b1, gamma1, beta1, W2, ...).</summary>
    public IReadOnlyList<Parameter<T>> Parameters { get; }

    /// <summary>Non-trainable state (batchnorm running statistics).</summary>
    public IReadOnlyList<NamedBuffer<T>> Buffers { get; }

    /// <summary>Draws the dropout masks. Part of a checkpoint; tests reset it to get the same masks twice.</summary>
    public Rng DropoutRng { get; set; }

    /// <summary>Class scores in test mode (running batchnorm statistics, no dropout). The result is owned by the model and valid until its next call.</summary>
    public Matrix<T> Scores(Matrix<T> x) => Forward(x, null, train: false).Scores;

    /// <summary>
    /// Train-mode loss = data loss + 0.5 * reg * sum of squared weights, and the gradient of every parameter
    /// written into <see cref="Parameter{T}.Grad"/>.
    /// </summary>
    public double Loss(Matrix<T> x, ReadOnlySpan<int> y) => LossAndBackward(x, null, y, sgdLearningRate: null);

    /// <summary>
    /// One plain SGD step fused into the backward pass: every weight matrix is updated inside the matrix product
    /// that computes its gradient (w = (1 - lr reg) w - lr x^T dout), biases, gamma and beta right after theirs.
    /// Weight gradients are not stored. Returns the loss before the step; a non-finite loss changes nothing.
    /// </summary>
    public double SgdStep(Matrix<T> x, ReadOnlySpan<int> y, double learningRate) => LossAndBackward(x, null, y, learningRate);

    /// <summary>Rows per block of the linear classifier's blocked step: 40 x 3072 floats (480 KiB) stay in a 1 MiB L2 cache with w and the step.</summary>
    public const int GatherBlockRows = 40;

    /// <summary>True for the linear classifiers (no hidden block), which can train block by block from the split.</summary>
    public bool IsLinear => _hidden == 0;

    /// <summary>
    /// True when the input layer runs on <see cref="InputLayerGemm"/> (float32 on fast AVX-512, first hidden layer a
    /// multiple of <see cref="InputLayerGemm.TileUnits"/> wide, its weights within <see cref="InputLayerGemm.MaxWeightBytes"/>) for batches taken from a split
    /// (<see cref="SgdStep(Data.IDataSplit{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, double)"/>,
    /// <see cref="Loss(Data.IDataSplit{T}, ReadOnlySpan{int}, ReadOnlySpan{int})"/>): the batch is gathered straight
    /// into the kernels' layouts. Elsewhere, and for batches given as a matrix, the input layer runs on OpenBLAS.
    /// </summary>
    public bool UsesInputKernels => InputKernels && typeof(T) == typeof(float) && _hidden > 0 && InputLayerGemm.Supported(_dims[1], _dims[0]);

    /// <summary>Whether to use the input-layer kernels where they run (<see cref="UsesInputKernels"/>). Default: true; tests and benchmarks turn it off to compare with OpenBLAS.</summary>
    public bool InputKernels { get; set; } = true;

    /// <summary>
    /// True when <see cref="SgdStep(Data.IDataSplit{T}, ReadOnlySpan{int}, ReadOnlySpan{int}, double)"/> (for plain SGD,
    /// <paramref name="sgd"/>) or <see cref="Loss(Data.IDataSplit{T}, ReadOnlySpan{int}, ReadOnlySpan{int})"/> take
    /// the batch from the split themselves, in the layout their kernels want, instead of a gathered matrix.
    /// </summary>
    public bool GathersOwnBatch(bool sgd) => (IsLinear && sgd) || UsesInputKernels;

    /// <summary>
    /// <see cref="Loss(Matrix{T}, ReadOnlySpan{int})"/> on examples <paramref name="indices"/> of
    /// <paramref name="split"/>, gathered for the input-layer kernels (needs <see cref="UsesInputKernels"/>).
    /// </summary>
    public double Loss(Data.IDataSplit<T> split, ReadOnlySpan<int> indices, ReadOnlySpan<int> y)
    {
        var input = GatherInput(split, indices);
        return LossAndBackward(null, input, y, sgdLearningRate: null);
    }

    /// <summary>The batch laid out for the input-layer kernels, from the split.</summary>
    private InputBatch GatherInput(Data.IDataSplit<T> split, ReadOnlySpan<int> indices)
    {
        if (!UsesInputKernels)
        {
            throw new InvalidOperationException("the input-layer kernels do not run for this model here; gather the batch and pass it as a matrix.");
        }

        var ws = GetWorkspace(indices.Length);
        var input = ws.Input ??= new InputBatch(indices.Length, InputDim);
        input.Gather((Data.IDataSplit<float>)split, indices);
        return input;
    }

    /// <summary>
    /// One plain SGD step of a linear classifier on examples <paramref name="indices"/> of <paramref name="split"/>
    /// (labels <paramref name="y"/>), gathered in blocks of <see cref="GatherBlockRows"/> rows that stay in the core's
    /// L2 cache: each block is converted, scored, and its share of the step accumulated before the next block is
    /// touched, so the minibatch is never written out whole and read back twice. Same maths as gathering the batch and
    /// calling <see cref="SgdStep(Matrix{T}, ReadOnlySpan{int}, double)"/> (sums taken in another order). Returns the
    /// loss before the step; a non-finite loss changes nothing.
    /// </summary>
    public double SgdStep(Data.IDataSplit<T> split, ReadOnlySpan<int> indices, ReadOnlySpan<int> y, double learningRate)
    {
        if (!IsLinear)
        {
            // A net with hidden layers: the batch gathered for the input-layer kernels (throws where they do not run).
            return LossAndBackward(null, GatherInput(split, indices), y, learningRate);
        }

        int n = indices.Length, d = InputDim, m = NumClasses;
        var ws = _linear ??= new LinearWorkspace(d, m);
        ws.Db.AsSpan().Clear();
        var narrow = NarrowGemm.Supported<T>(m);
        if (narrow)
        {
            NarrowGemm.Pack(Floats(_w[0].Value), d, ws.Packed);
        }

        var loss = 0.0;
        for (var start = 0; start < n; start += GatherBlockRows)
        {
            var rows = Math.Min(GatherBlockRows, n - start);
            var (x, scores, dscores) = ws.For(rows);
            split.Gather(indices.Slice(start, rows), x);
            if (narrow)
            {
                NarrowGemm.ScoresInto(Floats(x.Span), rows, d, Floats(_w[0].Value), ws.Packed, Floats(_b[0].Value), Floats(scores.Span), ws.Scratch);
            }
            else
            {
                Affine.ForwardInto(x, _w[0].Value, _b[0].Value, scores);
            }

            // The block's loss and dscores are means over its rows: weighted by rows / n they sum to the batch's.
            var share = (double)rows / n;
            loss += share * Layers.Loss.Compute(LossKind, scores, y.Slice(start, rows), dscores);
            var step = T.CreateTruncating(-learningRate * share);
            if (narrow)
            {
                NarrowGemm.WeightStepInto(Floats(dscores.Span), Floats(x.Span), rows, d, float.CreateTruncating(step), Floats(ws.Step), accumulate: start != 0);
            }
            else
            {
                Blas.Gemm(true, false, m, d, rows, step, dscores.Span, m, x.Span, d, start == 0 ? T.Zero : T.One, ws.Step, d);
            }

            Ops.ColumnSums(dscores, ws.DbBlock);
            TensorPrimitives.FusedMultiplyAdd(ws.DbBlock, step, ws.Db, ws.Db);
        }

        var w = _w[0].Value;
        var reg = Spec.Reg;
        if (reg != 0)
        {
            loss += 0.5 * reg * double.CreateTruncating(TensorPrimitives.SumOfSquares<T>(w));
        }

        if (double.IsFinite(loss))
        {
            // w = (1 - lr reg) w - lr dW in one pass (the step already holds -lr dW); b -= lr db.
            TensorPrimitives.MultiplyAdd(w, T.One - T.CreateTruncating(learningRate * reg), ws.Step, w);
            TensorPrimitives.Add(_b[0].Value, ws.Db, _b[0].Value);
        }

        return loss;
    }

    /// <summary>The step on a batch given either as a matrix (<paramref name="x"/>) or laid out for the input-layer kernels (<paramref name="input"/>).</summary>
    private double LossAndBackward(Matrix<T>? x, InputBatch? input, ReadOnlySpan<int> y, double? sgdLearningRate)
    {
        var ws = Forward(x, input, train: true);
        var loss = Layers.Loss.Compute(LossKind, ws.Scores, y, ws.Dscores);
        var reg = Spec.Reg;
        if (reg != 0)
        {
            var squares = 0.0;
            foreach (var w in _w)
            {
                squares += double.CreateTruncating(TensorPrimitives.SumOfSquares<T>(w.Value));
            }

            loss += 0.5 * reg * squares;
        }

        if (!double.IsFinite(loss) && sgdLearningRate is not null)
        {
            return loss;
        }

        Backward(x, input, ws, sgdLearningRate);
        return loss;
    }

    /// <summary>The forward pass of a batch given as a matrix <paramref name="x"/> or, when that is null, as <paramref name="packed"/>.</summary>
    private Workspace Forward(Matrix<T>? x, InputBatch? packed, bool train)
    {
        var dim = x?.Cols ?? packed!.Dim;
        if (dim != InputDim)
        {
            throw new ArgumentException($"The model takes {InputDim} features per example, not {dim}.", nameof(x));
        }

        var ws = GetWorkspace(x?.Rows ?? packed!.Rows);
        var input = x;
        var dropout = train && Spec.Dropout > 0;
        for (var l = 0; l < _hidden; l++)
        {
            var block = ws.Blocks[l];
            if (input is null)
            {
                InputLayerGemm.Forward(packed!, Floats(_w[0].Value), Floats(_b[0].Value), Floats(block.Z.Span));
            }
            else
            {
                Affine.ForwardInto(input, _w[l].Value, _b[l].Value, block.Z);
            }

            var normalized = block.Z;
            switch (Spec.Normalization)
            {
                case Normalization.Batch when train:
                    BatchNorm.ForwardTrainInto(block.Z, _gamma[l]!.Value, _beta[l]!.Value, _runningMean[l], _runningVar[l],
                        BatchNorm.DefaultEpsilon, BatchNorm.DefaultMomentum, block.Mean, block.InvStd, block.XHat!, block.Normalized!);
                    normalized = block.Normalized!;
                    break;
                case Normalization.Batch:
                    BatchNorm.ForwardTestInto(block.Z, _gamma[l]!.Value, _beta[l]!.Value, _runningMean[l], _runningVar[l],
                        BatchNorm.DefaultEpsilon, block.Mean, block.Scratch, block.Normalized!);
                    normalized = block.Normalized!;
                    break;
                case Normalization.Layer:
                    LayerNorm.ForwardInto(block.Z, _gamma[l]!.Value, _beta[l]!.Value, LayerNorm.DefaultEpsilon, block.InvStd, block.XHat!, block.Normalized!);
                    normalized = block.Normalized!;
                    break;
            }

            Ops.Relu<T>(normalized.Span, normalized.Span);
            block.ReluOut = normalized;
            if (dropout)
            {
                DropoutRng.FillDropoutMask<T>(block.Mask!.Span, Spec.Dropout);
                TensorPrimitives.Multiply<T>(normalized.Span, block.Mask.Span, block.Dropped!.Span);
                block.Output = block.Dropped;
            }
            else
            {
                block.Output = normalized;
            }

            input = block.Output;
        }

        Affine.ForwardInto(input!, _w[_hidden].Value, _b[_hidden].Value, ws.Scores);
        return ws;
    }

    private void Backward(Matrix<T>? x, InputBatch? packed, Workspace ws, double? sgdLearningRate)
    {
        var last = _hidden;
        AffineBackward(last, ws.Dscores, last == 0 ? x! : ws.Blocks[last - 1].Output!, last == 0 ? null : ws.Blocks[last - 1].Grad, ws, sgdLearningRate);
        for (var l = _hidden - 1; l >= 0; l--)
        {
            var block = ws.Blocks[l];
            var grad = block.Grad;
            if (Spec.Dropout > 0)
            {
                TensorPrimitives.Multiply<T>(grad.Span, block.Mask!.Span, grad.Span);
            }

            Ops.ReluBackward<T>(block.ReluOut!.Span, grad.Span, grad.Span);
            switch (Spec.Normalization)
            {
                case Normalization.Batch:
                    BatchNorm.BackwardInto(grad, block.XHat!, block.InvStd, _gamma[l]!.Value, block.Scratch, grad, _gamma[l]!.Grad, _beta[l]!.Grad);
                    break;
                case Normalization.Layer:
                    LayerNorm.BackwardInto(grad, block.XHat!, block.InvStd, _gamma[l]!.Value, block.Scratch, grad, _gamma[l]!.Grad, _beta[l]!.Grad);
                    break;
            }

            if (sgdLearningRate is { } lr && Spec.Normalization != Normalization.None)
            {
                var step = T.CreateTruncating(-lr);
                TensorPrimitives.FusedMultiplyAdd(_gamma[l]!.Grad, step, _gamma[l]!.Value, _gamma[l]!.Value);
                TensorPrimitives.FusedMultiplyAdd(_beta[l]!.Grad, step, _beta[l]!.Value, _beta[l]!.Value);
            }

            if (l == 0 && x is null)
            {
                InputLayerBackward(grad, packed!, sgdLearningRate);
            }
            else
            {
                AffineBackward(l, grad, l == 0 ? x! : ws.Blocks[l - 1].Output!, l == 0 ? null : ws.Blocks[l - 1].Grad, ws, sgdLearningRate);
            }
        }
    }

    /// <summary>
    /// The input layer's backward pass on the kernels, as <see cref="Affine.BackwardSgdInto{T}"/> (w = (1 - lr reg) w -
    /// lr dz^T x in the product; b -= lr * column sums of dz) or <see cref="Affine.BackwardInto{T}"/> (dw = reg w + dz^T x;
    /// db = column sums of dz) without the input's gradient.
    /// </summary>
    private void InputLayerBackward(Matrix<T> dz, InputBatch packed, double? sgdLearningRate)
    {
        var (w, b) = (_w[0], _b[0]);
        var reg = Spec.Reg;
        Ops.ColumnSums(dz, b.Grad);
        if (sgdLearningRate is { } lr)
        {
            float step = float.CreateTruncating(lr), decay = 1f - (step * float.CreateTruncating(reg)); // as Affine.BackwardSgdInto rounds them
            InputLayerGemm.WeightStep(packed, Floats(dz.Span), Floats(w.Value), decay, -step, Floats(w.Value));
            TensorPrimitives.FusedMultiplyAdd(b.Grad, T.CreateTruncating(-lr), b.Value, b.Value);
        }
        else
        {
            InputLayerGemm.WeightStep(packed, Floats(dz.Span), Floats(w.Value), float.CreateTruncating(reg), 1f, Floats(w.Grad));
        }
    }

    private void AffineBackward(int layer, Matrix<T> dout, Matrix<T> input, Matrix<T>? dx, Workspace ws, double? sgdLearningRate)
    {
        var reg = T.CreateTruncating(Spec.Reg);
        if (sgdLearningRate is { } lr)
        {
            Affine.BackwardSgdInto(dout, input, _w[layer].Value, dx, _b[layer].Value, _b[layer].Grad, T.CreateTruncating(lr), reg);
        }
        else
        {
            Affine.BackwardInto(dout, input, _w[layer].Value, dx, _w[layer].Grad, _b[layer].Grad, reg);
        }
    }

    private Workspace GetWorkspace(int rows)
    {
        if (!_workspaces.TryGetValue(rows, out var ws))
        {
            ws = new Workspace(rows, _dims, Spec);
            _workspaces[rows] = ws;
        }

        return ws;
    }

    /// <summary>Every buffer one batch size needs, made once.</summary>
    private static Span<float> Floats(Span<T> span) => System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(span);

    /// <summary>Buffers of the blocked linear step: one block of inputs, its scores and dscores, and the step for w and b.</summary>
    private sealed class LinearWorkspace(int inputs, int classes)
    {
        private readonly Dictionary<int, (Matrix<T> X, Matrix<T> Scores, Matrix<T> Dscores)> _blocks = [];

        public T[] Step { get; } = new T[inputs * classes];

        public T[] Db { get; } = new T[classes];

        public T[] DbBlock { get; } = new T[classes];

        /// <summary>Partial sums of <see cref="NarrowGemm"/> for a block.</summary>
        public float[] Scratch { get; } = new float[NarrowGemm.ScratchLength(GatherBlockRows)];

        /// <summary>w packed for <see cref="NarrowGemm"/> once per step.</summary>
        public float[] Packed { get; } = new float[NarrowGemm.PackedLength(inputs)];

        public (Matrix<T> X, Matrix<T> Scores, Matrix<T> Dscores) For(int rows)
        {
            if (!_blocks.TryGetValue(rows, out var b))
            {
                b = (new Matrix<T>(rows, inputs), new Matrix<T>(rows, classes), new Matrix<T>(rows, classes));
                _blocks[rows] = b;
            }

            return b;
        }
    }

    private sealed class Workspace
    {
        public Workspace(int rows, int[] dims, ModelSpec spec)
        {
            Blocks = new Block[dims.Length - 2];
            for (var l = 0; l < Blocks.Length; l++)
            {
                Blocks[l] = new Block(rows, dims[l + 1], spec);
            }

            Scores = new Matrix<T>(rows, dims[^1]);
            Dscores = new Matrix<T>(rows, dims[^1]);
        }

        public Block[] Blocks { get; }

        public Matrix<T> Scores { get; }

        public Matrix<T> Dscores { get; }

        /// <summary>The batch laid out for the input-layer kernels, made on first use.</summary>
        public InputBatch? Input { get; set; }
    }

    private sealed class Block
    {
        public Block(int rows, int width, ModelSpec spec)
        {
            Z = new Matrix<T>(rows, width);
            Grad = new Matrix<T>(rows, width);
            var norm = spec.Normalization != Normalization.None;
            if (norm)
            {
                XHat = new Matrix<T>(rows, width);
                Normalized = new Matrix<T>(rows, width);
            }

            if (spec.Dropout > 0)
            {
                Mask = new Matrix<T>(rows, width);
                Dropped = new Matrix<T>(rows, width);
            }

            Mean = new T[width];
            Scratch = new T[width];
            InvStd = new T[spec.Normalization == Normalization.Layer ? rows : width];
        }

        public Matrix<T> Z { get; }

        public Matrix<T>? XHat { get; }

        public Matrix<T>? Normalized { get; }

        public Matrix<T>? Mask { get; }

        public Matrix<T>? Dropped { get; }

        /// <summary>Gradient with respect to this block's output, transformed in place down to its affine output.</summary>
        public Matrix<T> Grad { get; }

        public T[] Mean { get; }

        public T[] InvStd { get; }

        public T[] Scratch { get; }

        public Matrix<T>? ReluOut { get; set; }

        public Matrix<T>? Output { get; set; }
    }
}
