using Sweeper.Core;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

/// <summary><c>augment: flip</c>: images mirrored left to right, each with probability 1/2 under each epoch's key.</summary>
public class MirroredSplitTests
{
    private const int Channels = 2, Height = 3, Width = 4, ImageFeatures = Channels * Height * Width;

    /// <summary>Raw images (whole numbers), a mean image, and the split an image loader would give: raw - mean, then a bias column of 1.</summary>
    private static (float[][] Raw, float[] Mean, InMemorySplit<float> Split) Images(int n, int width = Width, int channels = Channels, int height = Height)
    {
        var rng = new Rng(5);
        var features = channels * height * width;
        var raw = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, features).Select(_ => (float)rng.NextInt(256)).ToArray()).ToArray();
        var mean = Enumerable.Range(0, features).Select(_ => (float)rng.NextInt(256) / 2).ToArray();
        var x = new Matrix<float>(n, features + 1);
        for (var i = 0; i < n; i++)
        {
            for (var k = 0; k < features; k++)
            {
                x[i, k] = raw[i][k] - mean[k];
            }

            x[i, features] = 1;
        }

        return (raw, mean, new InMemorySplit<float>(x, Enumerable.Range(0, n).Select(i => i % 10).ToArray()));
    }

    [Fact]
    public void A_mirrored_image_has_each_row_reversed_with_its_own_positions_mean_subtracted_and_the_rest_is_untouched()
    {
        var (raw, mean, split) = Images(60);
        var mirrored = new MirroredSplit<float>(split, Width, ImageFeatures, mean) { Key = 77 };
        var indices = Enumerable.Range(0, 60).Reverse().ToArray();
        var x = new Matrix<float>(60, split.Dim);
        mirrored.Gather(indices, x);

        var flipped = 0;
        for (var i = 0; i < indices.Length; i++)
        {
            var n = indices[i];
            var flip = mirrored.IsMirrored(n);
            flipped += flip ? 1 : 0;
            for (var c = 0; c < Channels; c++)
            {
                for (var y = 0; y < Height; y++)
                {
                    for (var col = 0; col < Width; col++)
                    {
                        var k = (((c * Height) + y) * Width) + col;
                        var source = (((c * Height) + y) * Width) + (flip ? Width - 1 - col : col);
                        Assert.Equal(raw[n][source] - mean[k], x[i, k]);
                    }
                }
            }

            Assert.Equal(1f, x[i, ImageFeatures]); // the bias column stays where it is
        }

        Assert.InRange(flipped, 15, 45); // some of each
        Assert.Equal(split.Labels, mirrored.Labels);
    }

    [Theory]
    [InlineData(16, 16, true)] // strips of 16 features: an image row of 32 spans two
    [InlineData(32, 32, true)] // strips of 32: one image row each
    [InlineData(97, 0, false)] // whole rows, padded
    public void Every_layout_a_gather_can_ask_for_gets_the_same_mirrored_examples(int chunk, int chunkMultiple, bool strips)
    {
        const int n = 7, width = 32;
        var (_, mean, split) = Images(n, width, channels: 3, height: 1); // 96 image features and the bias column
        var mirrored = new MirroredSplit<float>(split, width, 96, mean) { Key = 3 };
        var indices = new[] { 6, 0, 5, 1, 4, 2, 3 };
        var rows = new Matrix<float>(n, split.Dim);
        mirrored.Gather(indices, rows);
        Assert.Contains(indices, mirrored.IsMirrored);
        Assert.Contains(indices, i => !mirrored.IsMirrored(i));

        var stride = strips ? chunk : split.Dim + 3;
        var chunkStride = strips ? chunkMultiple * n : 0;
        var laidOut = new float[strips ? chunkStride * ((split.Dim + chunk - 1) / chunk) : stride * n];
        mirrored.Gather(indices, laidOut, stride, chunk, chunkStride);
        for (var i = 0; i < n; i++)
        {
            for (var k = 0; k < split.Dim; k++)
            {
                Assert.Equal(rows[i, k], laidOut[(i * stride) + (k / chunk * chunkStride) + (k % chunk)]);
            }
        }
    }

    [Fact]
    public void Each_key_mirrors_about_half_of_the_examples_and_another_key_an_independent_half()
    {
        var (_, _, split) = Images(1);
        var a = new MirroredSplit<float>(split, Width, ImageFeatures) { Key = 1 };
        var b = new MirroredSplit<float>(split, Width, ImageFeatures) { Key = 2 };
        var again = new MirroredSplit<float>(split, Width, ImageFeatures) { Key = 1 };
        const int n = 40_000;
        var inA = Enumerable.Range(0, n).Count(a.IsMirrored);
        var both = Enumerable.Range(0, n).Count(i => a.IsMirrored(i) && b.IsMirrored(i));
        Assert.InRange(inA / (double)n, 0.49, 0.51); // 1/2 within 4 standard deviations (0.0025 each)
        Assert.InRange(both / (double)n, 0.24, 0.26); // independent: a quarter in both
        Assert.True(Enumerable.Range(0, n).All(i => a.IsMirrored(i) == again.IsMirrored(i)));
    }

    [Fact]
    public void Mirroring_needs_rows_of_the_images_width_inside_the_features()
    {
        var (_, _, split) = Images(2);
        Assert.Throws<ArgumentException>(() => new MirroredSplit<float>(split, 5, ImageFeatures)); // 24 features are not rows of 5
        Assert.Throws<ArgumentException>(() => new MirroredSplit<float>(split, Width, 28)); // more image features than the split has
        var error = Assert.Throws<ArgumentException>(() => MirroredSplit<float>.Of(split));
        Assert.Contains("augment: flip", error.Message);
    }
}
