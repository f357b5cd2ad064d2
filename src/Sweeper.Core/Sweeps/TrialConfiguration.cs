namespace Sweeper.Core.Sweeps;

/// <summary>
/// One trial's configuration, resolved from its parameters by <see cref="Hyperparameters.Resolve"/>: what the training
/// engine needs to build the trial's model and train it. Names and values are the sweep file's (model families, update
/// rules, normalizations and initialisations as strings); no engine type appears here, so Core does not depend on the
/// engine. A null setting is one the trial does not name: the engine's default applies (its ModelSpec and SolverOptions
/// document each default). The hidden widths are always resolved here, since they follow the sweep file's rules
/// (hidden_sizes, or hidden_size times num_layers, <see cref="Hyperparameters.DefaultHiddenSize"/> wide by default).
/// </summary>
public sealed record TrialConfiguration
{
    /// <summary>softmax, svm, two_layer or fc (<see cref="Hyperparameters.ModelFamilies"/>).</summary>
    public required string Model { get; init; }

    /// <summary>Widths of the hidden layers: none for softmax and svm, exactly one for two_layer.</summary>
    public required IReadOnlyList<int> HiddenSizes { get; init; }

    /// <summary>Probability of dropping a hidden unit, in [0, 1).</summary>
    public double? Dropout { get; init; }

    /// <summary>none, batch or layer.</summary>
    public string? Normalization { get; init; }

    /// <summary>Data augmentation of the training images: none or flip.</summary>
    public string? Augment { get; init; }

    /// <summary>L2 strength, >= 0.</summary>
    public double? Reg { get; init; }

    /// <summary>gaussian, he or xavier.</summary>
    public string? Init { get; init; }

    /// <summary>Standard deviation of the initial weights (gaussian initialisation), > 0.</summary>
    public double? WeightScale { get; init; }

    /// <summary>sgd, sgd_momentum, rmsprop or adam (<see cref="Hyperparameters.UpdateRules"/>).</summary>
    public string? UpdateRule { get; init; }

    public double? LearningRate { get; init; }

    /// <summary>Learning rate multiplier after each epoch, in (0, 1].</summary>
    public double? LrDecay { get; init; }

    public int? BatchSize { get; init; }

    /// <summary>Passes over the training split; never set together with <see cref="Iterations"/>.</summary>
    public int? Epochs { get; init; }

    /// <summary>Minibatch steps instead of epochs; never set together with <see cref="Epochs"/>.</summary>
    public long? Iterations { get; init; }

    /// <summary>sgd_momentum's momentum.</summary>
    public double? Momentum { get; init; }

    /// <summary>rmsprop's decay rate.</summary>
    public double? DecayRate { get; init; }

    /// <summary>adam's beta1.</summary>
    public double? Beta1 { get; init; }

    /// <summary>adam's beta2.</summary>
    public double? Beta2 { get; init; }

    /// <summary>The trial's seed: its weights, shuffles, subsamples and dropout masks all derive from it.</summary>
    public ulong Seed { get; init; }
}
