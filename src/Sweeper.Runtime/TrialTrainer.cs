using System.Collections.Concurrent;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Runtime;

/// <summary>
/// Builds a trial's model and Solver from its parameters, on CIFAR-10 splits loaded once per process and shared by
/// every trial that asks for the same splits.
/// </summary>
public sealed class TrialTrainer(string dataDirectory) : IDisposable
{
    private readonly ConcurrentDictionary<DataSettings, Lazy<Cifar10Dataset<float>>> _data = new();

    public string DataDirectory { get; } = dataDirectory;

    /// <summary>The splits <paramref name="settings"/> asks for, from <see cref="DataDirectory"/> (the settings' path is the caller's business).</summary>
    public Cifar10Dataset<float> Data(DataSettings settings) =>
        _data.GetOrAdd(settings with { Path = null }, key => new Lazy<Cifar10Dataset<float>>(() => Cifar10.Load<float>(DataDirectory, key))).Value;

    /// <summary>A fresh model and Solver for the trial, resumed from <paramref name="checkpoint"/> when given.</summary>
    public Solver<float> CreateSolver(SweepDefinition sweep, IReadOnlyDictionary<string, object> parameters, ulong seed, byte[]? checkpoint)
    {
        var trial = Hyperparameters.Resolve(parameters, seed);
        var data = Data(sweep.Data);
        var model = new FullyConnectedNet<float>(ModelSpec.From(trial), seed);
        var solver = new Solver<float>(model, data.Train, data.Validation, SolverOptions.From(trial));
        if (checkpoint is not null)
        {
            solver.LoadCheckpoint(new MemoryStream(checkpoint));
        }

        return solver;
    }

    /// <summary>
    /// Accuracy on the test split of the trial's best parameters (as kept in its final checkpoint). The coordinator
    /// calls this once per study, for the chosen trial only.
    /// </summary>
    public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, IReadOnlyDictionary<string, object> parameters, ulong seed, byte[] checkpoint)
    {
        var solver = CreateSolver(sweep, parameters, seed, checkpoint);
        solver.RestoreBestParameters();
        var test = Data(sweep.Data).Test;
        return (solver.Accuracy(test), test.Count);
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
