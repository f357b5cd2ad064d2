using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Sweeper.Core.Trials;

namespace Sweeper.Engine.Training;

/// <summary>
/// What produced a checkpoint: the training engine (<c>native</c> or <c>torch</c>), the device (<c>cpu</c> or
/// <c>cuda</c>) and the kernel (native: the OpenBLAS core, e.g. <c>SkylakeX</c>; torch: the libtorch version and
/// device). A run resumed with the same origin continues bit-identically; with another it continues correctly but
/// not bit-identically, which the runtime reports in the trial's events.
/// </summary>
public sealed record CheckpointOrigin(string Engine, string Device, string Kernel)
{
    /// <summary>The kernel named for checkpoints written before checkpoints recorded their origin (format version 1).</summary>
    public const string UnknownKernel = "unknown";

    /// <summary>
    /// The origin recorded in <paramref name="checkpoint"/>. A checkpoint written before origins were recorded was
    /// written by the native engine on the CPU with a kernel nobody recorded: it reads as (native, cpu, unknown).
    /// Throws <see cref="InvalidDataException"/> for bytes that are not a Sweeper checkpoint.
    /// </summary>
    public static CheckpointOrigin Read(byte[] checkpoint) => Read(new MemoryStream(checkpoint, writable: false));

    /// <inheritdoc cref="Read(byte[])"/>
    public static CheckpointOrigin Read(Stream stream)
    {
        using var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        return CheckpointFormat.ReadHeader(r).Origin;
    }

    /// <summary>
    /// Null when a run checkpointed by <paramref name="previous"/> resumes here bit-identically (same engine, device
    /// and kernel); otherwise one line saying what changed, e.g. "engine native -> torch".
    /// </summary>
    public string? DifferenceFrom(CheckpointOrigin previous)
    {
        var changes = new List<string>();
        if (previous.Engine != Engine)
        {
            changes.Add($"engine {previous.Engine} -> {Engine}");
        }

        if (previous.Device != Device)
        {
            changes.Add($"device {previous.Device} -> {Device}");
        }

        if (previous.Kernel != Kernel)
        {
            changes.Add($"kernel {previous.Kernel} -> {Kernel}");
        }

        return changes.Count == 0 ? null : string.Join(", ", changes);
    }

    public override string ToString() => $"{Engine} on {Device} ({Kernel})";
}

/// <summary>One trainable parameter in a checkpoint: its values, its best-by-validation values and its optimizer state.</summary>
public sealed record CheckpointParameter<T>(string Name, T[] Value, T[] Best, long Step, T[][] Slots)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>One buffer (batchnorm running statistics) in a checkpoint, with its best-by-validation values.</summary>
public sealed record CheckpointBuffer<T>(string Name, T[] Value, T[] Best)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// Everything a training run needs to resume, independent of the engine that trained it: the engines share the
/// parameter names and layouts (W1 is fan_out x fan_in, row-major), the update rules' state, the random generators
/// and the histories, so a checkpoint of one engine loads into the other.
/// </summary>
public sealed record CheckpointState<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public required int Epoch { get; init; }

    public required long Iteration { get; init; }

    /// <summary>The learning rate of the next step.</summary>
    public required double LearningRate { get; init; }

    public required double BestValAccuracy { get; init; }

    public required int BestEpoch { get; init; }

    /// <summary>The state of the generator of shuffles and train-accuracy samples.</summary>
    public required ulong[] ShuffleRng { get; init; }

    /// <summary>The state of the generator of dropout masks.</summary>
    public required ulong[] DropoutRng { get; init; }

    public required IReadOnlyList<double> LossHistory { get; init; }

    public required IReadOnlyList<EpochRecord> History { get; init; }

    /// <summary>Steps per epoch and in all: only to write each epoch's iteration count, which older readers expect.</summary>
    public int IterationsPerEpoch { get; init; } = 1;

    public long TotalIterations { get; init; } = long.MaxValue;

    public required IReadOnlyList<CheckpointParameter<T>> Parameters { get; init; }

    public required IReadOnlyList<CheckpointBuffer<T>> Buffers { get; init; }
}

/// <summary>
/// The checkpoint file format. Version 2: magic "SWCK", version, element size, then the origin (engine, device,
/// kernel as strings), then the state. Version 1 (before origins were recorded) is the same without the origin and
/// is still read.
/// </summary>
public static class CheckpointFormat
{
    private const int Magic = 0x4B435753; // "SWCK"
    private const int Version = 2;

    /// <summary>Writes <paramref name="state"/> with its <paramref name="origin"/>.</summary>
    public static void Write<T>(Stream stream, CheckpointOrigin origin, CheckpointState<T> state)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(Version);
        w.Write(Unsafe.SizeOf<T>());
        w.Write(origin.Engine);
        w.Write(origin.Device);
        w.Write(origin.Kernel);
        w.Write(state.Epoch);
        w.Write(state.Iteration);
        w.Write(state.LearningRate);
        w.Write(state.BestValAccuracy);
        w.Write(state.BestEpoch);
        WriteRng(w, state.ShuffleRng);
        WriteRng(w, state.DropoutRng);
        w.Write(state.LossHistory.Count);
        foreach (var l in state.LossHistory)
        {
            w.Write(l);
        }

        w.Write(state.History.Count);
        foreach (var h in state.History)
        {
            w.Write(h.Epoch);
            w.Write(Math.Min((long)h.Epoch * state.IterationsPerEpoch, state.TotalIterations)); // derived; kept for older readers
            w.Write(h.Loss);
            w.Write(h.TrainAccuracy);
            w.Write(h.ValAccuracy);
            w.Write(h.LearningRate);
            w.Write(h.Seconds);
        }

