using Sweeper.Engine.Training;

namespace Sweeper.Engine.Tests;

/// <summary>Each update rule against steps computed by hand from its defining formula.</summary>
public class UpdateRuleTests
{
    private static double[] Run(string rule, double[] w, double[][] grads, double lr, UpdateSettings? settings = null)
    {
        var u = UpdateRule.Create(rule, settings);
        var state = u.CreateState<double>(w.Length);
        foreach (var g in grads)
        {
            u.Update<double>(w, g, state, lr);
        }

        return w;
    }

    [Fact]
    public void Sgd_steps_against_the_gradient()
    {
        Assert.Equal([0.95, -1.96], Run("sgd", [1, -2], [[0.5, -0.4]], 0.1));
    }

    [Fact]
    public void Sgd_momentum_accumulates_velocity()
    {
        // v1 = -0.1 * 1 = -0.1, w = 0.9; v2 = 0.9 * -0.1 - 0.1 * 2 = -0.29, w = 0.61.
        var w = Run("sgd_momentum", [1.0], [[1.0], [2.0]], 0.1);
        Assert.Equal(0.61, w[0], 12);
    }

    [Fact]
    public void Rmsprop_divides_by_the_root_of_the_squared_gradient_average()
    {
        // cache = 0.01 * 4 = 0.04, w = 1 - 0.1 * 2 / (0.2 + 1e-8)
        var w = Run("rmsprop", [1.0], [[2.0]], 0.1);
        Assert.Equal(1 - (0.1 * 2 / (0.2 + 1e-8)), w[0], 12);
    }

    [Fact]
    public void Adam_applies_bias_corrected_moments_over_several_steps()
    {
        double w = 0.5, m = 0, v = 0;
        double[] grads = [0.3, -0.2, 0.7, 0.1];
        for (var t = 1; t <= grads.Length; t++)
        {
            var g = grads[t - 1];
            m = (0.9 * m) + (0.1 * g);
            v = (0.999 * v) + (0.001 * g * g);
            var mhat = m / (1 - Math.Pow(0.9, t));
            var vhat = v / (1 - Math.Pow(0.999, t));
            w -= 0.01 * mhat / (Math.Sqrt(vhat) + 1e-8);
        }

        // 37 elements: the vectorised body and the scalar tail both run.
        var weights = Enumerable.Repeat(0.5, 37).ToArray();
        Run("adam", weights, grads.Select(g => Enumerable.Repeat(g, 37).ToArray()).ToArray(), 0.01);
        Assert.All(weights, value => Assert.Equal(w, value, 12));

        // The first step of Adam moves every weight by about lr, whatever the gradient's scale.
        var first = Run("adam", [0.0, 0.0], [[1e-2, -50]], 0.01);
        Assert.Equal(-0.01, first[0], 6);
        Assert.Equal(0.01, first[1], 6);
    }

    [Fact]
    public void Unknown_update_rules_are_named_in_the_error()
    {
        var ex = Assert.Throws<ArgumentException>(() => UpdateRule.Create("adagrad"));
        Assert.Contains("adagrad", ex.Message);
        Assert.Contains("sgd_momentum", ex.Message);
    }
}
