using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;

namespace Sweeper.Engine.Tests;

public class Cifar10Tests
{
    [Fact]
    public void Loads_the_real_splits_with_the_published_labels_pixels_and_mean()
    {
        var data = Cifar10.Load<double>(TestData.CifarDir);
        Assert.Equal(49_000, data.Train.Count);
        Assert.Equal(1_000, data.Validation.Count);
        Assert.Equal(1_000, data.Test.Count);
        Assert.Equal([6, 9, 9, 4, 1, 1, 2, 7, 8, 3], data.Train.Labels[..10]);
        Assert.Equal([3, 8, 8, 0, 6, 6, 1, 6, 3, 1], data.Test.Labels[..10]);

        // Pixel (0,0) of training image 0 is RGB (59,62,63); channel-planar: offsets 0, 1024, 2048.
        var image = data.Train.Image(0);
        Assert.Equal([59, 62, 63], new[] { image[0], image[1024], image[2048] });
        var test = data.Test.Image(0);
        Assert.Equal([158, 112, 49], new[] { test[0], test[1024], test[2048] });

        // The published per-feature mean of the first 49,000 images (HWC order: R, G, B of pixel 0, then pixel 1, ...).
        double[] published = [130.64189796, 135.98173469, 132.47391837, 130.05569388, 135.34804082, 131.75402041, 130.96055102, 136.14328571, 132.47636735, 131.48467347];
        for (var k = 0; k < published.Length; k++)
        {
            int pixel = k / 3, channel = k % 3;
            Assert.InRange(data.Mean[(channel * 1024) + pixel] - published[k], -1e-8, 1e-8);
        }

        // Every split is mean-subtracted with the training mean.
        var row = new Kernels.Matrix<double>(1, 3072);
        data.Validation.Gather([0], row);
        Assert.Equal(data.Validation.Image(0)[5] - data.Mean[5], row[0, 5], 12);
    }

