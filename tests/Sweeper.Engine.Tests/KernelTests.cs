using Sweeper.Core;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

public class KernelTests
{
    private static double[] NaiveGemm(bool ta, bool tb, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[] c)
    {
        var r = (double[])c.Clone();
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var s = 0.0;
                for (var p = 0; p < k; p++)
                {
                    var av = ta ? a[(p * m) + i] : a[(i * k) + p];
                    var bv = tb ? b[(j * k) + p] : b[(p * n) + j];
                    s += av * bv;
                }

                r[(i * n) + j] = (alpha * s) + (beta * c[(i * n) + j]);
            }
        }

        return r;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Gemm_matches_a_naive_triple_loop_in_double_and_float(bool ta, bool tb)
    {
        var rng = new Rng(1);
        int m = 7, n = 5, k = 9;
        var a = TestData.Randn(rng, m * k);
        var b = TestData.Randn(rng, k * n);
        var c = TestData.Randn(rng, m * n);
        var expected = NaiveGemm(ta, tb, m, n, k, 0.7, a, b, 0.3, c);

        var cd = (double[])c.Clone();
        Blas.Gemm<double>(ta, tb, m, n, k, 0.7, a, ta ? m : k, b, tb ? k : n, 0.3, cd, n);
        for (var i = 0; i < cd.Length; i++)
        {
            Assert.Equal(expected[i], cd[i], 12);
        }

        var cf = c.Select(v => (float)v).ToArray();
        Blas.Gemm<float>(ta, tb, m, n, k, 0.7f, a.Select(v => (float)v).ToArray(), ta ? m : k, b.Select(v => (float)v).ToArray(), tb ? k : n, 0.3f, cf, n);
        for (var i = 0; i < cf.Length; i++)
        {
            Assert.Equal(expected[i], cf[i], 4);
        }
    }

    /// <summary>The vector widths NarrowGemm can run here: 8 lanes (AVX2) always, 16 (AVX-512) where fast.</summary>
    private static int[] NarrowLanes => NarrowGemm.WideSupported ? [8, 16] : [8];

    [Theory]
    [InlineData(40, 3072)] // a full block of CIFAR-10 rows
    [InlineData(7, 3073)] // an odd row and a bias column past the last multiple of 8 and 16
    [InlineData(3, 45)] // columns past the last multiple of 16 that a multiple of 8 still covers
    [InlineData(1, 5)] // nothing for the vector loop at all
    public void The_narrow_scores_kernel_matches_double_precision_products(int rows, int d)
    {
        Assert.True(NarrowGemm.Supported<float>(10), "this machine lacks AVX2/FMA: the kernel would not be used");
        Assert.False(NarrowGemm.Supported<double>(10));
        Assert.False(NarrowGemm.Supported<float>(9));
        Assert.Contains(NarrowGemm.Lanes, NarrowLanes);
        var rng = new Rng(5);
        var x = new float[rows * d];
        var w = new float[10 * d];
        var b = new float[10];
        rng.FillGaussian<float>(x, 1);
        rng.FillGaussian<float>(w, 0.1);
        rng.FillGaussian<float>(b, 1);
        foreach (var lanes in NarrowLanes)
        {
            var packed = new float[NarrowGemm.PackedLength(d, lanes)];
            NarrowGemm.Pack(w, d, packed, lanes);
            var output = new float[rows * 10];
            NarrowGemm.ScoresInto(x, rows, d, w, packed, b, output, new float[NarrowGemm.ScratchLength(rows, lanes)], lanes);
            for (var r = 0; r < rows; r++)
            {
                for (var c = 0; c < 10; c++)
                {
                    double expected = b[c], magnitude = Math.Abs(b[c]);
                    for (var k = 0; k < d; k++)
                    {
                        expected += (double)x[(r * d) + k] * w[(c * d) + k];
                        magnitude += Math.Abs((double)x[(r * d) + k] * w[(c * d) + k]);
                    }

                    // float32 sums in another order: error bounded by a few ulps of the sum of magnitudes.
                    Assert.True(Math.Abs(output[(r * 10) + c] - expected) <= 1e-6 * magnitude + 1e-6, $"{lanes} lanes, row {r} class {c}: {output[(r * 10) + c]} vs {expected}");
                }
            }

            Assert.Throws<ArgumentException>(() => NarrowGemm.ScoresInto(x, rows, d, w, packed, b, output, new float[NarrowGemm.ScratchLength(rows, lanes) - 1], lanes));
            Assert.Throws<ArgumentException>(() => NarrowGemm.Pack(w.AsSpan(1).ToArray(), d, packed, lanes));
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => NarrowGemm.Pack(w, d, new float[NarrowGemm.PackedLength(d, 8)], 12));
    }

    [Theory]
    [InlineData(40, 3072)] // a full block of CIFAR-10 rows
    [InlineData(7, 3073)] // a bias column past the last multiple of 32 and 8
    [InlineData(3, 45)] // one chunk of 32, one of 8, and five single columns
    [InlineData(1, 5)] // nothing for the vector loops at all
    public void The_narrow_weight_step_kernel_matches_double_precision_products(int rows, int d)
    {
        var rng = new Rng(6);
        var dscores = new float[rows * 10];
        var x = new float[rows * d];
        var previous = new float[10 * d];
        rng.FillGaussian<float>(dscores, 0.1);
        rng.FillGaussian<float>(x, 30);
        rng.FillGaussian<float>(previous, 0.01);
        const float alpha = -0.003f;
        foreach (var lanes in NarrowLanes)
        {
            foreach (var accumulate in new[] { false, true })
            {
                var step = (float[])previous.Clone();
                NarrowGemm.WeightStepInto(dscores, x, rows, d, alpha, step, accumulate, lanes);
                for (var c = 0; c < 10; c++)
                {
                    for (var k = 0; k < d; k++)
                    {
                        double sum = 0, magnitude = 0;
                        for (var i = 0; i < rows; i++)
                        {
                            sum += (double)dscores[(i * 10) + c] * x[(i * d) + k];
                            magnitude += Math.Abs((double)dscores[(i * 10) + c] * x[(i * d) + k]);
                        }

                        var before = accumulate ? previous[(c * d) + k] : 0.0;
                        var expected = (alpha * sum) + before;
                        var bound = (1e-6 * ((Math.Abs(alpha) * magnitude) + Math.Abs(before))) + 1e-12;
                        Assert.True(Math.Abs(step[(c * d) + k] - expected) <= bound, $"{lanes} lanes, accumulate {accumulate}, class {c} column {k}: {step[(c * d) + k]} vs {expected}");
                    }
                }
            }
        }

        Assert.Throws<ArgumentException>(() => NarrowGemm.WeightStepInto(dscores, x, rows, d, alpha, new float[(10 * d) - 1], false));
        Assert.Throws<ArgumentException>(() => NarrowGemm.WeightStepInto(dscores.AsSpan(1).ToArray(), x, rows, d, alpha, new float[10 * d], false));
    }

    [Fact]
    public void Gemm_rejects_buffers_too_small_for_the_shapes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Blas.Gemm<float>(false, false, 4, 4, 4, 1f, new float[15], 4, new float[16], 4, 0f, new float[16], 4));
        Assert.Contains("Matrix A", ex.Message);
    }

    [Fact]
    public void Blas_reports_the_loaded_library()
    {
        Assert.Contains("openblas", Blas.Describe(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Relu_and_its_backward_match_scalar_loops_including_the_tail()
    {
        var rng = new Rng(3);
        var x = TestData.Randn(rng, 37);
        var dy = TestData.Randn(rng, 37);
        var y = new double[37];
        var dx = new double[37];
        Ops.Relu<double>(x, y);
        Ops.ReluBackward<double>(y, dy, dx);
        for (var i = 0; i < 37; i++)
        {
            Assert.Equal(Math.Max(0, x[i]), y[i]);
            Assert.Equal(x[i] > 0 ? dy[i] : 0, dx[i]);
        }
    }

    [Fact]
    public void Rng_state_round_trips_and_continues_the_same_sequence()
    {
        var a = new Rng(42);
        for (var i = 0; i < 10; i++)
        {
            a.NextULong();
        }

        var b = Rng.FromState(a.GetState());
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(a.NextULong(), b.NextULong());
        }

        Assert.NotEqual(new Rng(1).NextULong(), new Rng(2).NextULong());
    }

    [Fact]
    public void Rng_draws_are_uniform_and_gaussian_in_distribution()
    {
        var rng = new Rng(7);
        var counts = new int[10];
        for (var i = 0; i < 100_000; i++)
        {
            counts[rng.NextInt(10)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 9_500, 10_500));
        var g = new double[100_000];
        rng.FillGaussian<double>(g, 2.0);
        var mean = g.Average();
        var std = Math.Sqrt(g.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, -0.03, 0.03);
        Assert.InRange(std, 1.97, 2.03);
    }

    [Fact]
    public void Dropout_masks_drop_the_requested_fraction_and_scale_the_rest()
    {
        var mask = new float[100_001];
        new Rng(9).FillDropoutMask<float>(mask, 0.3);
        var dropped = mask.Count(v => v == 0);
        Assert.InRange(dropped / (double)mask.Length, 0.29, 0.31);
        Assert.All(mask.Where(v => v != 0), v => Assert.Equal(1 / 0.7f, v, 6));
    }

    [Fact]
    public void Shuffle_is_a_permutation()
    {
        var values = Enumerable.Range(0, 1000).ToArray();
        new Rng(5).Shuffle(values);
        Assert.NotEqual(Enumerable.Range(0, 1000), values);
        Assert.Equal(Enumerable.Range(0, 1000), values.Order());
    }
}
