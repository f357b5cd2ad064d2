using Sweeper.Core;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Layers;
using static Sweeper.Engine.Training.GradientCheck;

namespace Sweeper.Engine.Tests;

/// <summary>Every layer's backward against central differences in float64.</summary>
public class LayerGradientTests
{
    private readonly Rng _rng = new(231);

    [Fact]
    public void Affine_backward_matches_numerical_gradients_for_a_4d_input()
    {
        var x = TestData.Randn(_rng, 10, 2, 3, 4);
        var w = TestData.Randn(_rng, 5, 24);
        var b = TestData.Randn(_rng, 5);
        var dout = TestData.Randn(_rng, 10, 5);
        double[] F() => Affine.Forward(x, w, b).Out.Data;

        var (_, cache) = Affine.Forward(x, w, b);
        var g = Affine.Backward(dout, cache);

        Assert.Equal(x.Shape, g.Dx.Shape);
        TestData.AssertGradient(g.Dx.Data, NumericalArray(F, x.Data, dout.Data), 1e-7, "g.Dx.Data");
        TestData.AssertGradient(g.Dw.Data, NumericalArray(F, w.Data, dout.Data), 1e-8, "g.Dw.Data");
        TestData.AssertGradient(g.Db, NumericalArray(F, b, dout.Data), 1e-8, "g.Db");
    }

    [Fact]
    public void Affine_forward_matches_a_hand_computed_product()
    {
        var x = Matrix<double>.FromRows([[1, 2], [3, 4]]);
        var w = Matrix<double>.FromRows([[1, 2], [0, 1], [-1, 0]]); // out x in
        var (output, _) = Affine.Forward(x, w, [0.5, 0, 1]);
        Assert.Equal([5.5, 2, 0, 11.5, 4, -2], output.Data);
    }

