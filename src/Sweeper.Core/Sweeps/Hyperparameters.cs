using System.Globalization;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Core.Sweeps;

/// <summary>The type of a hyperparameter's values.</summary>
public enum ValueType
{
    Float,
    Int,
    Choice,
    IntList,
}

/// <summary>One hyperparameter Sweeper knows: its type and the values it allows.</summary>
public sealed record Hyperparameter(string Name, ValueType Type, string Help, Func<double, bool>? InRange = null, string? RangeText = null, IReadOnlyList<string>? Choices = null)
{
    /// <summary>Returns null when <paramref name="value"/> is allowed, else why not.</summary>
    public string? Check(object value)
    {
        switch (Type)
        {
            case ValueType.Choice:
                return value is string s && Choices!.Contains(s) ? null : $"must be one of {string.Join(", ", Choices!)} (got {ParamValue.Format(value)})";
            case ValueType.IntList:
                return value is string list && Hyperparameters.TryParseWidths(list, out _) ? null : $"must be a list of positive whole numbers such as [100, 100] (got {ParamValue.Format(value)})";
            case ValueType.Int when value is not long:
                return $"must be a whole number (got {ParamValue.Format(value)})";
            case ValueType.Float when value is not (double or long):
                return $"must be a number (got {ParamValue.Format(value)})";
        }

        var d = ParamValue.AsDouble(value);
        return InRange is null || InRange(d) ? null : $"must be {RangeText} (got {ParamValue.Format(value)})";
    }
}

/// <summary>
/// The catalogue of hyperparameters a sweep file may name, and how a trial's assignment becomes a model and a
/// Solver configuration. Defaults live in <see cref="ModelSpec"/> and <see cref="SolverOptions"/>; an unknown name
/// is an error, never ignored.
/// </summary>
public static class Hyperparameters
{
    public static readonly IReadOnlyDictionary<string, Hyperparameter> Known = new Hyperparameter[]
    {
        new("model", ValueType.Choice, "model family", Choices: ["softmax", "svm", "two_layer", "fc"]),
        new("learning_rate", ValueType.Float, "initial learning rate", d => d > 0, "> 0"),
        new("reg", ValueType.Float, "L2 strength (0.5 * reg * sum of squared weights)", d => d >= 0, ">= 0"),
        new("hidden_size", ValueType.Int, "width of each hidden layer", d => d >= 1, ">= 1"),
        new("hidden_sizes", ValueType.IntList, "widths of the hidden layers (fc)"),
        new("num_layers", ValueType.Int, "hidden layers of width hidden_size (fc)", d => d >= 1, ">= 1"),
        new("dropout", ValueType.Float, "probability of dropping a hidden unit", d => d >= 0 && d < 1, "in [0, 1)"),
        new("normalization", ValueType.Choice, "normalization in each hidden block", Choices: ["none", "batch", "layer"]),
        new("update_rule", ValueType.Choice, "update rule", Choices: [.. UpdateRule.Names]),
        new("lr_decay", ValueType.Float, "learning rate multiplier after each epoch", d => d > 0 && d <= 1, "in (0, 1]"),
        new("batch_size", ValueType.Int, "minibatch size", d => d >= 1, ">= 1"),
        new("epochs", ValueType.Int, "passes over the training split", d => d >= 1, ">= 1"),
        new("iterations", ValueType.Int, "minibatch steps instead of epochs", d => d >= 1, ">= 1"),
        new("weight_scale", ValueType.Float, "std of the initial weights", d => d > 0, "> 0"),
        new("init", ValueType.Choice, "weight initialisation", Choices: ["gaussian", "he", "xavier"]),
        new("momentum", ValueType.Float, "sgd_momentum's momentum", d => d >= 0 && d < 1, "in [0, 1)"),
        new("decay_rate", ValueType.Float, "rmsprop's decay rate", d => d >= 0 && d < 1, "in [0, 1)"),
        new("beta1", ValueType.Float, "adam's beta1", d => d >= 0 && d < 1, "in [0, 1)"),
        new("beta2", ValueType.Float, "adam's beta2", d => d >= 0 && d < 1, "in [0, 1)"),
    }.ToDictionary(h => h.Name);

