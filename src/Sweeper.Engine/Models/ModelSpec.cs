using Sweeper.Core.Sweeps;

namespace Sweeper.Engine.Models;

/// <summary>The model families Sweeper trains.</summary>
public enum ModelKind
{
    /// <summary>Linear classifier with softmax loss: scores = x W + b.</summary>
    Softmax,

    /// <summary>Linear classifier with multiclass SVM (hinge) loss.</summary>
    Svm,

    /// <summary>affine - relu - affine - softmax (one hidden layer).</summary>
    TwoLayer,

    /// <summary>Any number of {affine - [batch/layer norm] - relu - [dropout]} blocks, then affine - softmax.</summary>
    FullyConnected,
}

/// <summary>Normalization inside each hidden block.</summary>
public enum Normalization
{
    None,
    Batch,
    Layer,
}

/// <summary>How weights are initialised. Biases start at 0, gamma at 1, beta at 0.</summary>
public enum WeightInit
{
    /// <summary>Normal with standard deviation <see cref="ModelSpec.WeightScale"/> (cs231n's weight_scale).</summary>
    Gaussian,

    /// <summary>Normal with standard deviation sqrt(2 / fan_in) (He et al. 2015), for relu nets.</summary>
    He,

    /// <summary>Normal with standard deviation sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio 2010).</summary>
    Xavier,
}

/// <summary>Everything needed to build a model. Immutable: it crosses process boundaries inside trial parameters.</summary>
public sealed record ModelSpec
{
    public ModelKind Kind { get; init; } = ModelKind.FullyConnected;

    /// <summary>Features per example. Default: 3072 (a 32x32 colour image).</summary>
    public int InputDim { get; init; } = 3072;

    /// <summary>Default: 10 (CIFAR-10).</summary>
    public int NumClasses { get; init; } = 10;

    /// <summary>Hidden layer widths. Must be empty for linear models and hold one width for the two-layer net.</summary>
    public IReadOnlyList<int> HiddenSizes { get; init; } = [100, 100];

    /// <summary>Probability of dropping a hidden unit at train time. Default: 0 (off).</summary>
    public double Dropout { get; init; }

    public Normalization Normalization { get; init; } = Normalization.None;

    /// <summary>L2 strength: penalty = 0.5 * reg * sum of squared weights (biases and gamma/beta are not penalised). Default: 0.</summary>
    public double Reg { get; init; }

    public WeightInit Init { get; init; } = WeightInit.Gaussian;

    /// <summary>Standard deviation of the initial weights for <see cref="WeightInit.Gaussian"/>. Default: depends on the kind (see <see cref="DefaultWeightScale"/>).</summary>
    public double? WeightScale { get; init; }

    public double EffectiveWeightScale => WeightScale ?? DefaultWeightScale(Kind);

    /// <summary>
    /// The model of a trial: its family and hidden widths, and every setting it names; the defaults above for the rest.
    /// Throws <see cref="ArgumentException"/> for a name this engine does not know or a spec <see cref="Validate"/> refuses.
    /// </summary>
    public static ModelSpec From(TrialConfiguration trial)
    {
        var defaults = new ModelSpec();
        var spec = new ModelSpec
        {
            Kind = trial.Model switch
            {
                "softmax" => ModelKind.Softmax,
                "svm" => ModelKind.Svm,
                "two_layer" => ModelKind.TwoLayer,
                "fc" => ModelKind.FullyConnected,
                _ => throw new ArgumentException($"model: unknown model family '{trial.Model}'."),
            },
            HiddenSizes = trial.HiddenSizes,
            Dropout = trial.Dropout ?? defaults.Dropout,
            Normalization = trial.Normalization is { } n ? Enum.Parse<Normalization>(n, ignoreCase: true) : defaults.Normalization,
            Reg = trial.Reg ?? defaults.Reg,
            Init = trial.Init is { } i ? Enum.Parse<WeightInit>(i, ignoreCase: true) : defaults.Init,
            WeightScale = trial.WeightScale ?? defaults.WeightScale,
        };
        spec.Validate();
        return spec;
    }

    /// <summary>cs231n's defaults: 1e-3 for linear classifiers, 1e-4 for the two-layer net, 1e-2 for the fully-connected net.</summary>
    public static double DefaultWeightScale(ModelKind kind) => kind switch
    {
        ModelKind.Softmax or ModelKind.Svm => 1e-3,
        ModelKind.TwoLayer => 1e-4,
        _ => 1e-2,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the offending setting.</summary>
    public void Validate()
    {
        if (InputDim <= 0 || NumClasses < 2)
        {
            throw new ArgumentException($"input dimension must be positive and there must be at least 2 classes (got {InputDim}, {NumClasses}).");
        }

        if (HiddenSizes.Any(h => h <= 0))
        {
            throw new ArgumentException($"hidden sizes must be positive (got {string.Join(",", HiddenSizes)}).");
        }

        if (Hyperparameters.TooManyWeights(InputDim, HiddenSizes, NumClasses) is { } tooMany)
        {
            throw new ArgumentException($"a net of hidden sizes {string.Join(",", HiddenSizes)} {tooMany}");
        }

        switch (Kind)
        {
            case ModelKind.Softmax or ModelKind.Svm when HiddenSizes.Count != 0:
                throw new ArgumentException($"the {Kind} classifier is linear and takes no hidden sizes.");
            case ModelKind.TwoLayer when HiddenSizes.Count != 1:
                throw new ArgumentException("the two-layer net takes exactly one hidden size.");
        }

        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ArgumentException($"dropout is the probability of dropping a unit and must lie in [0, 1) (got {Dropout}).");
        }

        if (!(Reg >= 0) || double.IsInfinity(Reg))
        {
            throw new ArgumentException($"reg must be a finite number >= 0 (got {Reg}).");
        }

        if (WeightScale is { } ws && !(ws > 0 && double.IsFinite(ws)))
        {
            throw new ArgumentException($"weight scale must be a finite number > 0 (got {ws}).");
        }
    }
}