    [Fact]
    public void Fused_sgd_backward_equals_the_gradient_followed_by_an_sgd_step()
    {
        var x = TestData.Randn(_rng, 6, 8);
        var w = TestData.Randn(_rng, 4, 8);
        var b = TestData.Randn(_rng, 4);
        var dout = TestData.Randn(_rng, 6, 4);
        var dw = new double[w.Data.Length];
        var db = new double[4];
        var dx = x.ZerosLike();
        Affine.BackwardInto(dout, x, w.Data, dx, dw, db, 0.3);

        var fusedW = (double[])w.Data.Clone();
        var fusedB = (double[])b.Clone();
        var fusedDx = x.ZerosLike();
        Affine.BackwardSgdInto(dout, x, fusedW, fusedDx, fusedB, new double[4], 0.01, 0.3);
        Assert.Equal(dx.Data, fusedDx.Data); // the input gradient uses the weights before the step
        for (var i = 0; i < dw.Length; i++)
        {
            Assert.Equal(w.Data[i] - (0.01 * dw[i]), fusedW[i], 12);
        }

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(b[i] - (0.01 * db[i]), fusedB[i], 12);
        }
    }

    [Fact]
    public void Relu_backward_matches_numerical_gradients()
    {
        var x = TestData.Randn(_rng, 10, 10);
        // Keep inputs away from the kink at 0, where the numerical gradient is meaningless.
        for (var i = 0; i < x.Data.Length; i++)
        {
            x.Data[i] += x.Data[i] > 0 ? 0.01 : -0.01;
        }

        var dout = TestData.Randn(_rng, 10, 10);
        var (_, cache) = Relu.Forward(x);
        var dx = Relu.Backward(dout, cache);
        TestData.AssertGradient(dx.Data, NumericalArray(() => Relu.Forward(x).Out.Data, x.Data, dout.Data), 1e-9, "dx.Data");
    }

    [Fact]
    public void Batchnorm_backward_matches_numerical_gradients_in_train_mode()
    {
        var x = TestData.Randn(_rng, 4, 5);
        for (var i = 0; i < x.Data.Length; i++)
        {
            x.Data[i] = (5 * x.Data[i]) + 12;
        }

        var gamma = TestData.Randn(_rng, 5);
        var beta = TestData.Randn(_rng, 5);
        var dout = TestData.Randn(_rng, 4, 5);
        double[] F() => BatchNorm.Forward(x, gamma, beta, new double[5], new double[5], train: true).Out.Data;

        var (_, cache) = BatchNorm.Forward(x, gamma, beta, new double[5], new double[5], train: true);
        var g = BatchNorm.Backward(dout, cache!);
        TestData.AssertGradient(g.Dx.Data, NumericalArray(F, x.Data, dout.Data), 1e-7, "g.Dx.Data");
        TestData.AssertGradient(g.Dgamma, NumericalArray(F, gamma, dout.Data), 1e-8, "g.Dgamma");
        TestData.AssertGradient(g.Dbeta, NumericalArray(F, beta, dout.Data), 1e-8, "g.Dbeta");
    }

    [Fact]
    public void Batchnorm_train_mode_output_has_mean_beta_and_std_gamma_per_feature()
    {
        var x = TestData.Randn(_rng, 200, 3);
        for (var i = 0; i < x.Data.Length; i++)
        {
            x.Data[i] = (7 * x.Data[i]) - 3;
        }

        double[] gamma = [1, 2, 3], beta = [0, -1, 5];
        var (output, _) = BatchNorm.Forward(x, gamma, beta, new double[3], new double[3], train: true);
        for (var j = 0; j < 3; j++)
        {
            var column = Enumerable.Range(0, 200).Select(i => output[i, j]).ToArray();
            var mean = column.Average();
            var std = Math.Sqrt(column.Select(v => (v - mean) * (v - mean)).Average());
            Assert.Equal(beta[j], mean, 9);
            Assert.Equal(gamma[j], std, 4);
        }
    }

    [Fact]
    public void Batchnorm_test_mode_uses_running_statistics_that_converge_to_the_data()
    {
        var runningMean = new double[2];
        double[] runningVar = [1, 1];
        double[] gamma = [1, 1], beta = [0, 0];
        var rng = new Rng(4);
        for (var t = 0; t < 200; t++)
        {
            var x = TestData.Randn(rng, 1000, 2);
            for (var i = 0; i < 1000; i++)
            {
                x[i, 0] = (2 * x[i, 0]) + 10;
                x[i, 1] = (0.5 * x[i, 1]) - 4;
            }

            BatchNorm.Forward(x, gamma, beta, runningMean, runningVar, train: true);
        }

        Assert.Equal(10, runningMean[0], 0);
        Assert.Equal(-4, runningMean[1], 0);
        Assert.InRange(runningVar[0], 3.7, 4.3);
        Assert.InRange(runningVar[1], 0.22, 0.28);
        var probe = Matrix<double>.FromRows([[10, -4], [12, -3.5]]);
        var (output, cache) = BatchNorm.Forward(probe, gamma, beta, runningMean, runningVar, train: false);
        Assert.Null(cache);
        Assert.Equal(0, output[0, 0], 1);
        Assert.Equal(1, output[1, 0], 1);
        Assert.Equal(1, output[1, 1], 1);
    }

    [Fact]
    public void Layernorm_backward_matches_numerical_gradients()
    {
        var x = TestData.Randn(_rng, 4, 6);
        for (var i = 0; i < x.Data.Length; i++)
        {
            x.Data[i] = (3 * x.Data[i]) + 2;
        }

        var gamma = TestData.Randn(_rng, 6);
        var beta = TestData.Randn(_rng, 6);
        var dout = TestData.Randn(_rng, 4, 6);
        double[] F() => LayerNorm.Forward(x, gamma, beta).Out.Data;

        var (output, cache) = LayerNorm.Forward(x, gamma, beta);
        var g = LayerNorm.Backward(dout, cache);
        TestData.AssertGradient(g.Dx.Data, NumericalArray(F, x.Data, dout.Data), 1e-7, "g.Dx.Data");
        TestData.AssertGradient(g.Dgamma, NumericalArray(F, gamma, dout.Data), 1e-8, "g.Dgamma");
        TestData.AssertGradient(g.Dbeta, NumericalArray(F, beta, dout.Data), 1e-8, "g.Dbeta");

        // With gamma = 1 and beta = 0 every example has mean 0 and variance 1.
        var (unit, _) = LayerNorm.Forward(x, Enumerable.Repeat(1.0, 6).ToArray(), new double[6]);
        for (var i = 0; i < 4; i++)
        {
            var row = unit.Row(i).ToArray();
            Assert.Equal(0, row.Average(), 10);
            Assert.Equal(1, row.Select(v => v * v).Average(), 4);
        }

        Assert.Equal(x.Shape, output.Shape);
    }

    [Fact]
    public void Dropout_backward_matches_numerical_gradients_with_a_fixed_mask()
    {
        var x = TestData.Randn(_rng, 10, 8);
        var dout = TestData.Randn(_rng, 10, 8);
        double[] F() => Dropout.Forward(x, 0.4, train: true, new Rng(11)).Out.Data;

        var (_, mask) = Dropout.Forward(x, 0.4, train: true, new Rng(11));
        var dx = Dropout.Backward(dout, mask);
        TestData.AssertGradient(dx.Data, NumericalArray(F, x.Data, dout.Data), 1e-7, "dx.Data");
    }

    [Fact]
    public void Dropout_is_the_identity_at_test_time_and_keeps_the_mean_at_train_time()
    {
        var x = new Matrix<double>(500, 400);
        x.Span.Fill(2.0);
        var (test, testMask) = Dropout.Forward(x, 0.7, train: false, new Rng(1));
        Assert.Null(testMask);
        Assert.Equal(x.Data, test.Data);

        var (train, mask) = Dropout.Forward(x, 0.7, train: true, new Rng(1));
        Assert.NotNull(mask);
        Assert.InRange(train.Data.Average(), 1.97, 2.03);
        Assert.InRange(train.Data.Count(v => v == 0) / (double)train.Data.Length, 0.69, 0.71);
        Assert.Throws<ArgumentOutOfRangeException>(() => Dropout.Forward(x, 1.0, train: true, new Rng(1)));
    }

    [Fact]
    public void Softmax_loss_matches_numerical_gradients_and_is_log_c_for_zero_scores()
    {
        var scores = TestData.Randn(_rng, 8, 10);
        var y = TestData.Labels(_rng, 8, 10);
        var (loss, dscores) = Loss.Softmax(scores, y);
        var numerical = Numerical(() => Loss.Softmax(scores, y).Loss, scores.Data);
        TestData.AssertGradient(dscores.Data, numerical, 1e-7, "dscores.Data");
        Assert.InRange(loss, 0.5, 5);

        var zero = new Matrix<double>(8, 10);
        Assert.Equal(Math.Log(10), Loss.Softmax(zero, y).Loss, 12);
    }

    [Fact]
    public void Softmax_loss_is_stable_for_huge_scores()
    {
        var scores = Matrix<double>.FromRows([[1000, 0, -1000], [5000, 5001, 0]]);
        var (loss, dscores) = Loss.Softmax(scores, [0, 0]);
        Assert.Equal((0 + (1 + Math.Log(1 + Math.Exp(-1)))) / 2, loss, 9);
        Assert.All(dscores.Data, v => Assert.True(double.IsFinite(v)));

        var f = new Matrix<float>(1, 3);
        f.Data[0] = 1e30f;
        Assert.True(double.IsFinite(Loss.Softmax(f, [0]).Loss));
    }

    [Fact]
    public void Softmax_gradients_hold_no_subnormal_numbers_and_drop_only_negligible_probabilities()
    {
        // Score gaps of 80 to 110 below the maximum: exp of them spans the normal numbers, the subnormals and zero.
        var scores = new Matrix<float>(40, 10);
        var rng = new Rng(4);
        for (var i = 0; i < scores.Rows; i++)
        {
            for (var j = 0; j < 10; j++)
            {
                scores[i, j] = j == i % 10 ? 50f : 50f - (80f + (30f * (float)rng.NextDouble()));
            }
        }

        var y = TestData.Labels(rng, 40, 10);
        var dscores = new Matrix<float>(40, 10);
        var loss = Loss.SoftmaxInto(scores, y, dscores);
        var expectedLoss = 0.0;
        for (var i = 0; i < scores.Rows; i++)
        {
            var row = Enumerable.Range(0, 10).Select(j => (double)scores[i, j]).ToArray();
            var sum = row.Sum(s => Math.Exp(s - row.Max()));
            expectedLoss += Math.Log(sum) - (row[y[i]] - row.Max());
            for (var j = 0; j < 10; j++)
            {
                var p = Math.Exp(row[j] - row.Max()) / sum;
                var expected = (p - (j == y[i] ? 1 : 0)) / 40;
                var d = dscores[i, j];
                Assert.False(float.IsSubnormal(d), $"row {i} class {j}: {d} is subnormal");
                if (Math.Exp(row[j] - row.Max()) < Loss.SoftmaxKeep<float>(40, 10))
                {
                    Assert.Equal(j == y[i] ? -1f / 40 : 0f, d); // dropped: below 5e-36, far under float rounding of any sum
                }
                else
                {
                    Assert.True(Math.Abs(d - expected) <= 1e-6 * Math.Abs(expected), $"row {i} class {j}: {d} vs {expected}");
                }
            }
        }

        Assert.True(Math.Abs(loss - (expectedLoss / 40)) <= 1e-6 * (expectedLoss / 40), $"loss {loss} vs {expectedLoss / 40}");
        var minNormal = BitConverter.Int32BitsToSingle(0x0080_0000); // 2^-126
        Assert.Equal(400 * minNormal, Loss.SoftmaxKeep<float>(40, 10));
        Assert.Equal(0, (double)Loss.SoftmaxKeep<Half>(40, 10)); // too coarse a type to drop anything
    }

    [Fact]
    public void Svm_loss_matches_numerical_gradients_and_is_c_minus_1_for_zero_scores()
    {
        var scores = TestData.Randn(_rng, 8, 10);
        var y = TestData.Labels(_rng, 8, 10);
        var (_, dscores) = Loss.Svm(scores, y);
        var numerical = Numerical(() => Loss.Svm(scores, y).Loss, scores.Data);
        TestData.AssertGradient(dscores.Data, numerical, 1e-7, "dscores.Data");
        Assert.Equal(9, Loss.Svm(new Matrix<double>(8, 10), y).Loss, 12);

        var hand = Matrix<double>.FromRows([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]);
        // cs231n's worked example: losses 2.9, 0 and 12.9 (labels cat, car, frog).
        Assert.Equal((2.9 + 0 + 12.9) / 3, Loss.Svm(hand, [0, 1, 2]).Loss, 9);
    }

    [Fact]
    public void Losses_reject_labels_outside_the_classes()
    {
        var scores = new Matrix<double>(2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => Loss.Softmax(scores, [0, 3]));
        Assert.Throws<ArgumentException>(() => Loss.Svm(scores, [0]));
    }
}
