using System.Collections.Concurrent;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Training;

namespace Sweeper.Runtime;

/// <summary>
/// Builds a trial's training backend (the engine behind <see cref="ITrainingBackend"/>) from its parameters, on
/// CIFAR-10 splits loaded once per process and shared by every trial that asks for the same splits. The engine
/// (<c>native</c> or <c>torch</c>) and device (<c>cpu</c> or <c>cuda</c>) are plain names: the defaults given here,
/// or those a caller passes for one trial (a sweep file's <c>engine:</c> and <c>device:</c>). This project does not
/// reference libtorch: the torch engine's assembly is found by name when a trial first asks for it.
/// </summary>
public sealed class TrialTrainer(string dataDirectory, string engine = TrainingEngines.DefaultEngine, string device = TrainingEngines.DefaultDevice) : IDisposable
{
    private readonly ConcurrentDictionary<DataSettings, Lazy<Cifar10Dataset<float>>> _data = new();

    public string DataDirectory { get; } = dataDirectory;

    /// <summary>The engine trials train with unless they name one. Default: native.</summary>
    public string Engine { get; } = engine;

    /// <summary>The device trials train on unless they name one. Default: cpu.</summary>
    public string Device { get; } = device;

    /// <summary>The splits <paramref name="settings"/> asks for, from <see cref="DataDirectory"/> (the settings' path is the caller's business).</summary>
    public Cifar10Dataset<float> Data(DataSettings settings) =>
        _data.GetOrAdd(settings with { Path = null }, key => new Lazy<Cifar10Dataset<float>>(() => Cifar10.Load<float>(DataDirectory, key))).Value;

    /// <summary>
    /// A fresh backend for the trial on <paramref name="engine"/> and <paramref name="device"/> (null: this trainer's
    /// defaults), resumed from <paramref name="checkpoint"/> when given. <c>ResumedFrom</c> is where that checkpoint
    /// was made (null without one): when <c>Backend.Origin.DifferenceFrom(ResumedFrom)</c> is not null the run goes on
    /// on another engine, device or kernel, correctly but not bit-identically. Throws <see cref="ArgumentException"/>
    /// for an unknown engine or device and <see cref="TrainingEngineUnavailableException"/> when it cannot run here.
    /// </summary>
    public (ITrainingBackend Backend, CheckpointOrigin? ResumedFrom) CreateBackend(SweepDefinition sweep, IReadOnlyDictionary<string, object> parameters, ulong seed,
        byte[]? checkpoint, string? engine = null, string? device = null)
    {
        var trial = Hyperparameters.Resolve(parameters, seed);
        var data = Data(sweep.Data);
        var backend = TrainingEngines.Create(engine ?? Engine, TrainingSetup.From(trial, data.Train, data.Validation, device ?? Device));
        try
        {
            var origin = checkpoint is null ? null : backend.LoadCheckpoint(new MemoryStream(checkpoint));
            return (backend, origin);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Accuracy on the test split of the trial's best parameters (as kept in its final checkpoint). The coordinator
    /// calls this once per study, for the chosen trial only.
    /// </summary>
    public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, IReadOnlyDictionary<string, object> parameters, ulong seed, byte[] checkpoint,
        string? engine = null, string? device = null)
    {
        var (backend, _) = CreateBackend(sweep, parameters, seed, checkpoint, engine, device);
        using (backend)
        {
            backend.RestoreBestParameters();
            var test = Data(sweep.Data).Test;
            return (backend.Accuracy(test), test.Count);
        }
    }

    public void Dispose()
    {
        foreach (var lazy in _data.Values)
        {
            if (lazy.IsValueCreated)
            {
                lazy.Value.Dispose();
            }
        }
    }
}
