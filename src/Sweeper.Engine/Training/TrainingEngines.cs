using System.Collections.Concurrent;

namespace Sweeper.Engine.Training;

/// <summary>
/// The training engines by name. <c>native</c> is always here; <c>torch</c> lives in Sweeper.Engine.Torch (the only
/// assembly that carries libtorch) and is registered by whoever references it, or found on first use when that
/// assembly sits beside this one, so that the runtime needs no libtorch dependency. Thread-safe.
/// </summary>
public static class TrainingEngines
{
    /// <summary>The engine used when none is named.</summary>
    public const string DefaultEngine = "native";

    /// <summary>The device used when none is named.</summary>
    public const string DefaultDevice = "cpu";

    public static readonly IReadOnlyList<string> Names = ["native", "torch"];

    public static readonly IReadOnlyList<string> Devices = ["cpu", "cuda"];

    private const string TorchFactoryType = "Sweeper.Engine.Torch.TorchBackendFactory, Sweeper.Engine.Torch";

    private static readonly ConcurrentDictionary<string, ITrainingBackendFactory> _factories = new(StringComparer.Ordinal)
    {
        ["native"] = new NativeBackend.Factory(),
    };

    /// <summary>Makes <paramref name="factory"/> the one for its engine name.</summary>
    public static void Register(ITrainingBackendFactory factory) => _factories[factory.Engine] = factory;

    /// <summary>
    /// A backend of engine <paramref name="engine"/> (null: <see cref="DefaultEngine"/>) for <paramref name="setup"/>.
    /// Throws <see cref="ArgumentException"/> for an unknown engine or device, and
    /// <see cref="TrainingEngineUnavailableException"/> when the engine cannot run here (the message says why and what to install).
    /// </summary>
    public static ITrainingBackend Create(string? engine, TrainingSetup setup)
    {
        if (!Devices.Contains(setup.Device, StringComparer.Ordinal))
        {
            throw new ArgumentException($"device: unknown device '{setup.Device}'; expected one of {string.Join(", ", Devices)}.");
        }

        return Factory(engine ?? DefaultEngine).Create(setup);
    }

    /// <summary>The factory of <paramref name="engine"/>, loading the torch engine's assembly on first use.</summary>
    public static ITrainingBackendFactory Factory(string engine)
    {
        if (!Names.Contains(engine, StringComparer.Ordinal))
        {
            throw new ArgumentException($"engine: unknown engine '{engine}'; expected one of {string.Join(", ", Names)}.");
        }

        if (_factories.TryGetValue(engine, out var factory))
        {
            return factory;
        }

        Type? type;
        try
        {
            type = Type.GetType(TorchFactoryType, throwOnError: false);
        }
        catch (Exception e) when (e is IOException or BadImageFormatException)
        {
            throw new TrainingEngineUnavailableException($"engine torch: Sweeper.Engine.Torch.dll could not be loaded ({e.Message}).", e);
        }

        if (type is null || Activator.CreateInstance(type) is not ITrainingBackendFactory torch)
        {
            throw new TrainingEngineUnavailableException(
                "engine torch: this program was built without the torch engine (Sweeper.Engine.Torch.dll is not beside it); use the sweeper command, which carries it, or engine native.");
        }

        return _factories.GetOrAdd(engine, torch);
    }
}
