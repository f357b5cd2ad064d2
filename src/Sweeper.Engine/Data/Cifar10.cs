using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sweeper.Core;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Data;

/// <summary>
/// Images kept as their original bytes (a quarter of the memory of floats) and turned into preprocessed rows only
/// when a batch is gathered: row = bytes - mean image (+ a trailing 1 with the bias column).
/// </summary>
public sealed class ImageSplit<T> : IDataSplit<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ReadOnlyMemory<byte> _images;
    private readonly T[] _mean;
    private readonly bool _bias;

    internal ImageSplit(ReadOnlyMemory<byte> images, int[] labels, T[] mean, bool bias)
    {
        _images = images;
        _mean = mean;
        _bias = bias;
        Labels = labels;
    }

    public int Count => Labels.Length;

    public int Dim => Cifar10.ImageBytes + (_bias ? 1 : 0);

    public int[] Labels { get; }

    /// <summary>The mean image subtracted from every example (all zeros when mean subtraction is off).</summary>
    public ReadOnlySpan<T> MeanImage => _mean;

    /// <summary>The raw bytes of example <paramref name="index"/> (channel-planar: 1024 red, 1024 green, 1024 blue).</summary>
    public ReadOnlySpan<byte> Image(int index) => _images.Span.Slice(index * Cifar10.ImageBytes, Cifar10.ImageBytes);

    public void Gather(ReadOnlySpan<int> indices, Matrix<T> destination)
    {
        if (destination.Cols != Dim || destination.Rows < indices.Length)
        {
            throw new ArgumentException($"destination must be at least {indices.Length} x {Dim}.");
        }

        Gather(indices, destination.Span, Dim, Dim, 0);
    }

    public void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride, int chunk, int chunkStride)
    {
        DataSplits.CheckDestination(indices.Length, Dim, destination.Length, stride, chunk, chunkStride);
        var images = _images.Span;
        for (var i = 0; i < indices.Length; i++)
        {
            if (i + PrefetchDistance < indices.Length)
            {
                Prefetch(images.Slice(indices[i + PrefetchDistance] * Cifar10.ImageBytes, Cifar10.ImageBytes));
            }

            var image = images.Slice(indices[i] * Cifar10.ImageBytes, Cifar10.ImageBytes);
            var row = destination[(i * stride)..];
            if (chunk >= Dim)
            {
                Preprocess(image, _mean, row[..Cifar10.ImageBytes]);
            }
            else
            {
                PreprocessChunked(image, _mean, row, chunk, chunkStride);
            }

            if (_bias)
            {
                var k = Dim - 1;
                row[chunk >= Dim ? k : ((k / chunk * chunkStride) + (k % chunk))] = T.One;
            }
        }
    }

    /// <summary>
    /// <see cref="Preprocess"/> into chunks: pixel j goes to destination[(j / chunk * chunkStride) + (j % chunk)], chunk
    /// a multiple of 16 (the checks are the caller's: <see cref="DataSplits.CheckDestination"/>). One pass of 16-pixel
    /// steps where 512-bit vectors are fast, else chunk by chunk.
    /// </summary>
    private static unsafe void PreprocessChunked(ReadOnlySpan<byte> pixels, ReadOnlySpan<T> mean, Span<T> destination, int chunk, int chunkStride)
    {
        if (typeof(T) == typeof(float) && Vector512.IsHardwareAccelerated && Avx512F.IsSupported && pixels.Length % 16 == 0)
        {
            var last = ((pixels.Length - 1) / chunk * chunkStride) + ((pixels.Length - 1) % chunk);
            if (mean.Length < pixels.Length || destination.Length <= last)
            {
                throw new ArgumentException($"PreprocessChunked: {pixels.Length} pixels, {mean.Length} means, room for {destination.Length}.");
            }

            fixed (byte* p = pixels)
            fixed (T* pm = mean, pd = destination)
            {
                float* m = (float*)pm, d = (float*)pd;
                for (var j = 0; j < pixels.Length; j += chunk)
                {
                    var o = d + ((long)j / chunk * chunkStride);
                    for (var c = 0; c < chunk && j + c < pixels.Length; c += 16)
                    {
                        (Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p + j + c))) - Vector512.Load(m + j + c)).Store(o + c);
                    }
                }
            }

            return;
        }

        for (var k = 0; k < pixels.Length; k += chunk)
        {
            var length = Math.Min(chunk, pixels.Length - k);
            Preprocess(pixels.Slice(k, length), mean.Slice(k, length), destination.Slice(k / chunk * chunkStride, length));
        }
    }

    /// <summary>
    /// destination[j] = pixels[j] - mean[j], in one pass. For float: 16 pixels per step, each zero-extended from its
    /// byte straight into a 32-bit lane and converted (AVX-512, where 512-bit vectors are fast), else 8 (AVX2).
    /// </summary>
    internal static unsafe void Preprocess(ReadOnlySpan<byte> pixels, ReadOnlySpan<T> mean, Span<T> destination)
    {
        if (mean.Length < pixels.Length || destination.Length < pixels.Length)
        {
            throw new ArgumentException($"Preprocess: {pixels.Length} pixels, {mean.Length} means, room for {destination.Length}.");
        }

        var j = 0;
        if (typeof(T) == typeof(float) && Avx2.IsSupported)
        {
            fixed (byte* p = pixels)
            fixed (T* pm = mean, pd = destination)
            {
                float* m = (float*)pm, d = (float*)pd;
                if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported)
                {
                    for (; j + 16 <= pixels.Length; j += 16)
                    {
                        (Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p + j))) - Vector512.Load(m + j)).Store(d + j);
                    }
                }

                for (; j + 8 <= pixels.Length; j += 8)
                {
                    Avx.Store(d + j, Avx.Subtract(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p + j)), Avx.LoadVector256(m + j)));
                }
            }
        }

        for (; j < pixels.Length; j++)
        {
            destination[j] = T.CreateTruncating(pixels[j]) - mean[j];
        }
    }

    /// <summary>Rows ahead whose bytes are requested early: random rows of a 150 MB array otherwise stall on memory.</summary>
    private const int PrefetchDistance = 10;

    private static unsafe void Prefetch(ReadOnlySpan<byte> image, bool nearest = true)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        fixed (byte* p = image)
        {
            for (var offset = 0; offset < image.Length; offset += 64)
            {
                if (nearest)
                {
                    Sse.Prefetch0(p + offset);
                }
                else
                {
                    Sse.Prefetch2(p + offset);
                }
            }
        }
    }

    /// <summary>Asks for the rows of the next minibatch into the outer caches while this one trains (the fetches overlap the matrix products).</summary>
    public void Prefetch(ReadOnlySpan<int> indices)
    {
        var images = _images.Span;
        foreach (var index in indices)
        {
            Prefetch(images.Slice(index * Cifar10.ImageBytes, Cifar10.ImageBytes), nearest: false);
        }
    }

    /// <summary>All examples as one matrix (handy for small splits and tests).</summary>
    public Matrix<T> ToMatrix()
    {
        var m = new Matrix<T>(Count, Dim);
        Gather(Enumerable.Range(0, Count).ToArray(), m);
        return m;
    }
}

