using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Engine.Training;

namespace Sweeper.Runtime;

/// <summary>
/// What a runner calls after each epoch of a trial, with the epoch's metrics and a way to take a checkpoint right then.
/// Returns false to stop the trial (the stopping rule pruned it); throws to abandon it. <paramref name="last"/> says that
/// the runner returns at once after this call, with no more training (the epoch was the trial's last): the slot may then
/// store the epoch together with the trial's outcome, in one write instead of two.
/// </summary>
public delegate bool EpochCallback(EpochRecord metrics, Func<byte[]> checkpoint, bool last = false);

/// <summary>
/// Trains trials and evaluates a chosen one on the test split: the seam between the runtime and a training engine.
/// Called on a training slot's dedicated thread (never on a grain's scheduler); may block for minutes.
/// </summary>
public interface ITrialRunner
{
    /// <summary>
    /// Trains one trial, resumed from <paramref name="checkpoint"/> when given. <paramref name="onEpoch"/> is called after
    /// every epoch (see <see cref="EpochCallback"/>). <paramref name="onNote"/> hears what belongs in the trial's
    /// events, e.g. that its checkpoint was made on another engine, device or kernel (it goes on correctly, but not
    /// bit-identically).
    /// </summary>
    TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null);

    /// <summary>Accuracy of the trial's best parameters (kept in its final checkpoint) on the test split, and how many examples.</summary>
    (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint);
}

/// <summary>
/// Trains trials through the training engines' seam (<see cref="ITrainingBackend"/>) on CIFAR-10 (the dataset is
/// loaded once per silo and shared by its slots), with the engine and device the sweep names.
/// </summary>
public sealed class SolverTrialRunner(TrialTrainer trainer) : ITrialRunner
{
    public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null)
    {
        var (backend, resumedFrom) = trainer.CreateBackend(sweep, ParamJson.Deserialize(lease.ParametersJson), lease.Seed, checkpoint, sweep.Engine, sweep.Device);
        using (backend)
        {
            if (resumedFrom is not null && backend.Origin.DifferenceFrom(resumedFrom) is { } difference)
            {
                onNote?.Invoke($"resumes from a checkpoint made by {resumedFrom} on {backend.Origin} ({difference}): it goes on correctly but not bit-identically");
            }

            byte[] Checkpoint()
            {
                var stream = new MemoryStream();
                backend.SaveCheckpoint(stream);
                return stream.ToArray();
            }

            var result = backend.Train(
                // After the last epoch's callback the loop only puts the best parameters back, and this returns.
                epoch => onEpoch(epoch, Checkpoint, backend.Iteration >= backend.TotalIterations),
                cancellationToken: cancellationToken);
            var state = result.Outcome switch
            {
                TrainingOutcome.Completed => TrialState.Completed,
                TrainingOutcome.Diverged => TrialState.Diverged,
                _ => TrialState.Pruned,
            };
            return new TrialFinish(state, result.BestEpoch > 0 ? result.BestValAccuracy : null, result.BestEpoch > 0 ? result.TrainAccuracy : null, result.Epochs, result.Reason);
        }
    }

    public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) =>
        trainer.EvaluateOnTest(sweep, ParamJson.Deserialize(trial.ParametersJson), trial.Seed, checkpoint, sweep.Engine, sweep.Device);
}

/// <summary>
/// The runner a silo's slots use: a sweep with <c>program:</c> runs its trials through <see cref="Program"/> (the user's
/// training program), any other through <see cref="BuiltIn"/> (our models).
/// </summary>
public sealed class DispatchingTrialRunner(ITrialRunner builtIn, ITrialRunner program) : ITrialRunner
{
    public ITrialRunner BuiltIn { get; } = builtIn;

    public ITrialRunner Program { get; } = program;

    public TrialFinish Run(SweepDefinition sweep, Lease lease, byte[]? checkpoint, EpochCallback onEpoch, CancellationToken cancellationToken, Action<string>? onNote = null) =>
        (sweep.Program is null ? BuiltIn : Program).Run(sweep, lease, checkpoint, onEpoch, cancellationToken, onNote);

    public (double Accuracy, int Examples) EvaluateOnTest(SweepDefinition sweep, TrialRecord trial, byte[] checkpoint) =>
        (sweep.Program is null ? BuiltIn : Program).EvaluateOnTest(sweep, trial, checkpoint);
}