    /// <summary>Parameters that only make sense for a net with hidden layers.</summary>
    public static readonly IReadOnlySet<string> HiddenOnly = new HashSet<string> { "hidden_size", "hidden_sizes", "num_layers", "dropout", "normalization" };

    public static bool TryParseWidths(string text, out int[] widths)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        widths = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out widths[i]) || widths[i] <= 0)
            {
                return false;
            }
        }

        return parts.Length > 0;
    }

    /// <summary>
    /// Builds the model and Solver configuration of one trial. Throws <see cref="ArgumentException"/> naming the
    /// parameter when the combination is impossible (e.g. hidden_size for the linear classifier).
    /// </summary>
    public static (ModelSpec Model, SolverOptions Solver) ToConfiguration(IReadOnlyDictionary<string, object> p, ulong seed)
    {
        string Str(string name, string fallback) => p.TryGetValue(name, out var v) ? (string)v : fallback;
        double? Num(string name) => p.TryGetValue(name, out var v) ? ParamValue.AsDouble(v) : null;

        var family = Str("model", "") switch
        {
            "softmax" => ModelKind.Softmax,
            "svm" => ModelKind.Svm,
            "two_layer" => ModelKind.TwoLayer,
            "fc" => ModelKind.FullyConnected,
            _ => throw new ArgumentException("model: every trial needs a model family (softmax, svm, two_layer or fc)."),
        };
        IReadOnlyList<int> widths;
        if (family is ModelKind.Softmax or ModelKind.Svm)
        {
            var stray = HiddenOnly.FirstOrDefault(p.ContainsKey);
            if (stray is not null)
            {
                throw new ArgumentException($"{stray}: the {Str("model", "")} model has no hidden layers; put {stray} in a conditions block for the nets.");
            }

            widths = [];
        }
        else if (p.TryGetValue("hidden_sizes", out var list))
        {
            if (family == ModelKind.TwoLayer || p.ContainsKey("hidden_size") || p.ContainsKey("num_layers"))
            {
                throw new ArgumentException("hidden_sizes: give hidden_sizes (fc) or hidden_size with num_layers, not both; two_layer takes hidden_size.");
            }

            TryParseWidths((string)list, out var w);
            widths = w;
        }
        else
        {
            var width = (int)(Num("hidden_size") ?? 100);
            var layers = (int)(Num("num_layers") ?? 1);
            if (family == ModelKind.TwoLayer && layers != 1)
            {
                throw new ArgumentException("num_layers: the two_layer model has exactly one hidden layer.");
            }

            widths = Enumerable.Repeat(width, layers).ToArray();
        }

        var model = new ModelSpec
        {
            Kind = family,
            HiddenSizes = widths,
            Dropout = Num("dropout") ?? 0,
            Normalization = Enum.Parse<Normalization>(Str("normalization", "none"), ignoreCase: true),
            Reg = Num("reg") ?? 0,
            Init = Enum.Parse<WeightInit>(Str("init", "gaussian"), ignoreCase: true),
            WeightScale = Num("weight_scale"),
        };
        var defaults = new UpdateSettings();
        var solver = new SolverOptions
        {
            UpdateRule = Str("update_rule", "sgd"),
            LearningRate = Num("learning_rate") ?? 1e-3,
            LrDecay = Num("lr_decay") ?? 1.0,
            BatchSize = (int)(Num("batch_size") ?? 200),
            Epochs = (int)(Num("epochs") ?? 10),
            Iterations = p.ContainsKey("iterations") ? (long)Num("iterations")!.Value : null,
            Seed = seed,
            Update = new UpdateSettings
            {
                Momentum = Num("momentum") ?? defaults.Momentum,
                DecayRate = Num("decay_rate") ?? defaults.DecayRate,
                Beta1 = Num("beta1") ?? defaults.Beta1,
                Beta2 = Num("beta2") ?? defaults.Beta2,
            },
        };
        if (p.ContainsKey("iterations") && p.ContainsKey("epochs"))
        {
            throw new ArgumentException("iterations: give epochs or iterations, not both.");
        }

        model.Validate();
        solver.Validate();
        return (model, solver);
    }
}
