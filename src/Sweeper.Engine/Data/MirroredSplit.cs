using System.Numerics;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Data;

/// <summary>
/// Data augmentation (<c>augment: flip</c>): a training split of images whose examples are each mirrored left to
/// right with probability 1/2, drawn afresh every epoch. Whether example i is mirrored is a pure function of i and the
/// epoch's <see cref="Key"/>, which the training loop draws from its shuffle generator at the start of each epoch: a run
/// is deterministic for its seed, and a run resumed from a checkpoint (which holds that generator) mirrors exactly what
/// an uninterrupted one would. Labels are unchanged.
/// The images are channel-planar rows of <c>width</c> pixels (CIFAR-10: 3 x 32 rows of 32); features past the
/// image (a bias column) are left as they are. When the original split subtracts a per-feature mean, a mirrored
/// example still has the mean of its own position subtracted (not the mirrored position's).
/// </summary>
public sealed class MirroredSplit<T> : IDataSplit<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int _width;
    private readonly int _imageFeatures;

    /// <summary>What to add to a mirrored feature k so that it has mean[k] rather than mean[mirror(k)] subtracted; null when no mean is subtracted.</summary>
    private readonly T[]? _correction;

    public MirroredSplit(IDataSplit<T> original, int width, int imageFeatures, ReadOnlySpan<T> subtractedMean = default)
    {
        if (width < 2 || imageFeatures % width != 0 || imageFeatures > original.Dim)
        {
            throw new ArgumentException($"mirroring needs images of rows {width} pixels wide within the {original.Dim} features (got {imageFeatures} image features).");
        }

        Original = original;
        _width = width;
        _imageFeatures = imageFeatures;
        if (!subtractedMean.IsEmpty)
        {
            if (subtractedMean.Length < imageFeatures)
            {
                throw new ArgumentException($"the subtracted mean has {subtractedMean.Length} features, fewer than the {imageFeatures} of an image.");
            }

            _correction = new T[imageFeatures];
            for (var k = 0; k < imageFeatures; k++)
            {
                _correction[k] = subtractedMean[Mirror(k)] - subtractedMean[k];
            }
        }
    }

    /// <summary>
    /// The training split of CIFAR-10 images mirrored as above: a split of the official binary format
    /// (<see cref="ImageSplit{T}"/>), whose mean image is known. Throws <see cref="ArgumentException"/> for any other split.
    /// </summary>
    public static MirroredSplit<T> Of(IDataSplit<T> split) => split switch
    {
        ImageSplit<T> images => new MirroredSplit<T>(images, Cifar10.Width, Cifar10.ImageBytes, images.MeanImage),
        MirroredSplit<T> mirrored => mirrored,
        _ => throw new ArgumentException("augment: flip mirrors images; this training data is not CIFAR-10 images."),
    };

    /// <summary>The split without augmentation (train accuracy is measured on it).</summary>
    public IDataSplit<T> Original { get; }

    /// <summary>The current epoch's draw: each key mirrors another half of the examples.</summary>
    public ulong Key { get; set; }

    public int Count => Original.Count;

    public int Dim => Original.Dim;

    public int[] Labels => Original.Labels;

    /// <summary>Whether example <paramref name="index"/> is mirrored under the current <see cref="Key"/>.</summary>
    public bool IsMirrored(int index)
    {
        // SplitMix64's finaliser over (key, index): every bit of each reaches the lowest bit.
        var z = Key ^ ((ulong)(uint)index * 0xD1B54A32D192ED03UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z & 1) != 0;
    }

    public void Gather(ReadOnlySpan<int> indices, Matrix<T> destination)
    {
        Original.Gather(indices, destination);
        MirrorChosen(indices, destination.Span, destination.Cols, Dim, 0);
    }

    public void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride, int chunk, int chunkStride)
    {
        Original.Gather(indices, destination, stride, chunk, chunkStride);
        MirrorChosen(indices, destination, stride, chunk, chunkStride);
    }

    /// <summary>Mirrors, in place, the gathered examples that the current <see cref="Key"/> chooses (layout as <see cref="IDataSplit{T}.Gather(ReadOnlySpan{int}, Span{T}, int, int, int)"/> says).</summary>
    private void MirrorChosen(ReadOnlySpan<int> indices, Span<T> destination, int stride, int chunk, int chunkStride)
    {
        for (var i = 0; i < indices.Length; i++)
        {
            if (IsMirrored(indices[i]))
            {
                MirrorRow(destination[(i * stride)..], chunk, chunkStride);
            }
        }
    }

    public void Prefetch(ReadOnlySpan<int> indices) => Original.Prefetch(indices);

    /// <summary>The feature that mirroring moves to feature <paramref name="k"/> (and back).</summary>
    private int Mirror(int k) => k - (k % _width) + (_width - 1 - (k % _width));

    /// <summary>Mirrors one gathered example in place: feature k sits at (k / chunk) * chunkStride + k % chunk of <paramref name="row"/>.</summary>
    private void MirrorRow(Span<T> row, int chunk, int chunkStride)
    {
        int At(int k) => chunk >= Dim ? k : ((k / chunk) * chunkStride) + (k % chunk);
        for (var start = 0; start < _imageFeatures; start += _width)
        {
            for (int left = start, right = start + _width - 1; left < right; left++, right--)
            {
                int a = At(left), b = At(right);
                (row[a], row[b]) = (row[b], row[a]);
            }
        }

        if (_correction is not null)
        {
            for (var k = 0; k < _imageFeatures; k++)
            {
                row[At(k)] += _correction[k];
            }
        }
    }
}
