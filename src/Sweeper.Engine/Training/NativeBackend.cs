using Sweeper.Core.Trials;
using Sweeper.Engine.Data;
using Sweeper.Engine.Models;

namespace Sweeper.Engine.Training;

/// <summary>The native engine behind the seam: a <see cref="Solver{T}"/> of a <see cref="FullyConnectedNet{T}"/> in float32, on the CPU.</summary>
public sealed class NativeBackend : ITrainingBackend
{
    public NativeBackend(TrainingSetup setup)
    {
        if (!string.Equals(setup.Device, "cpu", StringComparison.Ordinal))
        {
            throw new ArgumentException($"device: the native engine runs on the CPU only (got '{setup.Device}'); use engine torch for cuda.");
        }

        Setup = setup;
        Solver = new Solver<float>(new FullyConnectedNet<float>(setup.Model, setup.Options.Seed), setup.TrainingExamples(), setup.Validation, setup.Options);
    }

    /// <summary>The Solver underneath (tests and benchmarks look inside).</summary>
    public Solver<float> Solver { get; }

    public TrainingSetup Setup { get; }

    public CheckpointOrigin Origin => Solver<float>.NativeOrigin;

    public int Epoch => Solver.Epoch;

    public long Iteration => Solver.Iteration;

    public long TotalIterations => Solver.TotalIterations;

    public int IterationsPerEpoch => Solver.IterationsPerEpoch;

    public TrainingResult Train(Func<EpochRecord, bool>? onEpoch = null, Action<long, double>? onIteration = null, CancellationToken cancellationToken = default) =>
        Solver.Train(onEpoch, onIteration, cancellationToken);

    public double Step(ReadOnlySpan<int> indices, ReadOnlySpan<int> nextIndices = default) => Solver.Step(indices, nextIndices);

    public double Accuracy(IDataSplit<float> split, int[]? indices = null) => Solver.Accuracy(split, indices);

    public void RestoreBestParameters() => Solver.RestoreBestParameters();

    public void SaveCheckpoint(Stream stream) => Solver.SaveCheckpoint(stream);

    public CheckpointOrigin LoadCheckpoint(Stream stream) => Solver.LoadCheckpoint(stream);

    public IReadOnlyDictionary<string, float[]> ExportParameters() =>
        Solver.Model.Parameters.ToDictionary(p => p.Name, p => (float[])p.Value.Clone());

    public void Dispose()
    {
    }

    /// <summary>Makes native backends.</summary>
    public sealed class Factory : ITrainingBackendFactory
    {
        public string Engine => "native";

        public ITrainingBackend Create(TrainingSetup setup) => new NativeBackend(setup);
    }
}