/// <summary>
/// The CIFAR-10 splits of one load. All splits share the training split's mean image. Dispose it to free the
/// training and validation images (kept outside the GC heap); the splits must not be used after that.
/// </summary>
public sealed class Cifar10Dataset<T> : IDisposable
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly IDisposable _buffer;

    internal Cifar10Dataset(ImageSplit<T> train, ImageSplit<T> validation, ImageSplit<T> test, ImageSplit<T>? dev, T[] mean, string directory, IDisposable buffer)
    {
        _buffer = buffer;
        Train = train;
        Validation = validation;
        Test = test;
        Dev = dev;
        Mean = mean;
        Directory = directory;
    }

    public ImageSplit<T> Train { get; }

    public ImageSplit<T> Validation { get; }

    public ImageSplit<T> Test { get; }

    public ImageSplit<T>? Dev { get; }

    /// <summary>The training split's mean image (all zeros when mean subtraction is off).</summary>
    public T[] Mean { get; }

    public string Directory { get; }

    public void Dispose() => _buffer.Dispose();
}

/// <summary>Reader for CIFAR-10's official binary format: records of 1 label byte and 3072 image bytes.</summary>
public static class Cifar10
{
    public const int ImageBytes = 3072;

    /// <summary>Pixels in each row of an image (32 x 32 in each of 3 channel planes).</summary>
    public const int Width = 32;
    public const int RecordBytes = ImageBytes + 1;
    public const int RecordsPerFile = 10_000;
    public const int FileBytes = RecordBytes * RecordsPerFile;
    public const int TrainRecords = 50_000;
    public const int TestRecords = 10_000;
    public const int Classes = 10;

