using System.Globalization;

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
    /// <summary>Returns null when <paramref name="value"/> is allowed, else why not. Numbers must be finite.</summary>
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
        if (!double.IsFinite(d))
        {
            return $"must be a finite number (got {ParamValue.Format(value)})";
        }

        return InRange is null || InRange(d) ? null : $"must be {RangeText} (got {ParamValue.Format(value)})";
    }
}

/// <summary>
/// The catalogue of hyperparameters a sweep file may name, and how a trial's assignment resolves into a
/// <see cref="TrialConfiguration"/>. The training engine maps that to its own types and holds the defaults of every
/// setting a trial leaves out (except the hidden widths of the nets, resolved here). An unknown name is an error, never
/// ignored.
/// </summary>
public static class Hyperparameters
{
    /// <summary>The model families, as a sweep file names them.</summary>
    public static readonly IReadOnlyList<string> ModelFamilies = ["softmax", "svm", "two_layer", "fc"];

    /// <summary>
    /// The update rules, as a sweep file names them (the engine's rules by these names; a test of the engine checks
    /// that the two lists agree).
    /// </summary>
    public static readonly IReadOnlyList<string> UpdateRules = ["sgd", "sgd_momentum", "rmsprop", "adam"];

    /// <summary>The most hidden layers num_layers may ask for (a trial lists every layer's width).</summary>
    public const int MaxLayers = 1000;

    /// <summary>
    /// The most weights a model may have: 2^28 float32, 1 GiB (an update rule such as Adam keeps two more copies).
    /// Past it a trial would fail on its first allocation, or overflow a 32-bit count, long after the sweep was accepted.
    /// </summary>
    public const long MaxWeights = 1L << 28;

    /// <summary>Features of a CIFAR-10 image (3 x 32 x 32) and its classes: the dataset every built-in model trains on.</summary>
    public const int InputFeatures = 3072, Classes = 10;

    /// <summary>Weights (biases aside) of a net from <paramref name="inputs"/> features through <paramref name="widths"/> to <paramref name="classes"/> scores.</summary>
    public static long WeightCount(int inputs, IReadOnlyList<int> widths, int classes)
    {
        long count = 0, previous = inputs;
        foreach (var width in widths)
        {
            count += previous * width;
            previous = width;
        }

        return count + (previous * classes);
    }

    /// <summary>"would have N weights; at most M ... are taken." when such a net is past <see cref="MaxWeights"/>, else null.</summary>
    public static string? TooManyWeights(int inputs, IReadOnlyList<int> widths, int classes) =>
        WeightCount(inputs, widths, classes) is var weights && weights > MaxWeights
            ? $"would have {weights.ToString("N0", CultureInfo.InvariantCulture)} weights; at most {MaxWeights.ToString("N0", CultureInfo.InvariantCulture)} (1 GiB of float32) are taken."
            : null;

    /// <summary>Width of each hidden layer of two_layer and fc when the trial gives neither hidden_size nor hidden_sizes.</summary>
    public const int DefaultHiddenSize = 100;

