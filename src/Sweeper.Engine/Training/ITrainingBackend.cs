using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Engine.Data;
using Sweeper.Engine.Models;

namespace Sweeper.Engine.Training;

/// <summary>
/// One training run of one model on one engine: the seam between the runtime (trials, slots, the CLI) and a training
/// engine (<c>native</c>: our own OpenBLAS + SIMD code; <c>torch</c>: TorchSharp/libtorch). Both engines build the same
/// models from the same seed (identical initial weights), shuffle with the same generator, follow the same update
/// rules and write the same checkpoint format. Not thread-safe: one backend per training slot, used on its thread.
/// </summary>
public interface ITrainingBackend : IDisposable
{
    /// <summary>The engine, device and kernel this backend trains with; its checkpoints record it.</summary>
    CheckpointOrigin Origin { get; }

    TrainingSetup Setup { get; }

    /// <summary>Epochs finished so far.</summary>
    int Epoch { get; }

    /// <summary>Minibatch steps taken so far.</summary>
    long Iteration { get; }

    long TotalIterations { get; }

    int IterationsPerEpoch { get; }

    /// <summary>
    /// Runs until the last iteration, a diverging loss (outcome <see cref="TrainingOutcome.Diverged"/>), or
    /// <paramref name="onEpoch"/> returning false. <paramref name="onIteration"/> sees every step's (iteration, loss).
    /// The best parameters by validation accuracy are restored at the end. A checkpoint taken inside
    /// <paramref name="onEpoch"/> resumes exactly there.
    /// </summary>
    TrainingResult Train(Func<EpochRecord, bool>? onEpoch = null, Action<long, double>? onIteration = null, CancellationToken cancellationToken = default);

    /// <summary>One training step on exactly one batch of training examples; returns its loss. No bookkeeping (benchmarks call it).</summary>
    double Step(ReadOnlySpan<int> indices, ReadOnlySpan<int> nextIndices = default);

    /// <summary>Fraction of <paramref name="split"/>'s examples (all, or the given indices) classified right, in test mode.</summary>
    double Accuracy(IDataSplit<float> split, int[]? indices = null);

    /// <summary>Puts the best-so-far parameters (by validation accuracy) into the model, e.g. after loading a final checkpoint.</summary>
    void RestoreBestParameters();

    /// <summary>Writes everything needed to resume, with <see cref="Origin"/>. Take it between epochs (inside the epoch callback).</summary>
    void SaveCheckpoint(Stream stream);

    /// <summary>
    /// Restores a checkpoint of either engine for a model of the same shape and update rule and returns where it was
    /// made (compare with <see cref="Origin"/> through <see cref="CheckpointOrigin.DifferenceFrom"/>). Throws
    /// <see cref="InvalidDataException"/> for a checkpoint that does not fit.
    /// </summary>
    CheckpointOrigin LoadCheckpoint(Stream stream);

    /// <summary>The current parameters by name (W1 is fan_out x fan_in, row-major), copied to the host.</summary>
    IReadOnlyDictionary<string, float[]> ExportParameters();
}

/// <summary>
/// What a backend is built from: the model, how to train it (with its seed), the training and validation splits, and
/// the device (<c>cpu</c> or <c>cuda</c>; the native engine runs on the CPU only).
/// </summary>
public sealed record TrainingSetup(ModelSpec Model, SolverOptions Options, IDataSplit<float> Train, IDataSplit<float> Validation, string Device = "cpu")
{
    /// <summary>
    /// The setup of a trial: its model and training settings from its resolved hyperparameters
    /// (<see cref="Hyperparameters.Resolve"/>), seeded with its seed. Throws <see cref="ArgumentException"/> for settings the engines refuse.
    /// </summary>
    public static TrainingSetup From(TrialConfiguration trial, IDataSplit<float> train, IDataSplit<float> validation, string device = "cpu") =>
        new(ModelSpec.From(trial), SolverOptions.From(trial), train, validation, device);

    /// <summary>
    /// The training examples as the steps see them: <see cref="Train"/>, or with <c>augment: flip</c> its images
    /// mirrored at random each epoch (<see cref="MirroredSplit{T}"/>, told the epoch by the training loop). A backend
    /// calls it once and trains on what it returns.
    /// </summary>
    public IDataSplit<float> TrainingExamples() => Options.Augment == "flip" ? MirroredSplit<float>.Of(Train) : Train;

    /// <summary>The first-layer weights' name in <see cref="ITrainingBackend.ExportParameters"/> and in checkpoints.</summary>
    public const string FirstLayer = "W1";
}

/// <summary>Makes backends of one engine. Registered with <see cref="TrainingEngines"/>.</summary>
public interface ITrainingBackendFactory
{
    /// <summary>The engine's name in sweep files and on the command line: <c>native</c> or <c>torch</c>.</summary>
    string Engine { get; }

    /// <summary>
    /// A backend for <paramref name="setup"/>, freshly initialised from its seed. Throws <see cref="ArgumentException"/>
    /// for a setup the engine cannot train (an unknown device) and <see cref="TrainingEngineUnavailableException"/> when
    /// the engine or device cannot run on this machine.
    /// </summary>
    ITrainingBackend Create(TrainingSetup setup);
}

/// <summary>An engine or device that cannot run here (libtorch not loadable, no CUDA runtime); the message says what to install.</summary>
public sealed class TrainingEngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
