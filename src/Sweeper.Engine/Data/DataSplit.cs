using System.Numerics;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Data;

/// <summary>A labelled set of examples that can copy any rows into a batch matrix.</summary>
public interface IDataSplit<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    int Count { get; }

    /// <summary>Features per example.</summary>
    int Dim { get; }

    /// <summary>Class of each example, in [0, classes).</summary>
    int[] Labels { get; }

    /// <summary>Copies examples <paramref name="indices"/>[i] into row i of <paramref name="destination"/> (indices.Length x Dim).</summary>
    void Gather(ReadOnlySpan<int> indices, Matrix<T> destination);

    /// <summary>
    /// Copies examples <paramref name="indices"/>[i] into <paramref name="destination"/> cut in chunks: feature k of
    /// example i goes to destination[(i * stride) + (k / chunk * chunkStride) + (k % chunk)]. With chunk = Dim that is
    /// rows <paramref name="stride"/> elements apart; with chunk 32 and chunkStride = 32 n, column strips of n rows.
    /// Elements no feature lands on are left untouched. <paramref name="chunk"/> is Dim or a multiple of 16.
    /// </summary>
    void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride, int chunk, int chunkStride);

    /// <summary>A hint that these examples will be gathered soon (the next minibatch): their memory may be fetched meanwhile.</summary>
    void Prefetch(ReadOnlySpan<int> indices)
    {
    }
}

/// <summary>A split held as a ready matrix (tests, small synthetic sets).</summary>
public sealed class InMemorySplit<T> : IDataSplit<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Matrix<T> _x;

    public InMemorySplit(Matrix<T> x, int[] labels)
    {
        if (labels.Length != x.Rows)
        {
            throw new ArgumentException($"{x.Rows} examples but {labels.Length} labels.");
        }

        _x = x;
        Labels = labels;
    }

    public int Count => _x.Rows;

    public int Dim => _x.Cols;

    public int[] Labels { get; }

    public void Gather(ReadOnlySpan<int> indices, Matrix<T> destination) => Gather(indices, destination.Span, destination.Cols, Dim, 0);

    public void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride, int chunk, int chunkStride)
    {
        DataSplits.CheckDestination(indices.Length, Dim, destination.Length, stride, chunk, chunkStride);
        for (var i = 0; i < indices.Length; i++)
        {
            var row = _x.Row(indices[i]);
            for (var k = 0; k < Dim; k += chunk)
            {
                row.Slice(k, Math.Min(chunk, Dim - k)).CopyTo(destination[((i * stride) + (k / chunk * chunkStride))..]);
            }
        }
    }
}

internal static class DataSplits
{
    /// <summary>Throws unless <paramref name="rows"/> rows of <paramref name="dim"/> elements, laid out as <see cref="IDataSplit{T}.Gather(ReadOnlySpan{int}, Span{T}, int, int, int)"/> says, fit in <paramref name="length"/>.</summary>
    public static void CheckDestination(int rows, int dim, int length, int stride, int chunk, int chunkStride)
    {
        if (chunk <= 0 || (chunk < dim && (chunk % 16 != 0 || chunkStride < 0)) || (chunk >= dim && stride < dim) || stride <= 0)
        {
            throw new ArgumentException($"a gather of {dim} features takes chunks of all of them or of a multiple of 16 (got chunk {chunk}, stride {stride}, chunk stride {chunkStride}).");
        }

        var last = (dim - 1) / Math.Min(chunk, dim);
        var end = rows == 0 ? 0 : ((long)(rows - 1) * stride) + ((long)last * chunkStride) + Math.Min(chunk, dim - (last * chunk));
        if (end > length)
        {
            throw new ArgumentException($"destination holds {length} elements, fewer than {rows} rows of {dim} features laid out with stride {stride}, chunk {chunk} and chunk stride {chunkStride} need ({end}).");
        }
    }
}
