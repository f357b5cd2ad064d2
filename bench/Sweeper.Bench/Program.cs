using System.Diagnostics;
using System.Text.Json;
using Sweeper.Bench;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

// Benchmarks; each prints one JSON object per line.
//   bench [train] [--data DIR] [--seconds S] [--only a,b,c,d]   training-step throughput (single thread, float32, batch 200)
//   bench queries [--trials 100000] [--postgres URL|--no-postgres] [--keep DIR]   filtered, sorted, paged query latency
//   bench dashboard [--trials 100000] [--loads 10] [--no-postgres]   study page load in headless Chromium until table and charts are drawn
//   bench orchestration [--trials N] [--slots N] [--no-failover] [--postgres URL|--no-postgres] [--durable]
//                                                               runtime throughput (silo, grains, slots) with trials that do no training, and failover after kill -9 of a silo
//   bench samplers [--seeds 30] [--trials 100]                  best value found by random search and TPE on Branin and Hartmann-6 (quality, not speed)
if (args.FirstOrDefault() == "orchestration")
{
    await Orchestration.RunAsync(args.Skip(1).ToArray());
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

Blas.EnsureLoaded();
var sgemm = Measure.SgemmGflops(2048, seconds);
var blas = Blas.Selection;
var perCore = Measure.SgemmGflopsPerCore(2048); // every kernel that passes the self-check, on this machine
Emit(new
{
    bench = "sgemm",
    n = 2048,
    threads = 1,
    gflops = Math.Round(sgemm, 2),
    cpu = blas.Cpu.Model,
    core = blas.Core,
    core_origin = blas.Origin.ToString(),
    openblas_default = blas.OpenBlasDefault,
    best_passing_core = perCore.Count > 0 ? perCore.MaxBy(r => r.Value).Key : null,
    passing_cores_gflops = perCore,
    blas = Blas.Describe(),
});

var dataDir = DataLocator.Resolve(Arg("--data"));
Emit(Measure.MemoryInChildProcess(dataDir));
var load = Stopwatch.StartNew();
var data = Cifar10.Load<float>(dataDir);
load.Stop();
Emit(new { bench = "cifar10_load", seconds = Math.Round(load.Elapsed.TotalSeconds, 3), train = data.Train.Count, validation = data.Validation.Count, test = data.Test.Count });

// PyTorch 1.13, one thread, same OpenBLAS, on a machine whose sgemm rate was about 108 GFLOPS.
const double ReferenceSgemm = 108;
var cases = new (string Name, ModelSpec Spec, string Rule, double PyTorch, double Target)[]
{
    ("a_softmax_sgd", new ModelSpec { Kind = ModelKind.Softmax, HiddenSizes = [] }, "sgd", 1414, 1.3),
    ("b_two_layer_100_sgd", new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [100] }, "sgd", 339, 1.1),
    ("c_two_layer_500_sgd", new ModelSpec { Kind = ModelKind.TwoLayer, HiddenSizes = [500] }, "sgd", 70, 1.1),
    ("d_fc_5x100_bn_dropout_adam", new ModelSpec { HiddenSizes = [100, 100, 100, 100, 100], Normalization = Normalization.Batch, Dropout = 0.5 }, "adam", 133, 2.0),
};

foreach (var c in cases)
{
    if (only is not null && !only.Any(o => c.Name.StartsWith(o, StringComparison.Ordinal)))
    {
        continue;
    }

    var model = new FullyConnectedNet<float>(c.Spec, seed: 1);
    var solver = new Solver<float>(model, data.Train, data.Validation, new SolverOptions { UpdateRule = c.Rule, LearningRate = 1e-4, BatchSize = 200, Seed = 1 });
    var stepsPerSecond = Measure.Steps(solver, data.Train.Count, seconds);
    var flops = Measure.FlopsPerStep(c.Spec, 200);
    var gflops = flops * stepsPerSecond / 1e9;
    var reference = c.PyTorch * sgemm / ReferenceSgemm;
    Emit(new
    {
        bench = "train_step",
        @case = c.Name,
        steps_per_sec = Math.Round(stepsPerSecond, 1),
        gflops = Math.Round(gflops, 2),
        fraction_of_sgemm = Math.Round(gflops / sgemm, 3),
        pytorch_steps_per_sec_scaled = Math.Round(reference, 1),
        ratio_vs_pytorch = Math.Round(stepsPerSecond / reference, 3),
        target_ratio = c.Target,
        meets_target = stepsPerSecond / reference >= c.Target,
    });
}

static void Emit(object o) => Console.WriteLine(JsonSerializer.Serialize(o));