    public static readonly IReadOnlyDictionary<string, Hyperparameter> Known = new Hyperparameter[]
    {
        new("model", ValueType.Choice, "model family", Choices: ModelFamilies),
        new("learning_rate", ValueType.Float, "initial learning rate", d => d > 0, "> 0"),
        new("reg", ValueType.Float, "L2 strength (0.5 * reg * sum of squared weights)", d => d >= 0, ">= 0"),
        new("hidden_size", ValueType.Int, "width of each hidden layer", d => d >= 1 && d <= int.MaxValue, "in [1, 2147483647]"),
        new("hidden_sizes", ValueType.IntList, "widths of the hidden layers (fc)"),
        new("num_layers", ValueType.Int, "hidden layers of width hidden_size (fc)", d => d >= 1 && d <= MaxLayers, $"in [1, {MaxLayers}]"),
        new("dropout", ValueType.Float, "probability of dropping a hidden unit", d => d >= 0 && d < 1, "in [0, 1)"),
        new("normalization", ValueType.Choice, "normalization in each hidden block", Choices: ["none", "batch", "layer"]),
        new("augment", ValueType.Choice, "data augmentation of the training images (flip: mirrored left to right at random each epoch)", Choices: ["none", "flip"]),
        new("update_rule", ValueType.Choice, "update rule", Choices: UpdateRules),
        new("lr_decay", ValueType.Float, "learning rate multiplier after each epoch", d => d > 0 && d <= 1, "in (0, 1]"),
        new("batch_size", ValueType.Int, "minibatch size", d => d >= 1 && d <= int.MaxValue, "in [1, 2147483647]"),
        new("epochs", ValueType.Int, "passes over the training split", d => d >= 1 && d <= int.MaxValue, "in [1, 2147483647]"),
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
    /// Resolves one trial's parameters into its <see cref="TrialConfiguration"/>: the model family and hidden widths
    /// worked out, every other setting as given (null where the trial does not name it: the engine's default applies).
    /// Throws <see cref="ArgumentException"/> whose message starts with the offending parameter's name and a colon when
    /// the combination is impossible (e.g. hidden_size for the linear classifier, epochs with iterations, a width past
    /// the largest int). Values are assumed to have passed <see cref="Hyperparameter.Check"/>.
    /// </summary>
    public static TrialConfiguration Resolve(IReadOnlyDictionary<string, object> p, ulong seed)
    {
        string? Str(string name) => p.TryGetValue(name, out var v) ? (string)v : null;
        double? Num(string name) => p.TryGetValue(name, out var v) ? ParamValue.AsDouble(v) : null;
        int? Int(string name)
        {
            if (Num(name) is not { } d)
            {
                return null;
            }

            return d <= int.MaxValue ? (int)d : throw new ArgumentException($"{name}: must be at most {int.MaxValue} (got {ParamValue.Format(p[name])}).");
        }

        var family = Str("model");
        if (family is null || !ModelFamilies.Contains(family))
        {
            throw new ArgumentException($"model: every trial needs a model family ({string.Join(", ", ModelFamilies)}).");
        }

        IReadOnlyList<int> widths;
        if (family is "softmax" or "svm")
        {
            var stray = HiddenOnly.FirstOrDefault(p.ContainsKey);
            if (stray is not null)
            {
                throw new ArgumentException($"{stray}: the {family} model has no hidden layers; put {stray} in a conditions block for the nets.");
            }

            widths = [];
        }
        else if (p.TryGetValue("hidden_sizes", out var list))
        {
            if (family == "two_layer" || p.ContainsKey("hidden_size") || p.ContainsKey("num_layers"))
            {
                throw new ArgumentException("hidden_sizes: give hidden_sizes (fc) or hidden_size with num_layers, not both; two_layer takes hidden_size.");
            }

            TryParseWidths((string)list, out var w);
            widths = w;
        }
        else
        {
            var width = Int("hidden_size") ?? DefaultHiddenSize;
            var layers = Int("num_layers") ?? 1;
            if (family == "two_layer" && layers != 1)
            {
                throw new ArgumentException("num_layers: the two_layer model has exactly one hidden layer.");
            }

            widths = Enumerable.Repeat(width, layers).ToArray();
        }

        if (TooManyWeights(InputFeatures, widths, Classes) is { } tooMany)
        {
            var key = p.ContainsKey("hidden_sizes") ? "hidden_sizes" : "hidden_size";
            throw new ArgumentException($"{key}: a {family} net of widths {string.Join(",", widths.Distinct().Count() == 1 && widths.Count > 3 ? [$"{widths.Count} x {widths[0]}"] : widths.Select(w => w.ToString(CultureInfo.InvariantCulture)))} {tooMany}");
        }

        if (p.ContainsKey("iterations") && p.ContainsKey("epochs"))
        {
            throw new ArgumentException("iterations: give epochs or iterations, not both.");
        }

        return new TrialConfiguration
        {
            Model = family,
            HiddenSizes = widths,
            Dropout = Num("dropout"),
            Normalization = Str("normalization"),
            Augment = Str("augment"),
            Reg = Num("reg"),
            Init = Str("init"),
            WeightScale = Num("weight_scale"),
            UpdateRule = Str("update_rule"),
            LearningRate = Num("learning_rate"),
            LrDecay = Num("lr_decay"),
            BatchSize = Int("batch_size"),
            Epochs = Int("epochs"),
            Iterations = p.TryGetValue("iterations", out var iterations) ? (long)ParamValue.AsDouble(iterations) : null,
            Momentum = Num("momentum"),
            DecayRate = Num("decay_rate"),
            Beta1 = Num("beta1"),
            Beta2 = Num("beta2"),
            Seed = seed,
        };
    }
}
