using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>A test function to minimize: its name, its box (one (low, high) per coordinate) and its known minimum.</summary>
public sealed record TestFunction(string Name, IReadOnlyList<(double Low, double High)> Box, double Minimum, Func<double[], double> Evaluate);

/// <summary>
/// Sampler quality on standard test functions, shared by the tests and <c>bench samplers</c>: a study minimizing the
/// function, one trial after another, with random search (<see cref="RandomSampler"/>) or TPE; the result is the best
/// value found. Python's <c>bench/optuna_compare.py</c> runs the same functions with Optuna's samplers.
/// </summary>
public static class SamplerBenchmark
{
    /// <summary>Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at three points.</summary>
    public static readonly TestFunction Branin = new("branin", [(-5, 10), (0, 15)], 0.39788735772973816, x =>
    {
        const double A = 1, C = 5 / Math.PI, R = 6, S = 10;
        const double B = 5.1 / (4 * Math.PI * Math.PI), T = 1 / (8 * Math.PI);
        var u = x[1] - (B * x[0] * x[0]) + (C * x[0]) - R;
        return (A * u * u) + (S * (1 - T) * Math.Cos(x[0])) + S;
    });

    /// <summary>Hartmann-6 on [0, 1]^6; minimum -3.32237.</summary>
    public static readonly TestFunction Hartmann6 = new("hartmann6", [.. Enumerable.Repeat((0.0, 1.0), 6)], -3.3223680114155147, x =>
    {
        double[] alpha = [1.0, 1.2, 3.0, 3.2];
        double[,] a =
        {
            { 10, 3, 17, 3.5, 1.7, 8 },
            { 0.05, 10, 17, 0.1, 8, 14 },
            { 3, 3.5, 1.7, 10, 17, 8 },
            { 17, 8, 0.05, 10, 0.1, 14 },
        };
        double[,] p =
        {
            { 0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886 },
            { 0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991 },
            { 0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650 },
            { 0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381 },
        };
        var sum = 0.0;
        for (var i = 0; i < 4; i++)
        {
            var inner = 0.0;
            for (var j = 0; j < 6; j++)
            {
                var d = x[j] - p[i, j];
                inner += a[i, j] * d * d;
            }

            sum += alpha[i] * Math.Exp(-inner);
        }

        return -sum;
    });

    /// <summary>The sweep of a function's box: one uniform parameter x0, x1, ... per coordinate, minimized.</summary>
    public static SweepDefinition Sweep(TestFunction f, ulong seed) => new()
    {
        Name = f.Name,
        Method = "bayes",
        Goal = "minimize",
        Parameters = Enumerable.Range(0, f.Box.Count).ToDictionary(i => $"x{i}", i => (ParameterDomain)new Distribution(Distribution.Uniform, f.Box[i].Low, f.Box[i].High, null)),
        Seed = seed,
        SourceText = "",
    };

    /// <summary>The best value of a sequential study of <paramref name="trials"/> trials with random search.</summary>
    public static double BestRandom(TestFunction f, ulong seed, int trials)
    {
        var sweep = Sweep(f, seed);
        return new RandomSampler().Propose(sweep, trials).Min(t => f.Evaluate(Point(f, t.Parameters)));
    }

    /// <summary>The best value of a sequential study of <paramref name="trials"/> trials with TPE (each proposal sees every earlier result).</summary>
    public static double BestTpe(TestFunction f, ulong seed, int trials, TpeOptions? options = null)
    {
        var sweep = Sweep(f, seed);
        var space = ParameterSpace.Of(sweep);
        var tpe = new TpeSampler(options);
        var history = new List<Observation>();
        var best = double.PositiveInfinity;
        for (var n = 0; n < trials; n++)
        {
            var point = tpe.Propose(space, history, n, seed, Goal.Minimize);
            var y = f.Evaluate(Point(f, point));
            history.Add(new Observation(n, point, TrialOutcome.Complete, y));
            best = Math.Min(best, y);
        }

        return best;
    }

    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static double[] Point(TestFunction f, IReadOnlyDictionary<string, object> parameters) =>
        [.. Enumerable.Range(0, f.Box.Count).Select(i => ParamValue.AsDouble(parameters[$"x{i}"]))];
}