    [Fact]
    public void Class_counts_of_the_first_batch_match_the_official_file()
    {
        var data = Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 10_000, ValSize = 0, TestSize = 0 });
        var counts = data.Train.Labels.CountBy(l => l).OrderBy(kv => kv.Key).Select(kv => kv.Value);
        Assert.Equal([1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981], counts);
    }

    [Fact]
    public void Bias_column_dev_subset_and_custom_splits_are_honoured()
    {
        var data = Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 500, ValSize = 100, TestSize = 50, DevSize = 20, BiasColumn = true });
        Assert.Equal(3073, data.Train.Dim);
        Assert.Equal(100, data.Validation.Count);
        Assert.Equal(20, data.Dev!.Count);
        var m = data.Train.ToMatrix();
        Assert.All(Enumerable.Range(0, m.Rows), i => Assert.Equal(1f, m[i, 3072]));
        // The validation split continues right after the training split.
        var full = Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 600, ValSize = 0, TestSize = 0 });
        Assert.Equal(full.Train.Image(500).ToArray(), data.Validation.Image(0).ToArray());
    }

    [Fact]
    public void A_gather_in_chunks_puts_every_feature_where_the_layout_says_and_nothing_elsewhere()
    {
        // Column strips of 32 features for 5 rows (the input-layer kernels' layout), with the bias column: 3073
        // features, so the last strip holds one. Both kinds of split.
        var data = Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 300, ValSize = 0, TestSize = 0, BiasColumn = true });
        int[] indices = [299, 0, 17, 17, 150];
        var rows = new Kernels.Matrix<float>(indices.Length, data.Train.Dim);
        data.Train.Gather(indices, rows);
        var inMemory = new InMemorySplit<float>(data.Train.ToMatrix(), data.Train.Labels);
        foreach (var split in new IDataSplit<float>[] { data.Train, inMemory })
        {
            const int Rows = 8, Chunk = 32;
            var strips = (data.Train.Dim + Chunk - 1) / Chunk;
            var destination = new float[(strips * Rows * Chunk) + 1];
            destination.AsSpan().Fill(float.NaN);
            split.Gather(indices, destination, Chunk, Chunk, Rows * Chunk);
            var written = new bool[destination.Length];
            for (var i = 0; i < indices.Length; i++)
            {
                for (var k = 0; k < data.Train.Dim; k++)
                {
                    var at = (i * Chunk) + (k / Chunk * Rows * Chunk) + (k % Chunk);
                    Assert.Equal(rows[i, k], destination[at]);
                    written[at] = true;
                }
            }

            Assert.All(destination.Where((_, j) => !written[j]), v => Assert.True(float.IsNaN(v)));
            Assert.Throws<ArgumentException>(() => split.Gather(indices, destination.AsSpan(0, destination.Length - 200), Chunk, Chunk, Rows * Chunk));
            Assert.Throws<ArgumentException>(() => split.Gather(indices, destination, Chunk, 20, Rows * Chunk));
        }
    }

    [Fact]
    public void Float_rows_are_each_byte_minus_the_mean_exactly()
    {
        // Gathered rows of real images (with the bias column), against the scalar conversion element by element.
        var data = Cifar10.Load<float>(TestData.CifarDir, new DataSettings { TrainSize = 300, ValSize = 0, TestSize = 0, BiasColumn = true });
        int[] indices = [299, 0, 17, 17, 150];
        var rows = new Kernels.Matrix<float>(indices.Length, data.Train.Dim);
        data.Train.Gather(indices, rows);
        for (var i = 0; i < indices.Length; i++)
        {
            var image = data.Train.Image(indices[i]);
            for (var j = 0; j < Cifar10.ImageBytes; j++)
            {
                Assert.Equal(image[j] - data.Mean[j], rows[i, j]);
            }

            Assert.Equal(1f, rows[i, Cifar10.ImageBytes]);
        }

        // Lengths that leave tails after the 16- and 8-pixel steps.
        var rng = new Random(3);
        foreach (var length in new[] { 45, 7, 16, 3072 })
        {
            var pixels = new byte[length];
            rng.NextBytes(pixels);
            var mean = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 255)).ToArray();
            var destination = new float[length + 1];
            ImageSplit<float>.Preprocess(pixels, mean, destination);
            Assert.Equal(pixels.Select((p, j) => p - mean[j]).Append(0f), destination);
        }

        Assert.Throws<ArgumentException>(() => ImageSplit<float>.Preprocess(new byte[8], new float[8], new float[7]));
    }

    [Fact]
    public void A_truncated_file_fails_with_an_error_naming_it()
    {
        using var dir = new TempDir();
        var source = Path.Combine(TestData.CifarDir, "data_batch_1.bin");
        var bytes = File.ReadAllBytes(source);
        File.WriteAllBytes(Path.Combine(dir.Path, "data_batch_1.bin"), bytes[..(bytes.Length - 100)]);
        var ex = Assert.Throws<InvalidDataException>(() => Cifar10.Load<float>(dir.Path, new DataSettings { TrainSize = 900, ValSize = 100, TestSize = 0 }));
        Assert.Contains("data_batch_1.bin", ex.Message);
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void A_data_folder_with_a_cut_off_file_or_a_file_for_a_folder_is_refused_before_any_trial_reads_it()
    {
        // Every file at its full size (sparse: nothing written) except one cut off: the folder is refused as a whole,
        // naming that file, where before it was accepted and every trial of a study failed reading it.
        using var dir = new TempDir();
        foreach (var name in Cifar10.AllFiles)
        {
            using var file = File.Create(Path.Combine(dir.Path, name));
            file.SetLength(name == "data_batch_3.bin" ? 1000 : Cifar10.FileBytes);
        }

        var ex = Assert.Throws<InvalidDataException>(() => DataLocator.TryResolve(dir.Path));
        Assert.Contains("data_batch_3.bin is truncated (1000 bytes)", ex.Message);
        Assert.DoesNotContain("data_batch_1.bin", ex.Message);
        Assert.Contains("sweeper data download --force", ex.Message);

        File.Delete(Path.Combine(dir.Path, "data_batch_3.bin"));
        using (var file = File.Create(Path.Combine(dir.Path, "data_batch_3.bin")))
        {
            file.SetLength(Cifar10.FileBytes);
        }

        Assert.Equal(Path.GetFullPath(dir.Path), DataLocator.TryResolve(dir.Path)?.Directory);

        var notAFolder = Path.Combine(dir.Path, "data_batch_1.bin");
        Assert.Contains("is a file; give the CIFAR-10 folder", Assert.Throws<DirectoryNotFoundException>(() => DataLocator.TryResolve(notAFolder)).Message);

        // A folder a sweep file names is blamed on its key there, not on --data, which was not given.
        var missing = Path.Combine(dir.Path, "nowhere");
        Assert.Equal($"s.yaml: data.path: the CIFAR-10 folder {missing} does not exist.",
            Assert.Throws<DirectoryNotFoundException>(() => DataLocator.TryResolve(missing, "s.yaml: data.path")).Message);
    }

    [Fact]
    public void A_bad_label_fails_with_the_record_number()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(TestData.CifarDir, "data_batch_1.bin"));
        bytes[7 * Cifar10.RecordBytes] = 200;
        File.WriteAllBytes(Path.Combine(dir.Path, "data_batch_1.bin"), bytes);
        var ex = Assert.Throws<InvalidDataException>(() => Cifar10.Load<float>(dir.Path, new DataSettings { TrainSize = 900, ValSize = 100, TestSize = 0 }));
        Assert.Contains("record 7", ex.Message);
        Assert.Contains("label 200", ex.Message);
    }

    [Fact]
    public void A_missing_file_and_impossible_splits_are_reported()
    {
        using var dir = new TempDir();
        Assert.Throws<FileNotFoundException>(() => Cifar10.Load<float>(dir.Path));
        Assert.Throws<ArgumentException>(() => Cifar10.Load<float>(dir.Path, new DataSettings { TrainSize = 49_500, ValSize = 1_000 }));
        Assert.Throws<ArgumentException>(() => Cifar10.Load<float>(dir.Path, new DataSettings { TestSize = 10_001 }));
    }
}

/// <summary>A temporary folder removed at the end of a test.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sweeper-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }
}
