using Sweeper.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Engine.Tests;

/// <summary>The engine's side of a trial's configuration: Core resolves the sweep's parameters, the engine maps them to its own types.</summary>
public class TrialConfigurationTests
{
    private static (ModelSpec Model, SolverOptions Solver) Configure(Dictionary<string, object> parameters, ulong seed)
    {
        var trial = Hyperparameters.Resolve(parameters, seed);
        return (ModelSpec.From(trial), SolverOptions.From(trial));
    }

    [Fact]
    public void Trial_parameters_become_the_model_and_solver_configuration()
    {
        var (model, solver) = Configure(new Dictionary<string, object>
        {
            ["model"] = "fc", ["hidden_size"] = 64L, ["num_layers"] = 3L, ["dropout"] = 0.25, ["normalization"] = "layer",
            ["update_rule"] = "adam", ["learning_rate"] = 2e-3, ["reg"] = 0L, ["epochs"] = 7L, ["beta2"] = 0.99, ["init"] = "xavier",
        }, 9);
        Assert.Equal([64, 64, 64], model.HiddenSizes);
        Assert.Equal((ModelKind.FullyConnected, 0.25, Normalization.Layer, WeightInit.Xavier, 0.0), (model.Kind, model.Dropout, model.Normalization, model.Init, model.Reg));
        Assert.Equal(("adam", 2e-3, 7, 0.99, 9UL), (solver.UpdateRule, solver.LearningRate, solver.Epochs, solver.Update.Beta2, solver.Seed));
    }

    [Fact]
    public void Settings_a_trial_does_not_name_take_the_engine_defaults()
    {
        var (model, solver) = Configure(new Dictionary<string, object> { ["model"] = "two_layer" }, 4);
        var (defaultModel, defaultSolver) = (new ModelSpec(), new SolverOptions());
        Assert.Equal((ModelKind.TwoLayer, 100), (model.Kind, model.HiddenSizes.Single()));
        Assert.Equal((defaultModel.Dropout, defaultModel.Normalization, defaultModel.Reg, defaultModel.Init, defaultModel.WeightScale),
            (model.Dropout, model.Normalization, model.Reg, model.Init, model.WeightScale));
        Assert.Equal(defaultSolver with { Seed = 4, Update = solver.Update }, solver);
        Assert.Equal(new UpdateSettings(), solver.Update);
        Assert.Equal(ModelKind.Svm, Configure(new Dictionary<string, object> { ["model"] = "svm" }, 1).Model.Kind);
        Assert.Equal(ModelKind.Softmax, Configure(new Dictionary<string, object> { ["model"] = "softmax" }, 1).Model.Kind);
    }

    [Fact]
    public void The_sweep_catalogue_names_exactly_the_engines_update_rules()
    {
        Assert.Equal(UpdateRule.Names, Hyperparameters.UpdateRules);
        Assert.Equal(UpdateRule.Names, Hyperparameters.Known["update_rule"].Choices);
    }

    [Theory]
    [InlineData("fc", 2845886357185698903UL)]
    [InlineData("softmax", 10501145881689922548UL)]
    [InlineData("two_layer", 7019945963266556685UL)]
    public void A_trial_starts_from_the_same_weights_as_it_always_has(string model, ulong expected)
    {
        // Pinned before the generator moved into Core and the configuration out of it: same parameters and seed, same bits.
        var parameters = model switch
        {
            "fc" => new Dictionary<string, object> { ["model"] = "fc", ["hidden_size"] = 20L, ["num_layers"] = 2L, ["init"] = "he", ["normalization"] = "batch", ["dropout"] = 0.3 },
            "softmax" => new Dictionary<string, object> { ["model"] = "softmax", ["weight_scale"] = 1e-3 },
            _ => new Dictionary<string, object> { ["model"] = "two_layer", ["hidden_size"] = 30L },
        };
        var net = new FullyConnectedNet<float>(Configure(parameters, 77).Model, 77);
        var hash = 14695981039346656037UL;
        foreach (var p in net.Parameters)
        {
            foreach (var v in p.Value)
            {
                hash = (hash ^ (uint)BitConverter.SingleToInt32Bits(v)) * 1099511628211UL;
            }
        }

        Assert.Equal(expected, hash);
    }

    [Fact]
    public void The_generator_draws_the_same_numbers_as_it_always_has()
    {
        // Pinned when Derive began to mix seed and stream (the draws of Rng itself are unchanged since the start).
        var rng = Rng.Derive(2024, 3);
        var mask = new float[7];
        rng.FillDropoutMask<float>(mask, 0.4);
        var order = Enumerable.Range(0, 10).ToArray();
        rng.Shuffle(order);
        Assert.Equal([1.6666666f, 1.6666666f, 1.6666666f, 1.6666666f, 1.6666666f, 0, 0], mask);
        Assert.Equal([5, 1, 8, 9, 0, 3, 2, 6, 7, 4], order);
        Assert.Equal(12223877546717517257UL, rng.NextULong());
        Assert.Equal(0.9749047987130511, rng.NextDouble());
        Assert.Equal(311, rng.NextInt(1000));
        Assert.Equal(0.7309092413854336, rng.NextGaussian());
    }
}
