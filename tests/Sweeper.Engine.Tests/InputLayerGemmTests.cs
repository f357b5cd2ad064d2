using Sweeper.Core;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

public class InputLayerGemmTests
{
    private static float[] Gaussian(int length, ulong seed)
    {
        var a = new float[length];
        new Rng(seed).FillGaussian<float>(a, 1);
        return a;
    }

    /// <summary>
    /// The kernels need fast AVX-512 (this project's machines have it). Elsewhere the model takes OpenBLAS for the input
    /// layer; xunit 2 cannot mark a test skipped at run time, so the test fails with this reason rather than pass unseen.
    /// </summary>
    private static void RequireKernels() =>
        Assert.True(InputLayerGemm.Supported(InputLayerGemm.TileUnits), "this machine lacks fast AVX-512 (Vector512.IsHardwareAccelerated): the input-layer kernels cannot run here, and the model uses OpenBLAS instead");

    /// <summary>A batch of rows 3, 0, 5, ... of a random split (every row at most once), gathered into an InputBatch.</summary>
    private static (InputBatch Batch, Matrix<float> X) RandomBatch(int n, int d, ulong seed)
    {
        var all = new Matrix<float>(Gaussian((n + 7) * d, seed), n + 7, d);
        var split = new InMemorySplit<float>(all, new int[n + 7]);
        var indices = Enumerable.Range(0, n + 7).Reverse().Take(n).ToArray();
        new Rng(seed + 1).Shuffle(indices);
        var batch = new InputBatch(n, d);
        batch.Gather(split, indices);
        var x = new Matrix<float>(n, d);
        split.Gather(indices, x);
        return (batch, x);
    }

    [Theory]
    [InlineData(200, 3072)]
    [InlineData(37, 100)]
    [InlineData(16, 16)]
    [InlineData(5, 45)]
    public void A_batch_lays_out_every_row_as_panels_and_strips_with_zero_padding(int n, int d)
    {
        var (batch, x) = RandomBatch(n, d, 3);
        for (var i = 0; i < batch.PanelCount * InputBatch.PanelRows; i++)
        {
            for (var k = 0; k < d; k++)
            {
                var expected = i < n ? x[i, k] : 0f;
                Assert.Equal(expected, batch.Panels[((((i / 16) * d) + k) * 16) + (i % 16)]);
            }
        }

        for (var i = 0; i < n; i++)
        {
            for (var k = 0; k < batch.StripCount * InputBatch.StripColumns; k++)
            {
                var expected = k < d ? x[i, k] : 0f;
                Assert.Equal(expected, batch.Strips[((((k / 32) * n) + i) * 32) + (k % 32)]);
            }
        }

        // Laying out the same rows from a matrix gives the same batch.
        var again = new InputBatch(n, d);
        again.SetRows(x);
        Assert.Equal(batch.Panels, again.Panels);
        Assert.Equal(batch.Strips, again.Strips);
    }

    [Fact]
    public unsafe void Transpose16_transposes()
    {
        RequireKernels();
        var rows = stackalloc System.Runtime.Intrinsics.Vector512<float>[16];
        for (var l = 0; l < 16; l++)
        {
            var values = new float[16];
            for (var m = 0; m < 16; m++)
            {
                values[m] = (l * 100) + m;
            }

            rows[l] = System.Runtime.Intrinsics.Vector512.Create(values);
        }

        InputBatch.Transpose16(rows);
        for (var l = 0; l < 16; l++)
        {
            for (var m = 0; m < 16; m++)
            {
                Assert.Equal((m * 100) + l, rows[l][m]);
            }
        }
    }

    [Theory]
    [InlineData(200, 3072, 100)]
    [InlineData(37, 100, 20)]
    [InlineData(16, 33, 10)]
    [InlineData(3, 7, 30)]
    public void Forward_matches_a_double_precision_loop(int n, int d, int h)
    {
        RequireKernels();
        var (batch, x) = RandomBatch(n, d, 5);
        var w = Gaussian(h * d, 6);
        var b = Gaussian(h, 7);
        var z = new float[n * h];
        z.AsSpan().Fill(float.NaN); // every element must be written
        InputLayerGemm.Forward(batch, w, b, z);
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < h; j++)
            {
                double sum = b[j], magnitude = Math.Abs(b[j]);
                for (var k = 0; k < d; k++)
                {
                    sum += (double)x[i, k] * w[(j * d) + k];
                    magnitude += Math.Abs((double)x[i, k] * w[(j * d) + k]);
                }

                Assert.True(Math.Abs(z[(i * h) + j] - sum) <= 1e-6 * magnitude + 1e-6, $"z[{i}, {j}] = {z[(i * h) + j]}, expected {sum}");
            }
        }
    }

    [Theory]
    [InlineData(200, 3072, 100, false)]
    [InlineData(37, 100, 20, true)]
    [InlineData(16, 33, 10, false)]
    [InlineData(3, 7, 30, true)]
    public void WeightStep_matches_a_double_precision_loop(int n, int d, int h, bool inPlace)
    {
        RequireKernels();
        var (batch, x) = RandomBatch(n, d, 8);
        var dz = Gaussian(n * h, 9);
        var src = Gaussian(h * d, 10);
        var dst = inPlace ? src : Gaussian(h * d, 11);
        var before = (float[])src.Clone();
        const float Alpha = 0.75f, Beta = -0.01f;
        InputLayerGemm.WeightStep(batch, dz, src, Alpha, Beta, dst);
        for (var j = 0; j < h; j++)
        {
            for (var k = 0; k < d; k++)
            {
                double sum = 0, magnitude = 0;
                for (var i = 0; i < n; i++)
                {
                    sum += (double)dz[(i * h) + j] * x[i, k];
                    magnitude += Math.Abs((double)dz[(i * h) + j] * x[i, k]);
                }

                var expected = (Alpha * (double)before[(j * d) + k]) + (Beta * sum);
                var bound = 1e-6 * (Math.Abs(Alpha * before[(j * d) + k]) + Math.Abs(Beta * magnitude)) + 1e-7;
                Assert.True(Math.Abs(dst[(j * d) + k] - expected) <= bound, $"dst[{j}, {k}] = {dst[(j * d) + k]}, expected {expected}");
            }
        }
    }

    [Fact]
    public void The_kernels_refuse_shapes_they_are_not_written_for()
    {
        RequireKernels();
        Assert.False(InputLayerGemm.Supported(15));
        var (batch, _) = RandomBatch(4, 8, 1);
        Assert.Throws<NotSupportedException>(() => InputLayerGemm.Forward(batch, new float[15 * 8], new float[15], new float[4 * 15]));
        Assert.Throws<ArgumentException>(() => InputLayerGemm.Forward(batch, new float[(10 * 8) - 1], new float[10], new float[4 * 10]));
        Assert.Throws<ArgumentException>(() => InputLayerGemm.WeightStep(batch, new float[4 * 10], new float[10 * 8], 1, 1, new float[(10 * 8) + 1]));
        Assert.Throws<ArgumentException>(() => batch.SetRows(new Matrix<float>(5, 8)));
    }
}
