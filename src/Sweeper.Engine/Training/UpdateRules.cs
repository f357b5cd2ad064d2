using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Sweeper.Engine.Training;

/// <summary>Hyperparameters of the update rules. Defaults as in cs231n and Kingma and Ba (2015).</summary>
public sealed record UpdateSettings
{
    /// <summary>Momentum of sgd_momentum. Default: 0.9.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Decay of rmsprop's squared-gradient average. Default: 0.99.</summary>
    public double DecayRate { get; init; } = 0.99;

    /// <summary>Adam's first-moment decay. Default: 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam's second-moment decay. Default: 0.999.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Added to the denominator of rmsprop and adam. Default: 1e-8.</summary>
    public double Epsilon { get; init; } = 1e-8;
}

/// <summary>Per-parameter optimizer state: zero or more arrays the size of the parameter, and a step counter.</summary>
public sealed class ParameterState<T>(int slots, int length)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public T[][] Slots { get; } = Enumerable.Range(0, slots).Select(_ => new T[length]).ToArray();

    /// <summary>How many updates this parameter has had (adam's t).</summary>
    public long Step { get; set; }
}

/// <summary>
/// An update rule: one shared signature, state kept per parameter. Each rule makes one pass over the parameter.
/// </summary>
public abstract class UpdateRule
{
    public static readonly IReadOnlyList<string> Names = ["sgd", "sgd_momentum", "rmsprop", "adam"];

    public abstract string Name { get; }

    /// <summary>How many arrays of state each parameter needs.</summary>
    public abstract int Slots { get; }

    public static UpdateRule Create(string name, UpdateSettings? settings = null)
    {
        settings ??= new UpdateSettings();
        return name switch
        {
            "sgd" => new Sgd(),
            "sgd_momentum" => new SgdMomentum(settings.Momentum),
            "rmsprop" => new RmsProp(settings.DecayRate, settings.Epsilon),
            "adam" => new Adam(settings.Beta1, settings.Beta2, settings.Epsilon),
            _ => throw new ArgumentException($"unknown update rule '{name}'; expected one of {string.Join(", ", Names)}."),
        };
    }

    public ParameterState<T> CreateState<T>(int length)
        where T : unmanaged, IFloatingPointIeee754<T>
        => new(Slots, length);

    /// <summary>Updates <paramref name="w"/> in place from its gradient <paramref name="dw"/>.</summary>
    public void Update<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var length = w.Length;
        if (dw.Length != length || state.Slots.Any(s => s.Length != length))
        {
            throw new ArgumentException("parameter, gradient and state lengths differ.");
        }

        state.Step++;
        Apply(w, dw, state, learningRate);
    }

    protected abstract void Apply<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>w -= lr * dw.</summary>
    private sealed class Sgd : UpdateRule
    {
        public override string Name => "sgd";

        public override int Slots => 0;

        protected override void Apply<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
            => TensorPrimitives.FusedMultiplyAdd(dw, T.CreateTruncating(-learningRate), w, w);
    }

    /// <summary>v = momentum * v - lr * dw; w += v.</summary>
    private sealed class SgdMomentum(double momentum) : UpdateRule
    {
        public override string Name => "sgd_momentum";

        public override int Slots => 1;

        protected override void Apply<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
        {
            var v = state.Slots[0].AsSpan();
            T mu = T.CreateTruncating(momentum), lr = T.CreateTruncating(learningRate);
            for (var i = 0; i < w.Length; i++)
            {
                v[i] = (mu * v[i]) - (lr * dw[i]);
                w[i] += v[i];
            }
        }
    }

    /// <summary>cache = decay * cache + (1 - decay) * dw^2; w -= lr * dw / (sqrt(cache) + eps).</summary>
    private sealed class RmsProp(double decay, double eps) : UpdateRule
    {
        public override string Name => "rmsprop";

        public override int Slots => 1;

        protected override void Apply<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
        {
            var cache = state.Slots[0].AsSpan();
            T d = T.CreateTruncating(decay), oneMinusD = T.One - d, lr = T.CreateTruncating(learningRate), e = T.CreateTruncating(eps);
            for (var i = 0; i < w.Length; i++)
            {
                var g = dw[i];
                cache[i] = (d * cache[i]) + (oneMinusD * g * g);
                w[i] -= lr * g / (T.Sqrt(cache[i]) + e);
            }
        }
    }

    /// <summary>
    /// Adam with bias correction (Kingma and Ba 2015, Algorithm 1), in one pass:
    /// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    /// </summary>
    private sealed class Adam(double beta1, double beta2, double eps) : UpdateRule
    {
        public override string Name => "adam";

        public override int Slots => 2;

        protected override void Apply<T>(Span<T> w, ReadOnlySpan<T> dw, ParameterState<T> state, double learningRate)
        {
            var t = state.Step;
            var c1 = 1.0 - Math.Pow(beta1, t);
            var c2 = 1.0 - Math.Pow(beta2, t);
            T b1 = T.CreateTruncating(beta1), oneMinusB1 = T.One - b1;
            T b2 = T.CreateTruncating(beta2), oneMinusB2 = T.One - b2;
            T step = T.CreateTruncating(learningRate / c1), invC2 = T.CreateTruncating(1.0 / c2), e = T.CreateTruncating(eps);
            var m = state.Slots[0].AsSpan();
            var v = state.Slots[1].AsSpan();
            var i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var wv = MemoryMarshal.Cast<T, Vector<T>>(w);
                var mv = MemoryMarshal.Cast<T, Vector<T>>(m);
                var vv = MemoryMarshal.Cast<T, Vector<T>>(v);
                var gv = MemoryMarshal.Cast<T, Vector<T>>(dw);
                Vector<T> vb1 = new(b1), vb1c = new(oneMinusB1), vb2 = new(b2), vb2c = new(oneMinusB2), vstep = new(step), vinv = new(invC2), ve = new(e);
                for (var k = 0; k < wv.Length; k++)
                {
                    var g = gv[k];
                    var mk = (vb1 * mv[k]) + (vb1c * g);
                    var vk = (vb2 * vv[k]) + (vb2c * g * g);
                    mv[k] = mk;
                    vv[k] = vk;
                    wv[k] -= vstep * mk / (Vector.SquareRoot(vk * vinv) + ve);
                }

                i = wv.Length * Vector<T>.Count;
            }

            for (; i < w.Length; i++)
            {
                var g = dw[i];
                m[i] = (b1 * m[i]) + (oneMinusB1 * g);
                v[i] = (b2 * v[i]) + (oneMinusB2 * g * g);
                w[i] -= step * m[i] / (T.Sqrt(v[i] * invC2) + e);
            }
        }
    }
}
