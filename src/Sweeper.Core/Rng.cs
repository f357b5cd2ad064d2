using System.Numerics;

namespace Sweeper.Core;

/// <summary>
/// xoshiro256** pseudo-random generator whose whole state is four 64-bit words, so that a checkpoint can
/// save it and a resumed run draws exactly the same numbers as one that never stopped. Not thread-safe.
/// </summary>
public sealed class Rng
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Seeds the four words from <paramref name="seed"/> with splitmix64, as the xoshiro authors recommend.</summary>
    public Rng(ulong seed)
    {
        var x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    private Rng(ulong[] state)
    {
        (_s0, _s1, _s2, _s3) = (state[0], state[1], state[2], state[3]);
    }

    public ulong[] GetState() => [_s0, _s1, _s2, _s3];

    public static Rng FromState(ulong[] state)
    {
        if (state.Length != 4 || (state[0] | state[1] | state[2] | state[3]) == 0)
        {
            throw new ArgumentException("An Rng state is four 64-bit words, not all zero.", nameof(state));
        }

        return new Rng(state);
    }

    /// <summary>
    /// Derives an independent generator (for example one per trial or per layer) from a seed and a stream number. Seed
    /// and stream each go through splitmix64's mixing before they meet, so that the streams of one seed start from
    /// unrelated states for every seed. (The earlier form, <c>seed ^ golden * (stream + 1)</c>, gave seed 0's streams
    /// seeds exactly one splitmix64 step apart: neighbouring streams then began from shifted copies of one state, and
    /// neighbouring trials of a seed-0 sweep drew nearly the same values.)
    /// </summary>
    public static Rng Derive(ulong seed, ulong stream)
    {
        var x = seed;
        var y = stream ^ 0xD1B54A32D192ED03UL;
        return new Rng(SplitMix(ref x) ^ BitOperations.RotateLeft(SplitMix(ref y), 31));
    }

    public ulong NextULong()
    {
        var result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n), without modulo bias (Lemire's method): the same draw as <see cref="NextULong(ulong)"/>.</summary>
    public int NextInt(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        return (int)NextULong((ulong)n);
    }

    /// <summary>
    /// Uniform integer in [0, n) for any n >= 1, without modulo bias (Lemire's method: the high word of a 64 x 64-bit
    /// product, redrawn while the low word falls in the biased sliver). For n below 2^31 it draws exactly what
    /// <see cref="NextInt"/> draws.
    /// </summary>
    public ulong NextULong(ulong n)
    {
        ArgumentOutOfRangeException.ThrowIfZero(n);
        var m = Math.BigMul(NextULong(), n, out var low);
        if (low < n)
        {
            var threshold = (0 - n) % n;
            while (low < threshold)
            {
                m = Math.BigMul(NextULong(), n, out low);
            }
        }

        return m;
    }

    /// <summary>A standard normal draw (Box-Muller; one of the pair is discarded so that the state stays four words).</summary>
    public double NextGaussian()
    {
        double u1;
        do
        {
            u1 = NextDouble();
        }
        while (u1 <= double.Epsilon);
        var u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Fills <paramref name="destination"/> with normal draws of mean 0 and the given standard deviation.</summary>
    public void FillGaussian<T>(Span<T> destination, double std)
        where T : IFloatingPointIeee754<T>
    {
        for (var i = 0; i < destination.Length; i += 2)
        {
            double u1;
            do
            {
                u1 = NextDouble();
            }
            while (u1 <= double.Epsilon);
            var r = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
            var theta = 2.0 * Math.PI * NextDouble();
            destination[i] = T.CreateTruncating(r * Math.Cos(theta));
            if (i + 1 < destination.Length)
            {
                destination[i + 1] = T.CreateTruncating(r * Math.Sin(theta));
            }
        }
    }

    /// <summary>Fisher-Yates shuffle of <paramref name="values"/> in place.</summary>
    public void Shuffle(Span<int> values)
    {
        for (var i = values.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (values[i], values[j]) = (values[j], values[i]);
        }
    }

    /// <summary>
    /// Inverted-dropout mask: each element is 0 with probability <paramref name="dropProbability"/>, else 1 / (1 - p).
    /// Each element compares 32 random bits with p * 2^32; branch-free, since a random branch mispredicts half the time.
    /// </summary>
    public void FillDropoutMask<T>(Span<T> mask, double dropProbability)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var threshold = (ulong)(dropProbability * 4294967296.0);
        if (typeof(T) == typeof(float))
        {
            var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<T, uint>(mask);
            var keepBits = BitConverter.SingleToUInt32Bits((float)(1.0 / (1.0 - dropProbability)));
            var i = 0;
            for (; i + 1 < bits.Length; i += 2)
            {
                var r = NextULong();
                bits[i] = keepBits & (0u - (uint)((r & 0xFFFFFFFFUL) >= threshold ? 1 : 0));
                bits[i + 1] = keepBits & (0u - (uint)((r >> 32) >= threshold ? 1 : 0));
            }

            if (i < bits.Length)
            {
                bits[i] = keepBits & (0u - (uint)((NextULong() & 0xFFFFFFFFUL) >= threshold ? 1 : 0));
            }

            return;
        }

        var keep = T.CreateTruncating(1.0 / (1.0 - dropProbability));
        for (var i = 0; i < mask.Length; i += 2)
        {
            var r = NextULong();
            mask[i] = (r & 0xFFFFFFFFUL) < threshold ? T.Zero : keep;
            if (i + 1 < mask.Length)
            {
                mask[i + 1] = (r >> 32) < threshold ? T.Zero : keep;
            }
        }
    }

    private static ulong SplitMix(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
