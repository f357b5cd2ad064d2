using System.Numerics;

namespace Sweeper.Engine.Models;

/// <summary>A trainable array with its gradient. Names follow cs231n: W1, b1, gamma1, beta1, ...</summary>
public sealed class Parameter<T>(string name, int[] shape, bool regularized)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public string Name { get; } = name;

    public int[] Shape { get; } = shape;

    public T[] Value { get; } = new T[shape.Aggregate(1, (a, b) => checked(a * b))];

    /// <summary>d loss / d value, written by the model's loss.</summary>
    public T[] Grad { get; } = new T[shape.Aggregate(1, (a, b) => checked(a * b))];

    /// <summary>True for weights (penalised by L2), false for biases, gamma and beta.</summary>
    public bool Regularized { get; } = regularized;
}

/// <summary>Model state that is not trained by gradient (batchnorm running mean and variance).</summary>
public sealed record NamedBuffer<T>(string Name, T[] Value)
    where T : unmanaged, IFloatingPointIeee754<T>;
