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
    private readonly ConcurrentDictionary<(int, int, int), Lazy<Cifar10Dataset<float>>> _data = new();

    public string DataDirectory { get; } = dataDirectory;

    public Cifar10Dataset<float> Data(DataSettings settings) =>
        _data.GetOrAdd((settings.TrainSize, settings.ValSize, settings.TestSize), key => new Lazy<Cifar10Dataset<float>>(() =>
            Cifar10.Load<float>(DataDirectory, new SplitOptions { Train = key.Item1, Validation = key.Item2, Test = key.Item3 }))).Value;

    /// <summary>A fresh model and Solver for the trial, resumed from <paramref name="checkpoint"/> when given.</summary>
    public Solver<float> CreateSolver(SweepDefinition sweep, IReadOnlyDictionary<string, object> parameters, ulong seed, byte[]? checkpoint)
    {
        var (modelSpec, options) = Hyperparameters.ToConfiguration(parameters, seed);
        var data = Data(sweep.Data);
        var model = new FullyConnectedNet<float>(modelSpec, seed);
        var solver = new Solver<float>(model, data.Train, data.Validation, options);
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
