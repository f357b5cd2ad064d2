using Sweeper.Engine.Training;
using TorchSharp;

namespace Sweeper.Engine.Torch;

/// <summary>
/// Makes torch backends (<see cref="TrainingEngines"/> finds this type by name, so the runtime needs no reference to
/// libtorch). Loads libtorch on first use, with a clear error when it cannot (see <see cref="LibTorchRuntime"/>), and
/// keeps libtorch to one thread on the calling thread, which is the training slot's.
/// </summary>
public sealed class TorchBackendFactory : ITrainingBackendFactory
{
    public string Engine => "torch";

    public ITrainingBackend Create(TrainingSetup setup)
    {
        LibTorchRuntime.EnsureLoaded();
        torch.set_num_threads(1);
        return new TorchBackend(setup);
    }

    /// <summary>
    /// The libtorch device for a device name. Throws <see cref="ArgumentException"/> for an unknown name and
    /// <see cref="TrainingEngineUnavailableException"/> for cuda without a usable CUDA runtime, saying what to install.
    /// </summary>
    public static torch.Device DeviceFor(string device)
    {
        LibTorchRuntime.EnsureLoaded();
        switch (device)
        {
            case "cpu":
                return torch.CPU;
            case "cuda":
                if (!torch.cuda.is_available())
                {
                    throw new TrainingEngineUnavailableException(
                        "device cuda: no usable CUDA runtime. This build carries libtorch for the CPU only (libtorch-cpu-linux-x64); " +
                        "on a machine with an NVIDIA GPU and driver, build with the libtorch-cuda-12.8-linux-x64 package (or TorchSharp-cuda-linux) " +
                        "in place of libtorch-cpu-linux-x64, or use device cpu.");
                }

                return torch.CUDA;
            default:
                throw new ArgumentException($"device: unknown device '{device}'; expected cpu or cuda.");
        }
    }
}
