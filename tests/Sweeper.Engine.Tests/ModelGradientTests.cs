using Sweeper.Core;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using static Sweeper.Engine.Training.GradientCheck;

namespace Sweeper.Engine.Tests;

/// <summary>Every model's analytic gradients against central differences in float64, for every parameter.</summary>
public class ModelGradientTests
{
    public static TheoryData<string, ModelSpec> Specs()
    {
        var small = new ModelSpec { InputDim = 7, NumClasses = 4, WeightScale = 0.5 };
        var data = new TheoryData<string, ModelSpec>();
        foreach (var reg in new[] { 0.0, 0.7 })
        {
            data.Add($"softmax reg={reg}", small with { Kind = ModelKind.Softmax, HiddenSizes = [], Reg = reg });
            data.Add($"svm reg={reg}", small with { Kind = ModelKind.Svm, HiddenSizes = [], Reg = reg });
            data.Add($"two_layer reg={reg}", small with { Kind = ModelKind.TwoLayer, HiddenSizes = [6], Reg = reg });
            data.Add($"fc reg={reg}", small with { HiddenSizes = [6, 5], Reg = reg });
            data.Add($"fc batchnorm reg={reg}", small with { HiddenSizes = [6, 5], Normalization = Normalization.Batch, Reg = reg });
            data.Add($"fc layernorm reg={reg}", small with { HiddenSizes = [6, 5], Normalization = Normalization.Layer, Reg = reg });
            data.Add($"fc dropout reg={reg}", small with { HiddenSizes = [6, 5], Dropout = 0.3, Reg = reg });
            data.Add($"fc batchnorm+dropout reg={reg}", small with { HiddenSizes = [6, 5, 4], Normalization = Normalization.Batch, Dropout = 0.25, Reg = reg });
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void Model_gradients_match_numerical_gradients(string name, ModelSpec spec)
    {
        var rng = new Rng(17);
        var x = TestData.Randn(rng, 5, spec.InputDim);
        var y = TestData.Labels(rng, 5, spec.NumClasses);
        var model = new FullyConnectedNet<double>(spec, seed: 3);

        // Biases start at exactly 0, which can put a relu exactly on its kink (a row whose inputs were all dropped);
        // small random biases, gammas and betas keep the check away from corners, as in cs231n.
        foreach (var p in model.Parameters.Where(p => !p.Regularized))
        {
            for (var i = 0; i < p.Value.Length; i++)
            {
                p.Value[i] += 0.1 * rng.NextGaussian();
            }
        }

        var dropoutState = model.DropoutRng.GetState();
        double Loss()
        {
            // The same dropout masks on every evaluation, so the function is deterministic.
            model.DropoutRng = Rng.FromState(dropoutState);
            return model.Loss(x, y);
        }

        Loss();
        var analytic = model.Parameters.Select(p => (double[])p.Grad.Clone()).ToArray();
        for (var i = 0; i < model.Parameters.Count; i++)
        {
            var parameter = model.Parameters[i];
            var numerical = Numerical(Loss, parameter.Value);
            if (spec.Normalization == Normalization.Batch && System.Text.RegularExpressions.Regex.IsMatch(parameter.Name, "^b[0-9]+$") && parameter.Name != $"b{spec.HiddenSizes.Count + 1}")
            {
                // Batchnorm subtracts the batch mean, so the bias before it has an exactly zero gradient.
                Assert.All(analytic[i], g => Assert.True(Math.Abs(g) < 1e-12, $"{name}: {parameter.Name} gradient {g}"));
                Assert.All(numerical, g => Assert.True(Math.Abs(g) < 1e-8, $"{name}: {parameter.Name} numerical gradient {g}"));
                continue;
            }

            var error = RelativeError(analytic[i], numerical);
            // Of the order 1e-7: the three-block batchnorm net divides by small batch deviations, which amplifies rounding.
            var bound = spec.Normalization == Normalization.Batch ? 5e-7 : 1e-7;
            Assert.True(error < bound, $"{name}: {parameter.Name} relative error {error:e2}");
        }
    }

    [Fact]
    public void Regularization_adds_half_reg_times_squared_weights_but_not_biases()
    {
        var spec = new ModelSpec { Kind = ModelKind.TwoLayer, InputDim = 4, NumClasses = 3, HiddenSizes = [5] };
        var rng = new Rng(2);
        var x = TestData.Randn(rng, 6, 4);
        var y = TestData.Labels(rng, 6, 3);
        var plain = new FullyConnectedNet<double>(spec, 1);
        var regularized = new FullyConnectedNet<double>(spec with { Reg = 0.3 }, 1);
        foreach (var p in plain.Parameters.Concat(regularized.Parameters))
        {
            rng.FillGaussian<double>(p.Value, 1);
        }

        for (var i = 0; i < plain.Parameters.Count; i++)
        {
            plain.Parameters[i].Value.CopyTo(regularized.Parameters[i].Value, 0);
        }

        var penalty = 0.5 * 0.3 * plain.Parameters.Where(p => p.Name.StartsWith('W')).Sum(p => p.Value.Sum(v => v * v));
        Assert.Equal(plain.Loss(x, y) + penalty, regularized.Loss(x, y), 10);
        var b1 = plain.Parameters.Single(p => p.Name == "b1");
        var rb1 = regularized.Parameters.Single(p => p.Name == "b1");
        Assert.Equal(b1.Grad, rb1.Grad);
    }

    [Fact]
    public void Scores_are_the_affine_map_for_the_linear_classifier()
    {
        var spec = new ModelSpec { Kind = ModelKind.Softmax, InputDim = 3, NumClasses = 2, HiddenSizes = [] };
        var model = new FullyConnectedNet<double>(spec, 1);
        double[] w = [1, 3, 5, 2, 4, 6]; // out x in
        w.CopyTo(model.Parameters[0].Value, 0);
        double[] b = [0.5, -0.5];
        b.CopyTo(model.Parameters[1].Value, 0);
        var scores = model.Scores(Matrix<double>.FromRows([[1, 0, 2]]));
        Assert.Equal([1 + 10 + 0.5, 2 + 12 - 0.5], scores.Data);
    }

    [Fact]
    public void A_fused_sgd_step_matches_loss_then_update_for_a_batchnorm_net()
    {
        var spec = new ModelSpec { InputDim = 6, NumClasses = 3, HiddenSizes = [5, 4], Normalization = Normalization.Batch, Reg = 0.1, WeightScale = 0.3 };
        var rng = new Rng(8);
        var x = TestData.Randn(rng, 7, 6);
        var y = TestData.Labels(rng, 7, 3);
        var a = new FullyConnectedNet<double>(spec, 4);
        var b = new FullyConnectedNet<double>(spec, 4);
        var lossA = a.Loss(x, y);
        var sgd = Training.UpdateRule.Create("sgd");
        foreach (var p in a.Parameters)
        {
            sgd.Update<double>(p.Value, p.Grad, sgd.CreateState<double>(p.Value.Length), 0.05);
        }

        var lossB = b.SgdStep(x, y, 0.05);
        Assert.Equal(lossA, lossB, 12);
        for (var i = 0; i < a.Parameters.Count; i++)
        {
            for (var j = 0; j < a.Parameters[i].Value.Length; j++)
            {
                Assert.Equal(a.Parameters[i].Value[j], b.Parameters[i].Value[j], 12);
            }
        }
    }

    [Theory]
    [InlineData(ModelKind.Softmax, 100)] // blocks of 40, 40 and 20 rows
    [InlineData(ModelKind.Svm, 100)]
    [InlineData(ModelKind.Softmax, 13)] // one short block
    public void The_blocked_linear_step_from_the_split_matches_gathering_the_batch(ModelKind kind, int batch)
    {
        var spec = new ModelSpec { Kind = kind, InputDim = 9, NumClasses = 4, HiddenSizes = [], Reg = 0.3, WeightScale = 0.2 };
        var rng = new Rng(12);
        var data = TestData.Randn(rng, 150, 9);
        var labels = TestData.Labels(rng, 150, 4);
        var split = new Data.InMemorySplit<double>(data, labels);
        var indices = Enumerable.Range(0, batch).Select(i => (i * 37) % 150).ToArray();
        var y = indices.Select(i => labels[i]).ToArray();
        var x = new Matrix<double>(batch, 9);
        split.Gather(indices, x);
        var gathered = new FullyConnectedNet<double>(spec, 4);
        var blocked = new FullyConnectedNet<double>(spec, 4);
        for (var step = 0; step < 3; step++)
        {
            var expected = gathered.SgdStep(x, y, 0.05);
            Assert.Equal(expected, blocked.SgdStep(split, indices, y, 0.05), 12);
        }

        for (var i = 0; i < gathered.Parameters.Count; i++)
        {
            Assert.Equal(gathered.Parameters[i].Value.Length, blocked.Parameters[i].Value.Length);
            for (var j = 0; j < gathered.Parameters[i].Value.Length; j++)
            {
                Assert.Equal(gathered.Parameters[i].Value[j], blocked.Parameters[i].Value[j], 12);
            }
        }

        // A non-finite loss changes nothing.
        var before = blocked.Parameters.Select(p => (double[])p.Value.Clone()).ToList();
        data[0, 0] = double.PositiveInfinity;
        var bad = blocked.SgdStep(split, [0, 1, 2], [labels[0], labels[1], labels[2]], 0.05);
        Assert.False(double.IsFinite(bad));
        Assert.Equal(before, blocked.Parameters.Select(p => p.Value));
        Assert.Throws<InvalidOperationException>(() => new FullyConnectedNet<double>(spec with { Kind = ModelKind.TwoLayer, HiddenSizes = [3] }, 1).SgdStep(split, indices, y, 0.1));
    }

    [Fact]
    public void The_blocked_float_step_with_the_narrow_kernel_matches_gathering_the_batch()
    {
        // Ten classes in float32: the blocked step scores with NarrowGemm, the gathered one with sgemm.
        var spec = new ModelSpec { Kind = ModelKind.Softmax, InputDim = 77, NumClasses = 10, HiddenSizes = [], Reg = 0.1, WeightScale = 0.05 };
        var rng = new Rng(3);
        var data = new Matrix<float>(300, 77);
        rng.FillGaussian<float>(data.Data, 1);
        var labels = TestData.Labels(rng, 300, 10);
        var split = new Data.InMemorySplit<float>(data, labels);
        var gathered = new FullyConnectedNet<float>(spec, 9);
        var blocked = new FullyConnectedNet<float>(spec, 9);
        var x = new Matrix<float>(130, 77);
        for (var step = 0; step < 5; step++)
        {
            var indices = Enumerable.Range(0, 130).Select(i => ((i * 7) + (step * 31)) % 300).ToArray();
            var y = indices.Select(i => labels[i]).ToArray();
            split.Gather(indices, x);
            var expected = gathered.SgdStep(x, y, 0.01);
            Assert.Equal(expected, blocked.SgdStep(split, indices, y, 0.01), 4);
        }

        for (var i = 0; i < gathered.Parameters.Count; i++)
        {
            for (var j = 0; j < gathered.Parameters[i].Value.Length; j++)
            {
                Assert.Equal(gathered.Parameters[i].Value[j], blocked.Parameters[i].Value[j], 5);
            }
        }
    }

    [Fact]
    public void Initialisation_follows_weight_scale_he_and_xavier()
    {
        double Std(double[] v) => Math.Sqrt(v.Select(a => a * a).Average());
        var spec = new ModelSpec { InputDim = 400, NumClasses = 10, HiddenSizes = [300] };
        Assert.Equal(0.05, Std(new FullyConnectedNet<double>(spec with { WeightScale = 0.05 }, 1).Parameters[0].Value), 2);
        Assert.Equal(Math.Sqrt(2.0 / 400), Std(new FullyConnectedNet<double>(spec with { Init = WeightInit.He }, 1).Parameters[0].Value), 3);
        Assert.Equal(Math.Sqrt(2.0 / 700), Std(new FullyConnectedNet<double>(spec with { Init = WeightInit.Xavier }, 1).Parameters[0].Value), 3);
        Assert.All(new FullyConnectedNet<double>(spec, 1).Parameters[1].Value, v => Assert.Equal(0, v));
    }

    [Theory]
    [InlineData(ModelKind.Softmax, new[] { 10 })]
    [InlineData(ModelKind.TwoLayer, new int[0])]
    [InlineData(ModelKind.TwoLayer, new[] { 10, 10 })]
    public void Invalid_specs_are_rejected_with_the_reason(ModelKind kind, int[] hidden)
    {
        var ex = Assert.Throws<ArgumentException>(() => new FullyConnectedNet<float>(new ModelSpec { Kind = kind, HiddenSizes = hidden }, 1));
        Assert.Contains(kind == ModelKind.Softmax ? "linear" : "exactly one hidden size", ex.Message);
        Assert.Throws<ArgumentException>(() => new ModelSpec { Dropout = 1 }.Validate());
        Assert.Throws<ArgumentException>(() => new ModelSpec { Reg = -1 }.Validate());
    }
}
