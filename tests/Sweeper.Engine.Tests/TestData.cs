using Sweeper.Core;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

/// <summary>Where the real CIFAR-10 copy is, and small random inputs for gradient checks.</summary>
public static class TestData
{
    private static readonly Lazy<string> _cifarDir = new(FindCifar);

    /// <summary>
    /// The real CIFAR-10 folder: $SWEEPER_DATA if set, else ../shared/data/cifar-10-batches-bin above the checkout.
    /// Throws (the test fails, loudly) when neither exists: these tests never skip silently.
    /// </summary>
    public static string CifarDir => _cifarDir.Value;

    private static string FindCifar()
    {
        var env = Environment.GetEnvironmentVariable("SWEEPER_DATA");
        if (!string.IsNullOrEmpty(env))
        {
            return Directory.Exists(env) ? env : throw new DirectoryNotFoundException($"SWEEPER_DATA={env} does not exist.");
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data", "cifar-10-batches-bin");
            if (File.Exists(Path.Combine(candidate, "data_batch_1.bin")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(
            "The real CIFAR-10 copy was not found: set SWEEPER_DATA or keep ../shared/data/cifar-10-batches-bin beside the checkout. These tests need it and do not skip.");
    }

    /// <summary>Asserts the cs231n relative error of two gradients is below <paramref name="bound"/>, printing it otherwise.</summary>
    public static void AssertGradient(ReadOnlySpan<double> analytic, ReadOnlySpan<double> numerical, double bound, string what)
    {
        var error = Training.GradientCheck.RelativeError(analytic, numerical);
        Assert.True(error < bound, $"{what}: relative error {error:e2} is not below {bound:e0}");
    }

    public static Matrix<double> Randn(Rng rng, params int[] shape)
    {
        var m = Matrix<double>.OfShape(shape);
        rng.FillGaussian<double>(m.Span, 1.0);
        return m;
    }

    public static double[] Randn(Rng rng, int n, double std = 1.0)
    {
        var a = new double[n];
        rng.FillGaussian<double>(a, std);
        return a;
    }

    public static int[] Labels(Rng rng, int n, int classes) => Enumerable.Range(0, n).Select(_ => rng.NextInt(classes)).ToArray();
}
