using System.Diagnostics;
using System.Text.Json;
using Sweeper.Bench;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

// Benchmarks; each prints one JSON object per line.
//   bench [train] [--data DIR] [--seconds S] [--only a,b,c,d] [--engines native,torch]
//                                                               training-step throughput of both engines side by side (single thread, float32, batch 200)
//   bench queries [--trials 100000] [--postgres URL|--no-postgres] [--keep DIR]   filtered, sorted, paged query latency
//   bench dashboard [--trials 100000] [--loads 10] [--no-postgres]   study page load in headless Chromium until table and charts are drawn
//   bench orchestration [--trials N] [--warmup N] [--slots N] [--no-failover] [--no-sqlite] [--postgres URL|--no-postgres] [--durable]
//                                                               runtime throughput (silo, grains, slots) with trials that do no training, and failover after kill -9 of a silo
//   bench samplers [--seeds 30] [--trials 100]                  best value found by random search and TPE on Branin and Hartmann-6 (quality, not speed)
//   bench compare-search [--spaces two_layer,fc] [--seeds 1,2,3] [--trials 20] [--epochs 10] [--train-size 49000] [--slots 2]
//                                                               random vs bayes vs bayes + hyperband on CIFAR-10 for the same budget of epochs (quality)
if (args.FirstOrDefault() == "orchestration")
{
    await Orchestration.RunAsync(args.Skip(1).ToArray());
    return;
}

if (args.FirstOrDefault() == "compare-search")
{
    await CompareSearch.RunAsync(args.Skip(1).ToArray());
    return;
}

if (args.FirstOrDefault() == "samplers")
{
    Samplers.Run(args.Skip(1).ToArray());
    return;
}

if (args.FirstOrDefault() == "queries")
{
    await Queries.RunAsync(args.Skip(1).ToArray());
    return;
}

if (args.FirstOrDefault() == "dashboard")
{
    await PageLoad.RunAsync(args.Skip(1).ToArray());
    return;
}

if (args.FirstOrDefault() == "silo")
{
    await Orchestration.SiloAsync(args[1]);
    return;
}

if (args.FirstOrDefault() == "memory-child")
{
    // Runs in a fresh process: a worker's footprint training (d) on the full training split.
    Measure.TrainingMemory(args[1]);
    return;
}

var argsList = args.SkipWhile(a => a == "train").ToList();
string? Arg(string name) => argsList.IndexOf(name) is var i and >= 0 && i + 1 < argsList.Count ? argsList[i + 1] : null;
var seconds = double.Parse(Arg("--seconds") ?? "4", System.Globalization.CultureInfo.InvariantCulture);
var only = Arg("--only")?.Split(',');

var engines = (Arg("--engines") ?? "native,torch").Split(',');

Blas.EnsureLoaded();
var sgemm = Measure.SgemmGflops(2048, seconds);
var blas = Blas.Selection;
var perCore = Measure.SgemmGflopsPerCore(2048); // every kernel that passes the self-check, on this machine
var bestSgemm = perCore.Count > 0 ? perCore.Values.Max() : sgemm;
Emit(new
{
    bench = "sgemm",
    n = 2048,
    threads = 1,
    gflops = Math.Round(sgemm, 2),
    cpu = blas.Cpu.Model,
    core = blas.Core,
    core_origin = blas.Origin.ToString(),
    openblas_coretype_in_environment = blas.EnvironmentValue,
    openblas_default = blas.OpenBlasDefault,
    best_passing_core = perCore.Count > 0 ? perCore.MaxBy(r => r.Value).Key : null,
    best_passing_gflops = Math.Round(bestSgemm, 2),
    passing_cores_gflops = perCore,
    blas = Blas.Describe(),
});

string dataDir;
try
{
    dataDir = DataLocator.Resolve(Arg("--data"));
}
catch (DirectoryNotFoundException e)
{
    Console.Error.WriteLine("bench: " + e.Message + " (or give --data DIR, or set SWEEPER_DATA)");
    Environment.Exit(2);
    return;
}

Emit(Measure.MemoryInChildProcess(dataDir));
var load = Stopwatch.StartNew();
var data = Cifar10.Load<float>(dataDir);
load.Stop();
Emit(new { bench = "cifar10_load", seconds = Math.Round(load.Elapsed.TotalSeconds, 3), train = data.Train.Count, validation = data.Validation.Count, test = data.Test.Count });

