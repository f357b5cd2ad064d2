using System.Numerics;

namespace Sweeper.Engine.Kernels;

/// <summary>
/// A dense row-major matrix of <see cref="Rows"/> examples by <see cref="Cols"/> features.
/// <see cref="Shape"/> keeps the per-example shape of inputs such as images ((N, 3, 32, 32) is stored as N x 3072);
/// layers flatten every example to one row.
/// </summary>
public sealed class Matrix<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public Matrix(int rows, int cols)
        : this(new T[checked(rows * cols)], rows, cols)
    {
    }

    public Matrix(T[] data, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (data.Length != rows * cols)
        {
            throw new ArgumentException($"A {rows} x {cols} matrix needs {rows * cols} elements, not {data.Length}.", nameof(data));
        }

        Data = data;
        Rows = rows;
        Cols = cols;
        Shape = [rows, cols];
    }

    /// <summary>Makes a matrix of the given shape (N, d1, ..., dk), stored as N x (d1 * ... * dk).</summary>
    public static Matrix<T> OfShape(params int[] shape)
    {
        if (shape.Length < 1)
        {
            throw new ArgumentException("A shape needs at least one dimension.", nameof(shape));
        }

        var cols = 1;
        for (var i = 1; i < shape.Length; i++)
        {
            cols = checked(cols * shape[i]);
        }

        return new Matrix<T>(shape[0], cols) { Shape = (int[])shape.Clone() };
    }

    public int Rows { get; }

    public int Cols { get; }

    /// <summary>The logical shape, (Rows, Cols) unless made with <see cref="OfShape"/>.</summary>
    public int[] Shape { get; private init; }

    /// <summary>The elements, row after row.</summary>
    public T[] Data { get; }

    public Span<T> Span => Data;

    public Span<T> Row(int row) => Data.AsSpan(row * Cols, Cols);

    public ref T this[int row, int col] => ref Data[(row * Cols) + col];

    /// <summary>A copy with the same shape.</summary>
    public Matrix<T> Clone() => new((T[])Data.Clone(), Rows, Cols) { Shape = (int[])Shape.Clone() };

    /// <summary>A new matrix of the same shape, filled with zeros.</summary>
    public Matrix<T> ZerosLike() => new(new T[Data.Length], Rows, Cols) { Shape = (int[])Shape.Clone() };

    public static Matrix<T> FromRows(T[][] rows)
    {
        var m = new Matrix<T>(rows.Length, rows.Length == 0 ? 0 : rows[0].Length);
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i].CopyTo(m.Row(i));
        }

        return m;
    }
}
