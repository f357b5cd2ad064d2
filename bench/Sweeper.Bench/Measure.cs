using System.Diagnostics;
using System.Text.Json;
using Sweeper.Core;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Bench;

internal static class Measure
{
    /// <summary>The <paramref name="q"/> quantile (0..1) of <paramref name="sorted"/> (ascending): the value at that rank, the last for q = 1.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * q))];

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

    /// <summary>
    /// The n x n sgemm rate on one thread of each kernel worth comparing on this machine
    /// (<see cref="BlasCoreSelection.Alternatives"/>) that passes the self-check, switching OpenBLAS to it and back:
    /// best of the runs within a quarter second after a warm-up, by the name of the kernel OpenBLAS ran.
    /// </summary>
    public static Dictionary<string, double> SgemmGflopsPerCore(int n)
    {
        var rates = new Dictionary<string, double>();
        foreach (var core in Blas.Selection.Alternatives)
        {
            var gflops = 0.0;
            if (Blas.TryWithCore(core, () => gflops = SgemmGflops(n, 0.5)) is { } ran)
            {
                rates[ran] = Math.Round(gflops, 2);
            }
        }

        return rates;
    }

    /// <summary>Training steps per second of either engine on random minibatches (with replacement across steps), after a warm-up.</summary>
    public static double Steps(ITrainingBackend solver, int trainCount, double seconds) => Steps(solver, trainCount, seconds, alongside: null);

    /// <summary>
    /// As <see cref="Steps(ITrainingBackend, int, double)"/>, and after every one-second window of steps one run of
    /// <paramref name="alongside"/> (a reference measure such as an sgemm rate), best of its runs in
    /// <paramref name="alongsideBest"/>: both see the same share of a machine that others use, so their ratio means
    /// more than either number.
    /// </summary>
    public static double Steps(ITrainingBackend solver, int trainCount, double seconds, Func<double>? alongside, out double alongsideBest)
    {
        var best = 0.0;
        var steps = Steps(solver, trainCount, seconds, alongside is null ? null : () => best = Math.Max(best, alongside()));
        alongsideBest = best;
        return steps;
    }

    private static double Steps(ITrainingBackend solver, int trainCount, double seconds, Action? alongside)
    {
        var rng = new Rng(7);
        var batch = new int[solver.Setup.Options.BatchSize];
        var next = new int[solver.Setup.Options.BatchSize];
        void Draw(int[] b)
        {
            for (var i = 0; i < b.Length; i++)
            {
                b[i] = rng.NextInt(trainCount);
            }
        }

        Draw(next);
        void One()
        {
            (batch, next) = (next, batch);
            Draw(next); // as the Solver does: the next minibatch is known and prefetched during this step
            solver.Step(batch, next);
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
            alongside?.Invoke();
        }

        return best;
    }

    /// <summary>One n x n sgemm on one thread, in GFLOPS (the operands are made once per size and kept).</summary>
    public static double OneSgemm(int n)
    {
        if (_square?.Length != n * n)
        {
            _square = new float[n * n];
            new Rng(1).FillGaussian<float>(_square, 1);
            _product = new float[n * n];
        }

        var sw = Stopwatch.StartNew();
        Blas.Gemm<float>(false, false, n, n, n, 1f, _square, n, _square, n, 0f, _product, n);
        return 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9;
    }

    private static float[]? _square;
    private static float[]? _product;

    /// <summary>Peak resident memory (VmHWM) of this process in MiB.</summary>
    public static double PeakResidentMegabytes()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
    }

    /// <summary>One epoch of (d) on the full 49,000-image split with the Solver, then the peak RSS, as JSON on stdout.</summary>
    public static void TrainingMemory(string dataDir)
    {
        using var data = Cifar10.Load<float>(dataDir);
        var spec = new ModelSpec { HiddenSizes = [100, 100, 100, 100, 100], Normalization = Normalization.Batch, Dropout = 0.5 };
        var solver = new Solver<float>(new FullyConnectedNet<float>(spec, 1), data.Train, data.Validation,
            new SolverOptions { UpdateRule = "adam", LearningRate = 1e-3, BatchSize = 200, Epochs = 1, Seed = 1 });
        var checkpoint = new MemoryStream();
        var result = solver.Train(_ =>
        {
            solver.SaveCheckpoint(checkpoint); // a worker also checkpoints every epoch
            return true;
        });
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "worker_memory",
            @case = "d_fc_5x100_bn_dropout_adam_full_dataset",
            epochs = result.Epochs,
            peak_rss_mb = Math.Round(PeakResidentMegabytes(), 1),
            target_mb = 512,
            meets_target = PeakResidentMegabytes() < 512,
        }));
    }

    /// <summary>Runs <see cref="TrainingMemory"/> in a fresh copy of this program so nothing measured here inflates it.</summary>
    public static JsonElement MemoryInChildProcess(string dataDir)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            info.ArgumentList.Add(typeof(Measure).Assembly.Location);
        }

        info.ArgumentList.Add("memory-child");
        info.ArgumentList.Add(dataDir);
        using var child = Process.Start(info)!;
        var output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        return JsonDocument.Parse(output.Trim().Split('\n')[^1]).RootElement.Clone();
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