        w.Write(state.Parameters.Count);
        foreach (var p in state.Parameters)
        {
            w.Write(p.Name);
            WriteArray(w, p.Value);
            WriteArray(w, p.Best);
            w.Write(p.Step);
            w.Write(p.Slots.Length);
            foreach (var slot in p.Slots)
            {
                WriteArray(w, slot);
            }
        }

        w.Write(state.Buffers.Count);
        foreach (var b in state.Buffers)
        {
            w.Write(b.Name);
            WriteArray(w, b.Value);
            WriteArray(w, b.Best);
        }
    }

    /// <summary>Reads a whole checkpoint. Throws <see cref="InvalidDataException"/> for anything else or another precision.</summary>
    public static (CheckpointOrigin Origin, CheckpointState<T> State) Read<T>(Stream stream)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var r = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        try
        {
            var (origin, size) = ReadHeader(r);
            CheckSize<T>(size);
            var epoch = r.ReadInt32();
            var iteration = r.ReadInt64();
            var lr = r.ReadDouble();
            var bestVal = r.ReadDouble();
            var bestEpoch = r.ReadInt32();
            var shuffle = ReadRng(r);
            var dropout = ReadRng(r);
            var losses = new double[Count(r)];
            for (var i = 0; i < losses.Length; i++)
            {
                losses[i] = r.ReadDouble();
            }

            var history = new EpochRecord[Count(r)];
            for (var i = 0; i < history.Length; i++)
            {
                var e = r.ReadInt32();
                _ = r.ReadInt64(); // iterations after that epoch: derived
                history[i] = new EpochRecord(e, r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble());
            }

            var parameters = new CheckpointParameter<T>[Count(r)];
            for (var p = 0; p < parameters.Length; p++)
            {
                var name = r.ReadString();
                var value = ReadArray<T>(r, name);
                var best = ReadArray<T>(r, name);
                var step = r.ReadInt64();
                var slots = new T[Count(r)][];
                for (var k = 0; k < slots.Length; k++)
                {
                    slots[k] = ReadArray<T>(r, name);
                }

                parameters[p] = new CheckpointParameter<T>(name, value, best, step, slots);
            }

            var buffers = new CheckpointBuffer<T>[Count(r)];
            for (var b = 0; b < buffers.Length; b++)
            {
                var name = r.ReadString();
                buffers[b] = new CheckpointBuffer<T>(name, ReadArray<T>(r, name), ReadArray<T>(r, name));
            }

            return (origin, new CheckpointState<T>
            {
                Epoch = epoch,
                Iteration = iteration,
                LearningRate = lr,
                BestValAccuracy = bestVal,
                BestEpoch = bestEpoch,
                ShuffleRng = shuffle,
                DropoutRng = dropout,
                LossHistory = losses,
                History = history,
                Parameters = parameters,
                Buffers = buffers,
            });
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the checkpoint is truncated.");
        }
    }

    /// <summary>The best-so-far parameters by name (W1, b1, ...): for looking at learned weights without building a model.</summary>
    public static Dictionary<string, T[]> ReadBestParameters<T>(Stream stream)
        where T : unmanaged, IFloatingPointIeee754<T>
        => Read<T>(stream).State.Parameters.ToDictionary(p => p.Name, p => p.Best);

    /// <summary>Magic, version, element size and origin; throws <see cref="InvalidDataException"/> on anything else.</summary>
    internal static (CheckpointOrigin Origin, int ElementSize) ReadHeader(BinaryReader r)
    {
        try
        {
            if (r.ReadInt32() != Magic)
            {
                throw new InvalidDataException("not a Sweeper checkpoint.");
            }

            var version = r.ReadInt32();
            if (version is not (1 or 2))
            {
                throw new InvalidDataException($"checkpoint version {version} is not supported (this build reads 1 and 2).");
            }

            var size = r.ReadInt32();
            var origin = version == 1
                ? new CheckpointOrigin("native", "cpu", CheckpointOrigin.UnknownKernel)
                : new CheckpointOrigin(r.ReadString(), r.ReadString(), r.ReadString());
            return (origin, size);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the checkpoint is truncated.");
        }
    }

    private static void CheckSize<T>(int size)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (size != Unsafe.SizeOf<T>())
        {
            throw new InvalidDataException($"checkpoint was written for another precision than {typeof(T).Name}.");
        }
    }

    private static int Count(BinaryReader r)
    {
        var n = r.ReadInt32();
        return n >= 0 && n <= r.BaseStream.Length ? n : throw new InvalidDataException($"checkpoint holds an impossible count ({n}).");
    }

    private static void WriteRng(BinaryWriter w, ulong[] state)
    {
        foreach (var s in state)
        {
            w.Write(s);
        }
    }

    private static ulong[] ReadRng(BinaryReader r) => [r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64(), r.ReadUInt64()];

    private static void WriteArray<T>(BinaryWriter w, T[] values)
        where T : unmanaged
    {
        w.Write(values.Length);
        w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static T[] ReadArray<T>(BinaryReader r, string name)
        where T : unmanaged
    {
        var length = r.ReadInt32();
        if (length < 0 || (long)length * Unsafe.SizeOf<T>() > r.BaseStream.Length)
        {
            throw new InvalidDataException($"checkpoint array {name} has an impossible length ({length}).");
        }

        var values = new T[length];
        try
        {
            r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"checkpoint ends inside array {name}.");
        }

        return values;
    }
}
