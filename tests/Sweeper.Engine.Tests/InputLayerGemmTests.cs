using Sweeper.Core;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

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
    /// The kernels need fast AVX-512. On a machine without it (e.g. an AMD EPYC before Zen 4) they cannot run at all, and
    /// what must hold there instead is checked: the kernels say they are unsupported, and a model of the shape they would
    /// take trains its input layer on OpenBLAS. Returns whether the kernels run here (the rest of the test then checks
    /// them); the test's name says what it checks where they do.
    /// </summary>
    private static bool KernelsRunHere()
    {
        if (InputLayerGemm.Supported(InputLayerGemm.TileUnits, 3072))
        {
            return true;
        }

        Assert.False(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx512F.IsSupported);
        Assert.False(InputLayerGemm.Supported(120, 3072));
        var model = new FullyConnectedNet<float>(new ModelSpec { InputDim = 3072, HiddenSizes = [100] }, 1);
        Assert.False(model.UsesInputKernels);
        return false;
    }

    /// <summary>
    /// Whether this machine's kernels take h units of d inputs (the wide shapes only on AMD processors, see
    /// <see cref="InputLayerGemm.MaxWeightBytes"/>); where they do not, what must hold instead is checked: they refuse it.
    /// </summary>
    private static bool TakenHere(int h, int d)
    {
        if (InputLayerGemm.Supported(h, d))
        {
            return true;
        }

        Assert.False(CpuInfo.Current.IsAmd);
        var (batch, _) = RandomBatch(4, d, 1);
        Assert.Throws<NotSupportedException>(() => InputLayerGemm.Forward(batch, new float[h * d], new float[h], new float[4 * h]));
        return false;
    }

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
    public void The_forward_product_lays_out_every_row_into_the_strips_with_zero_padding(int n, int d)
    {
        if (!KernelsRunHere())
        {
            return;
        }

        var (batch, x) = RandomBatch(n, d, 3);
        var w = Gaussian(10 * d, 4);
        var z = new float[n * 10];
        Assert.False(batch.StripsReady);
        Assert.Throws<InvalidOperationException>(() => InputLayerGemm.WeightStep(batch, new float[n * 10], w, 1, 1, new float[10 * d]));
        InputLayerGemm.Forward(batch, w, new float[10], z);
        Assert.True(batch.StripsReady);
        for (var i = 0; i < n; i++)
        {
            for (var k = 0; k < batch.StripCount * InputBatch.StripColumns; k++)
            {
                var expected = k < d ? x[i, k] : 0f;
                Assert.Equal(expected, batch.Strips[((((k / 32) * batch.StripRows) + i) * 32) + (k % 32)]);
            }
        }

        // The last panel laid out holds the batch's last rows, feature by feature, with zeros past the last row.
        var lastPanel = batch.PanelCount - 1;
        var slot = lastPanel % 2;
        for (var l = 0; l < 16; l++)
        {
            var row = (lastPanel * 16) + l;
            for (var k = 0; k < d; k++)
            {
                Assert.Equal(row < n ? x[row, k] : 0f, batch.Panels[((slot * d) + k) * 16 + l]);
            }
        }

        // The same rows given as a matrix give the same strips and products.
        var again = new InputBatch(n, d);
        again.SetRows(x);
        var z2 = new float[n * 10];
        InputLayerGemm.Forward(again, w, new float[10], z2);
        Assert.Equal(batch.Strips.ToArray(), again.Strips.ToArray());
        Assert.Equal(z, z2);
    }

    [Fact]
    public unsafe void LayOut16_transposes_a_block_into_a_panel()
    {
        if (!KernelsRunHere())
        {
            return;
        }

        const int Stride = 48;
        var block = new AlignedFloats(16 * Stride);
        var panel = new AlignedFloats(16 * 16);
        for (var l = 0; l < 16; l++)
        {
            for (var m = 0; m < 16; m++)
            {
                block.Span[(l * Stride) + m] = (l * 100) + m;
            }
        }

        InputBatch.LayOut16(block.Pointer, Stride, panel.Pointer);
        for (var l = 0; l < 16; l++)
        {
            for (var m = 0; m < 16; m++)
            {
                Assert.Equal((l * 100) + m, panel.Span[(m * 16) + l]);
            }
        }
    }

    [Theory]
    [InlineData(200, 3072, 100)]
    [InlineData(200, 3072, 500)]
    [InlineData(37, 100, 20)]
    [InlineData(16, 33, 10)]
    [InlineData(3, 7, 30)]
    public void Forward_matches_a_double_precision_loop(int n, int d, int h)
    {
        if (!KernelsRunHere() || !TakenHere(h, d))
        {
            return;
        }

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
    [InlineData(200, 3072, 500, true)]
    [InlineData(37, 100, 20, true)]
    [InlineData(16, 33, 10, false)]
    [InlineData(3, 7, 30, true)]
    public void WeightStep_matches_a_double_precision_loop(int n, int d, int h, bool inPlace)
    {
        if (!KernelsRunHere() || !TakenHere(h, d))
        {
            return;
        }

        var (batch, x) = RandomBatch(n, d, 8);
        var dz = Gaussian(n * h, 9);
        var src = Gaussian(h * d, 10);
        var dst = inPlace ? src : Gaussian(h * d, 11);
        var before = (float[])src.Clone();
        InputLayerGemm.Forward(batch, new float[h * d], new float[h], new float[n * h]); // lays out the strips
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
        if (!KernelsRunHere())
        {
            return;
        }

        Assert.False(InputLayerGemm.Supported(15, 8));
        Assert.True(InputLayerGemm.Supported(120, 3072));
        // Past the weights this machine's kernels take (1.5 MiB, or 8 MiB on AMD), OpenBLAS's blocked product is faster.
        var most = (int)(InputLayerGemm.MaxWeightBytes / (3072L * sizeof(float))) / InputLayerGemm.TileUnits * InputLayerGemm.TileUnits;
        Assert.True(InputLayerGemm.Supported(most, 3072));
        Assert.False(InputLayerGemm.Supported(most + InputLayerGemm.TileUnits, 3072));
        Assert.Equal(CpuInfo.Current.IsAmd ? 680 : 120, most);
        var (batch, _) = RandomBatch(4, 8, 1);
        InputLayerGemm.Forward(batch, new float[10 * 8], new float[10], new float[4 * 10]);
        Assert.Throws<NotSupportedException>(() => InputLayerGemm.Forward(batch, new float[15 * 8], new float[15], new float[4 * 15]));
        Assert.Throws<ArgumentException>(() => InputLayerGemm.Forward(batch, new float[(10 * 8) - 1], new float[10], new float[4 * 10]));
        Assert.Throws<ArgumentException>(() => InputLayerGemm.WeightStep(batch, new float[4 * 10], new float[10 * 8], 1, 1, new float[(10 * 8) + 1]));
        Assert.Throws<ArgumentException>(() => batch.SetRows(new Matrix<float>(5, 8)));
    }

    [Theory]
    [InlineData("sgd", 0)]
    [InlineData("sgd", 1)]
    [InlineData("adam", 2)]
    public void Training_steps_on_the_kernels_follow_the_same_steps_on_OpenBLAS(string rule, int normalization)
    {
        if (!KernelsRunHere())
        {
            return;
        }

        const int N = 90, D = 70;
        var rng = new Rng(12);
        var x = new Matrix<float>(Gaussian(N * D, 13), N, D);
        var split = new InMemorySplit<float>(x, TestData.Labels(rng, N, 10));
        var spec = new ModelSpec { InputDim = D, HiddenSizes = [20, 10], Normalization = (Normalization)normalization, Reg = 0.05, WeightScale = 0.05 };
        var options = new SolverOptions { UpdateRule = rule, LearningRate = 1e-2, BatchSize = 30, Seed = 4 };
        var kernels = new Solver<float>(new FullyConnectedNet<float>(spec, 4), split, split, options);
        var blas = new Solver<float>(new FullyConnectedNet<float>(spec, 4), split, split, options);
        blas.Model.InputKernels = false;
        Assert.True(kernels.Model.UsesInputKernels);
        Assert.False(blas.Model.UsesInputKernels);
        var order = Enumerable.Range(0, N).ToArray();
        for (var step = 0; step < 12; step++)
        {
            rng.Shuffle(order);
            var batch = order.AsSpan(0, 30);
            var (a, b) = (kernels.Step(batch), blas.Step(batch));
            Assert.True(Math.Abs(a - b) <= 1e-5 * Math.Abs(b), $"step {step}: loss {a} on the kernels, {b} on OpenBLAS");
        }

        for (var p = 0; p < kernels.Model.Parameters.Count; p++)
        {
            var (a, b) = (kernels.Model.Parameters[p].Value, blas.Model.Parameters[p].Value);
            var scale = b.Max(Math.Abs);
            for (var i = 0; i < a.Length; i++)
            {
                // Biases before batch norm get only rounding noise as gradient: hence the absolute floor.
                Assert.True(Math.Abs(a[i] - b[i]) <= (1e-4 * scale) + 1e-7, $"{kernels.Model.Parameters[p].Name}[{i}]: {a[i]} on the kernels, {b[i]} on OpenBLAS");
            }
        }
    }

    [Fact]
    public void The_loss_on_the_kernels_gives_the_gradients_of_the_loss_on_OpenBLAS()
    {
        if (!KernelsRunHere())
        {
            return;
        }

        const int N = 45, D = 50;
        var x = new Matrix<float>(Gaussian(N * D, 20), N, D);
        var split = new InMemorySplit<float>(x, TestData.Labels(new Rng(21), N, 10));
        var model = new FullyConnectedNet<float>(new ModelSpec { InputDim = D, HiddenSizes = [30], Reg = 0.1, WeightScale = 0.05 }, 22);
        var indices = Enumerable.Range(0, N).Reverse().ToArray();
        var gathered = new Matrix<float>(N, D);
        split.Gather(indices, gathered);
        var lossBlas = model.Loss(gathered, split.Labels.AsSpan().ToArray().Reverse().ToArray());
        var gradients = model.Parameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        var lossKernels = model.Loss(split, indices, split.Labels.AsSpan().ToArray().Reverse().ToArray());
        Assert.Equal(lossBlas, lossKernels, 1e-5);
        for (var p = 0; p < gradients.Length; p++)
        {
            var scale = gradients[p].Max(Math.Abs);
            Assert.True(scale > 0);
            for (var i = 0; i < gradients[p].Length; i++)
            {
                Assert.True(Math.Abs(model.Parameters[p].Grad[i] - gradients[p][i]) <= 1e-5 * scale, $"{model.Parameters[p].Name}[{i}]");
            }
        }
    }
}