    public static readonly IReadOnlyList<string> TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

    public const string TestFile = "test_batch.bin";

    public static readonly IReadOnlyList<string> ClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>sha256 of the official extracted files (from the CIFAR-10 binary archive).</summary>
    public static readonly IReadOnlyDictionary<string, string> Sha256 = new Dictionary<string, string>
    {
        ["data_batch_1.bin"] = "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
        ["data_batch_2.bin"] = "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
        ["data_batch_3.bin"] = "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
        ["data_batch_4.bin"] = "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
        ["data_batch_5.bin"] = "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
        ["test_batch.bin"] = "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
    };

    public static IEnumerable<string> AllFiles => TrainFiles.Append(TestFile);

    /// <summary>
    /// Reads the first <paramref name="records"/> records of one batch file into <paramref name="images"/> (records x 3072)
    /// and <paramref name="labels"/>. Throws <see cref="InvalidDataException"/> naming the file on a wrong size or a bad label.
    /// </summary>
    public static void ReadBatch(string path, int records, Span<byte> images, Span<int> labels, byte[]? buffer = null)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"CIFAR-10 file {path} is missing.", path);
        }

        var length = new FileInfo(path).Length;
        if (length != FileBytes)
        {
            var kind = length < FileBytes ? "truncated" : "too long";
            throw new InvalidDataException(
                $"{path} is {kind}: {length} bytes, expected {FileBytes} ({RecordsPerFile} records of {RecordBytes} bytes). Re-download it with 'sweeper data download --force'.");
        }

        var bytes = records * RecordBytes;
        buffer = buffer is { Length: >= FileBytes } ? buffer : new byte[bytes];
        using (var handle = File.OpenHandle(path))
        {
            var read = 0;
            while (read < bytes)
            {
                var n = RandomAccess.Read(handle, buffer.AsSpan(read, bytes - read), read);
                if (n == 0)
                {
                    throw new InvalidDataException($"{path} ended after {read} bytes while {bytes} were expected.");
                }

                read += n;
            }
        }

        for (var r = 0; r < records; r++)
        {
            var record = buffer.AsSpan(r * RecordBytes, RecordBytes);
            var label = record[0];
            if (label >= Classes)
            {
                throw new InvalidDataException($"{path} is corrupt: record {r} (byte offset {(long)r * RecordBytes}) has label {label}, expected 0..9.");
            }

            labels[r] = label;
            record[1..].CopyTo(images.Slice(r * ImageBytes, ImageBytes));
        }
    }

    /// <summary>
    /// Loads the splits that <paramref name="settings"/> asks for (default: <see cref="DataSettings"/>'s defaults) from
    /// <paramref name="directory"/>, a folder holding the official binary files, reading only the files the splits need.
    /// The settings' dataset and path are not read here (the caller resolved the folder). The dev subset is drawn with
    /// <paramref name="devSeed"/>. Throws <see cref="ArgumentException"/> for sizes the files cannot hold.
    /// </summary>
    public static Cifar10Dataset<T> Load<T>(string directory, DataSettings? settings = null, ulong devSeed = 0)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        settings ??= new DataSettings();
        Validate(settings);
        var trainCount = settings.TrainSize + settings.ValSize;
        // Outside the GC heap, on huge pages where the OS allows: minibatches read random rows of this array.
        var trainBuffer = new NativeBuffer((long)trainCount * ImageBytes);
        var trainImages = trainBuffer.Memory;
        var trainLabels = new int[trainCount];
        var buffer = new byte[FileBytes];
        for (var f = 0; f * RecordsPerFile < trainCount; f++)
        {
            var records = Math.Min(RecordsPerFile, trainCount - (f * RecordsPerFile));
            ReadBatch(Path.Combine(directory, TrainFiles[f]), records,
                trainImages.Span.Slice(f * RecordsPerFile * ImageBytes, records * ImageBytes), trainLabels.AsSpan(f * RecordsPerFile, records), buffer);
        }

        var testImages = new byte[(long)settings.TestSize * ImageBytes];
        var testLabels = new int[settings.TestSize];
        if (settings.TestSize > 0)
        {
            ReadBatch(Path.Combine(directory, TestFile), settings.TestSize, testImages, testLabels, buffer);
        }

        var mean = new T[ImageBytes];
        if (settings.SubtractMean)
        {
            MeanImage(trainImages.Span[..(settings.TrainSize * ImageBytes)], settings.TrainSize, mean);
        }

        var trainMemory = trainImages;
        var train = new ImageSplit<T>(trainMemory[..(settings.TrainSize * ImageBytes)], trainLabels[..settings.TrainSize], mean, settings.BiasColumn);
        var validation = new ImageSplit<T>(trainMemory[(settings.TrainSize * ImageBytes)..], trainLabels[settings.TrainSize..], mean, settings.BiasColumn);
        var test = new ImageSplit<T>(testImages, testLabels, mean, settings.BiasColumn);
        ImageSplit<T>? dev = null;
        if (settings.DevSize > 0)
        {
            var pick = Enumerable.Range(0, settings.TrainSize).ToArray();
            new Rng(devSeed).Shuffle(pick);
            var devImages = new byte[settings.DevSize * ImageBytes];
            var devLabels = new int[settings.DevSize];
            for (var i = 0; i < settings.DevSize; i++)
            {
                train.Image(pick[i]).CopyTo(devImages.AsSpan(i * ImageBytes));
                devLabels[i] = train.Labels[pick[i]];
            }

            dev = new ImageSplit<T>(devImages, devLabels, mean, settings.BiasColumn);
        }

        return new Cifar10Dataset<T>(train, validation, test, dev, mean, directory, trainBuffer);
    }

    /// <summary>Throws <see cref="ArgumentException"/> when the split sizes do not fit the CIFAR-10 files.</summary>
    private static void Validate(DataSettings settings)
    {
        if (settings.TrainSize <= 0 || settings.ValSize < 0 || settings.TestSize < 0 || settings.DevSize < 0)
        {
            throw new ArgumentException($"split sizes must be positive (train) or non-negative (got train {settings.TrainSize}, validation {settings.ValSize}, test {settings.TestSize}, dev {settings.DevSize}).");
        }

        if (settings.TrainSize + settings.ValSize > TrainRecords)
        {
            throw new ArgumentException($"train + validation = {settings.TrainSize + settings.ValSize} exceeds the {TrainRecords} CIFAR-10 training images.");
        }

        if (settings.TestSize > TestRecords)
        {
            throw new ArgumentException($"test = {settings.TestSize} exceeds the {TestRecords} CIFAR-10 test images.");
        }

        if (settings.DevSize > settings.TrainSize)
        {
            throw new ArgumentException($"the dev subset ({settings.DevSize}) cannot be larger than the training split ({settings.TrainSize}).");
        }
    }

    /// <summary>Per-feature mean of <paramref name="count"/> images, summed exactly in integers.</summary>
    public static void MeanImage<T>(ReadOnlySpan<byte> images, int count, Span<T> mean)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Debug.Assert(images.Length == count * ImageBytes);
        var sums = new long[ImageBytes];
        var partial = new int[ImageBytes];
        for (var start = 0; start < count; start += 8_000_000 / 255)
        {
            Array.Clear(partial);
            var end = Math.Min(count, start + (8_000_000 / 255));
            for (var i = start; i < end; i++)
            {
                var image = images.Slice(i * ImageBytes, ImageBytes);
                for (var j = 0; j < ImageBytes; j++)
                {
                    partial[j] += image[j];
                }
            }

            for (var j = 0; j < ImageBytes; j++)
            {
                sums[j] += partial[j];
            }
        }

        for (var j = 0; j < ImageBytes; j++)
        {
            mean[j] = T.CreateTruncating((double)sums[j] / count);
        }
    }
}
