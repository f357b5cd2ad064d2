using System.Diagnostics;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Bench;

internal static class Measure
{
    /// <summary>Large square sgemm rate on one thread, best of repeated runs within the time budget.</summary>
    public static double SgemmGflops(int n, double seconds)
    {
        var a = new float[n * n];
        var b = new float[n * n];
        var c = new float[n * n];
        new Rng(1).FillGaussian<float>(a, 1);
        new Rng(2).FillGaussian<float>(b, 1);
        Blas.Gemm<float>(false, false, n, n, n, 1f, a, n, b, n, 0f, c, n);
        var best = 0.0;
        var total = Stopwatch.StartNew();
        do
        {
            var sw = Stopwatch.StartNew();
            Blas.Gemm<float>(false, false, n, n, n, 1f, a, n, b, n, 0f, c, n);
            best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
        }
        while (total.Elapsed.TotalSeconds < seconds / 2);
        return best;
    }

    /// <summary>Training steps per second on random minibatches (with replacement across steps), after a warm-up.</summary>
    public static double Steps(Solver<float> solver, int trainCount, double seconds)
    {
        var rng = new Rng(7);
        var batch = new int[solver.Options.BatchSize];
        void One()
        {
            for (var i = 0; i < batch.Length; i++)
            {
                batch[i] = rng.NextInt(trainCount);
            }

            solver.Step(batch);
        }

        for (var i = 0; i < 30; i++)
        {
            One();
        }

        // Best of several one-second windows: the least disturbed measure of a noisy machine.
        var best = 0.0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            var steps = 0;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalSeconds < 1)
            {
                One();
                steps++;
            }

            best = Math.Max(best, steps / sw.Elapsed.TotalSeconds);
        }

        return best;
    }

    /// <summary>
    /// Matrix-product FLOPs of one step: forward x W and backward x^T dout for every layer, and dout W^T for every
    /// layer but the first (its input needs no gradient).
    /// </summary>
    public static double FlopsPerStep(ModelSpec spec, int batch)
    {
        int[] dims = [spec.InputDim, .. spec.HiddenSizes, spec.NumClasses];
        var flops = 0.0;
        for (var l = 0; l + 1 < dims.Length; l++)
        {
            var product = 2.0 * batch * dims[l] * dims[l + 1];
            flops += product * (l == 0 ? 2 : 3);
        }

        return flops;
    }
}
