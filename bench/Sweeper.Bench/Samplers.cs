using System.Globalization;
using System.Text.Json;
using Sweeper.Core.Search;

namespace Sweeper.Bench;

/// <summary>
/// Sampler quality, not speed: on Branin and Hartmann-6, S seeds (default 30) of a sequential study of N trials
/// (default 100) with random search, TPE with its defaults (Optuna 4.9's), and TPE with the prior's centre among
/// the neighbours that set kernel widths (Optuna before 4.9), and multivariate TPE; one JSON line per function and sampler with the median and mean of
/// the best value found. bench/optuna_compare.py prints the same lines for Optuna's samplers.
/// </summary>
public static class Samplers
{
    public static void Run(string[] args)
    {
        string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var seeds = int.Parse(Arg("--seeds") ?? "30", CultureInfo.InvariantCulture);
        var trials = int.Parse(Arg("--trials") ?? "100", CultureInfo.InvariantCulture);
        foreach (var f in new[] { SamplerBenchmark.Branin, SamplerBenchmark.Hartmann6 })
        {
            foreach (var (name, best) in new (string, Func<ulong, double>)[]
            {
                ("random", seed => SamplerBenchmark.BestRandom(f, seed, trials)),
                ("tpe", seed => SamplerBenchmark.BestTpe(f, seed, trials)),
                ("tpe_prior_among_neighbours", seed => SamplerBenchmark.BestTpe(f, seed, trials, new TpeOptions { PriorAmongNeighbours = true })),
                ("tpe_multivariate", seed => SamplerBenchmark.BestTpe(f, seed, trials, new TpeOptions { Multivariate = true })),
            })
            {
                var values = Enumerable.Range(0, seeds).Select(s => best((ulong)s)).ToList();
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    bench = "samplers",
                    function = f.Name,
                    sampler = name,
                    implementation = "sweeper",
                    seeds,
                    trials,
                    optimum = f.Minimum,
                    median_best = Math.Round(SamplerBenchmark.Median(values), 6),
                    mean_best = Math.Round(values.Average(), 6),
                    worst_best = Math.Round(values.Max(), 6),
                }));
            }
        }
    }
}