// Both engines side by side on this machine, one thread each: the native engine should take at least 1.3x the torch
// engine's steps per second, and on the two-layer nets (matrix products dominate) reach 0.85 of the best
// single-thread sgemm rate of the kernels that pass the self-check. For those two the selected kernel's sgemm rate
// is also measured between the native engine's windows of steps (sgemm_gflops_alongside), and the fraction of that:
// on a machine others use, the two see the same load.
const double TargetRatio = 1.3;
const double TargetFraction = 0.85;
var cases = new (string Name, ModelSpec Spec, string Rule, bool SgemmBound)[]
{
    ("a_softmax_sgd", new ModelSpec { Kind = ModelKind.Softmax, HiddenSizes = [] }, "sgd", false),
    ("b_two_layer_100_sgd", new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [100] }, "sgd", true),
    ("c_two_layer_500_sgd", new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [500] }, "sgd", true),
    ("d_fc_5x100_bn_dropout_adam", new ModelSpec { HiddenSizes = [100, 100, 100, 100, 100], Normalization = Normalization.Batch, Dropout = 0.5 }, "adam", false),
};

foreach (var c in cases)
{
    if (only is not null && !only.Any(o => c.Name.StartsWith(o, StringComparison.Ordinal)))
    {
        continue;
    }

    var setup = new TrainingSetup(c.Spec, new SolverOptions { UpdateRule = c.Rule, LearningRate = 1e-4, BatchSize = 200, Seed = 1 }, data.Train, data.Validation);
    var rates = new Dictionary<string, double>();
    var kernels = new Dictionary<string, string>();
    double? sgemmAlongside = null;
    foreach (var engine in engines)
    {
        using var backend = TrainingEngines.Create(engine, setup);
        if (engine == "native" && c.SgemmBound)
        {
            // The selected kernel's 2048 sgemm after every window of steps: a rate measured under the same load.
            rates[engine] = Measure.Steps(backend, data.Train.Count, seconds, () => Measure.OneSgemm(2048), out var alongside);
            sgemmAlongside = alongside;
        }
        else
        {
            rates[engine] = Measure.Steps(backend, data.Train.Count, seconds);
        }

        kernels[engine] = backend.Origin.Kernel;
    }

    var flops = Measure.FlopsPerStep(c.Spec, 200);
    double? native = rates.TryGetValue("native", out var n) ? n : null;
    double? torch = rates.TryGetValue("torch", out var t) ? t : null;
    double? ratio = native / torch;
    double? fraction = c.SgemmBound && native is { } r ? flops * r / 1e9 / bestSgemm : null;
    double? fractionAlongside = c.SgemmBound && native is { } r2 && sgemmAlongside is > 0 ? flops * r2 / 1e9 / sgemmAlongside : null;
    var inputKernels = setup.Model.HiddenSizes.Count > 0 && InputLayerGemm.Supported(setup.Model.HiddenSizes[0], setup.Model.InputDim);
    Emit(new
    {
        bench = "train_step",
        @case = c.Name,
        threads = 1,
        batch = 200,
        kernels,
        native_input_layer = setup.Model.HiddenSizes.Count == 0 ? null : inputKernels ? "InputLayerGemm (AVX-512)" : "OpenBLAS", // a linear model has no hidden input layer
        native_steps_per_sec = native is { } a ? Math.Round(a, 1) : (double?)null,
        torch_steps_per_sec = torch is { } b ? Math.Round(b, 1) : (double?)null,
        native_gflops = native is { } g ? Math.Round(flops * g / 1e9, 2) : (double?)null,
        ratio_native_vs_torch = ratio is { } q ? Math.Round(q, 3) : (double?)null,
        target_ratio = TargetRatio,
        meets_ratio_target = ratio >= TargetRatio,
        fraction_of_best_sgemm = fraction is { } f ? Math.Round(f, 3) : (double?)null,
        target_fraction = c.SgemmBound ? TargetFraction : (double?)null,
        meets_fraction_target = c.SgemmBound ? fraction >= TargetFraction : (bool?)null,
        sgemm_gflops_alongside = sgemmAlongside is { } sa ? Math.Round(sa, 2) : (double?)null,
        fraction_of_sgemm_alongside = fractionAlongside is { } fa ? Math.Round(fa, 3) : (double?)null,
    });
}

static void Emit(object o) => Console.WriteLine(JsonSerializer.Serialize(o));
