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
    /// Copies examples <paramref name="indices"/>[i] into destination[(i * stride)..][..Dim]: rows
    /// <paramref name="stride"/> (at least <see cref="Dim"/>) elements apart, the elements between rows untouched.
    /// </summary>
    void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride);

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

    public void Gather(ReadOnlySpan<int> indices, Matrix<T> destination) => Gather(indices, destination.Span, destination.Cols);

    public void Gather(ReadOnlySpan<int> indices, Span<T> destination, int stride)
    {
        DataSplits.CheckDestination(indices.Length, Dim, destination.Length, stride);
        for (var i = 0; i < indices.Length; i++)
        {
            _x.Row(indices[i]).CopyTo(destination.Slice(i * stride, Dim));
        }
    }
}

internal static class DataSplits
{
    /// <summary>Throws unless <paramref name="rows"/> rows of <paramref name="dim"/> elements, <paramref name="stride"/> apart, fit in <paramref name="length"/>.</summary>
    public static void CheckDestination(int rows, int dim, int length, int stride)
    {
        if (stride < dim || (rows > 0 && ((long)(rows - 1) * stride) + dim > length))
        {
            throw new ArgumentException($"destination must hold {rows} rows of {dim} elements {stride} apart, and holds {length} elements.");
        }
    }
}
