using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Engine.Tests;

/// <summary>Checkpoints record the engine, device and kernel that made them; checkpoints from before that still load.</summary>
public class CheckpointOriginTests
{
    private static readonly Lazy<Cifar10Dataset<float>> _small = new(() =>
        Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 600, ValSize = 100, TestSize = 0 }));

    private static TrainingSetup Setup(ulong seed = 2) => new(new ModelSpec { HiddenSizes = [20], Normalization = Normalization.Batch },
        new SolverOptions { UpdateRule = "adam", BatchSize = 100, Epochs = 2, Seed = seed, TrainAccuracySamples = 100 }, _small.Value.Train, _small.Value.Validation);

    /// <summary>The same checkpoint in format 1: the header without the origin, the rest unchanged.</summary>
    private static byte[] AsVersion1(byte[] version2)
    {
        var r = new BinaryReader(new MemoryStream(version2));
        var (magic, _, size) = (r.ReadInt32(), r.ReadInt32(), r.ReadInt32());
        (_, _, _) = (r.ReadString(), r.ReadString(), r.ReadString());
        var rest = version2.AsSpan((int)r.BaseStream.Position);
        var old = new MemoryStream();
        var w = new BinaryWriter(old);
        w.Write(magic);
        w.Write(1);
        w.Write(size);
        w.Write(rest);
        return old.ToArray();
    }

    [Fact]
    public void A_native_checkpoint_records_the_engine_the_device_and_the_OpenBLAS_kernel()
    {
        using var backend = TrainingEngines.Create("native", Setup());
        backend.Train();
        var bytes = new MemoryStream();
        backend.SaveCheckpoint(bytes);
        var origin = CheckpointOrigin.Read(bytes.ToArray());
        Assert.Equal(new CheckpointOrigin("native", "cpu", $"OpenBLAS {Blas.Selection.Core}"), origin);
        Assert.Equal(backend.Origin, origin);
        Assert.Null(backend.Origin.DifferenceFrom(origin));
    }

    [Fact]
    public void A_checkpoint_from_before_origins_loads_resumes_identically_and_reads_as_native_with_an_unknown_kernel()
    {
        var setup = Setup();
        using var straight = new NativeBackend(setup);
        straight.Train();

        var bytes = new MemoryStream();
        using (var first = new NativeBackend(setup with { Options = setup.Options with { Epochs = 1 } }))
        {
            first.Train(_ =>
            {
                first.SaveCheckpoint(bytes);
                return true;
            });
        }

        var old = AsVersion1(bytes.ToArray());
        var origin = CheckpointOrigin.Read(old);
        Assert.Equal(new CheckpointOrigin("native", "cpu", CheckpointOrigin.UnknownKernel), origin);
        Assert.Equal($"kernel unknown -> OpenBLAS {Blas.Selection.Core}", Solver<float>.NativeOrigin.DifferenceFrom(origin));

        using var resumed = new NativeBackend(setup);
        Assert.Equal(origin, resumed.LoadCheckpoint(new MemoryStream(old)));
        resumed.Train();
        Assert.Equal(straight.Solver.LossHistory, resumed.Solver.LossHistory);
        Assert.Equal(straight.ExportParameters()["W1"], resumed.ExportParameters()["W1"]);

        // The dashboard's reader takes both formats alike.
        var fromOld = Solver<float>.ReadBestParameters(new MemoryStream(old));
        var fromNew = Solver<float>.ReadBestParameters(new MemoryStream(bytes.ToArray()));
        Assert.Equal(fromNew.Keys, fromOld.Keys);
        Assert.Equal(fromNew["W1"], fromOld["W1"]);
    }

    [Fact]
    public void Anything_but_a_checkpoint_is_refused_with_a_clear_reason()
    {
        Assert.Equal("not a Sweeper checkpoint.", Assert.Throws<InvalidDataException>(() => CheckpointOrigin.Read([1, 2, 3, 4, 5, 6, 7, 8])).Message);
        Assert.Equal("the checkpoint is truncated.", Assert.Throws<InvalidDataException>(() => CheckpointOrigin.Read([0x53, 0x57, 0x43])).Message);
        Assert.Contains("version 9", Assert.Throws<InvalidDataException>(() => CheckpointOrigin.Read([0x53, 0x57, 0x43, 0x4B, 9, 0, 0, 0, 4, 0, 0, 0])).Message);
    }

    [Fact]
    public void Differences_name_each_of_engine_device_and_kernel()
    {
        var a = new CheckpointOrigin("native", "cpu", "OpenBLAS Haswell");
        Assert.Null(a.DifferenceFrom(a with { }));
        Assert.Equal("kernel OpenBLAS Haswell -> OpenBLAS SkylakeX", (a with { Kernel = "OpenBLAS SkylakeX" }).DifferenceFrom(a));
        Assert.Equal("engine native -> torch, device cpu -> cuda, kernel OpenBLAS Haswell -> libtorch 2.10.0 (cuda)",
            new CheckpointOrigin("torch", "cuda", "libtorch 2.10.0 (cuda)").DifferenceFrom(a));
    }

    [Fact]
    public void The_engine_factory_defaults_to_native_and_refuses_unknown_names()
    {
        using (var backend = TrainingEngines.Create(null, Setup()))
        {
            Assert.IsType<NativeBackend>(backend);
        }

        Assert.Contains("expected one of native, torch", Assert.Throws<ArgumentException>(() => TrainingEngines.Create("tf", Setup())).Message);
        Assert.Contains("CPU only", Assert.Throws<ArgumentException>(() => TrainingEngines.Create("native", Setup() with { Device = "cuda" })).Message);
    }
}
