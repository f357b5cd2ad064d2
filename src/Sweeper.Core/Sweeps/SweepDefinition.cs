using System.Globalization;

namespace Sweeper.Core.Sweeps;

/// <summary>A parameter value: a double, a long, a string or a bool.</summary>
public static class ParamValue
{
    public static string Format(object value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => ((double)f).ToString("R", CultureInfo.InvariantCulture),
        long or int => Convert.ToString(value, CultureInfo.InvariantCulture)!,
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "",
    };

    public static double AsDouble(object value) => value switch
    {
        double d => d,
        long l => l,
        int i => i,
        _ => throw new InvalidCastException($"'{value}' is not a number."),
    };
}

/// <summary>How one parameter's values are chosen.</summary>
public abstract record ParameterDomain
{
    /// <summary>Line of the parameter in the sweep file (for errors found later).</summary>
    public int Line { get; init; }

    /// <summary>Column of the parameter's key in the sweep file (for errors found later).</summary>
    public int Column { get; init; }

    /// <summary>How many values a grid enumerates, counted without enumerating them; null when the domain is continuous.</summary>
    public abstract long? GridCount { get; }

    /// <summary>The values a grid enumerates; null when the domain is continuous.</summary>
    public abstract IReadOnlyList<object>? GridValues { get; }

    /// <summary>Whether the grid enumerates a value that <see cref="ParamValue.Format"/> writes as <paramref name="formatted"/> (without enumerating).</summary>
    public abstract bool GridContains(string formatted);

    public abstract object Sample(Rng rng);
}

/// <summary><c>value: x</c>.</summary>
public sealed record FixedValue(object Value) : ParameterDomain
{
    public override long? GridCount => 1;

    public override IReadOnlyList<object> GridValues => [Value];

    public override bool GridContains(string formatted) => ParamValue.Format(Value) == formatted;

    public override object Sample(Rng rng) => Value;
}

/// <summary>
/// <c>values: [a, b, c]</c> (W&amp;B's <c>categorical</c>): a grid axis, or a choice for random search, uniform unless
/// <see cref="Probabilities"/> (W&amp;B's <c>probabilities:</c>, one per value, summing to 1) weights it.
/// </summary>
public sealed record ValueList(IReadOnlyList<object> Values) : ParameterDomain
{
    /// <summary>Weights of the values for random search (null: uniform). A grid refuses them, as W&amp;B's does.</summary>
    public IReadOnlyList<double>? Probabilities { get; init; }

    /// <summary>W&amp;B's name of this kind of domain.</summary>
    public static string Kind => Distribution.Categorical;

    public override long? GridCount => Values.Count;

    public override IReadOnlyList<object> GridValues => Values;

    public override bool GridContains(string formatted) => Values.Any(v => ParamValue.Format(v) == formatted);

    public override object Sample(Rng rng)
    {
        if (Probabilities is not { } p)
        {
            return Values[rng.NextInt(Values.Count)];
        }

        // W&B's rule: the first value whose cumulative probability exceeds the draw.
        var u = rng.NextDouble();
        var cumulative = 0.0;
        for (var i = 0; i < Values.Count; i++)
        {
            cumulative += p[i];
            if (u < cumulative)
            {
                return Values[i];
            }
        }

        return Values[^1];
    }
}

/// <summary>
/// A distribution, named as W&amp;B names it (<see cref="Kind"/>), with W&amp;B's meaning (u is uniform on [0, 1), z standard normal):
/// <list type="bullet">
/// <item><c>uniform</c>: min + u (max - min). <c>int_uniform</c>: a whole number in [min, max], every q-th from min.</item>
/// <item><c>log_uniform</c>: exp(U(min, max)): min and max are natural-log EXPONENTS. <c>log_uniform_values</c>: log-uniform
/// between the values min and max. <c>inv_log_uniform</c>: exp(-U(min, max)). <c>inv_log_uniform_values</c>:
/// exp(-U(-ln max, -ln min)), which is log-uniform between the values min and max.</item>
/// <item><c>q_uniform</c>, <c>q_log_uniform</c>, <c>q_log_uniform_values</c>: the draw of the unquantized kind rounded to
/// the nearest multiple of q (default 1; halves to even, as numpy rounds), not clamped.</item>
/// <item><c>normal</c>: mu + sigma z. <c>log_normal</c>: exp(mu + sigma z). <c>q_normal</c>, <c>q_log_normal</c>: rounded to q.</item>
/// </list>
/// A q written as a whole number makes the q_ kinds draw whole numbers (as W&amp;B's do for an integer q). Our own
/// extension: <c>q</c> on <c>uniform</c>, <c>log_uniform_values</c> and <c>int_uniform</c> rounds to the nearest
/// multiple of q within [min, max] (clamped). int_uniform's bounds lie within ±2^53 and it draws with 64-bit
/// arithmetic over the whole range. <see cref="Min"/> and <see cref="Max"/> are 0 for the normal kinds.
/// </summary>
public sealed record Distribution(string Kind, double Min, double Max, double? Q) : ParameterDomain
{
    public const string Uniform = "uniform";
    public const string IntUniform = "int_uniform";
    public const string LogUniform = "log_uniform";
    public const string LogUniformValues = "log_uniform_values";
    public const string InvLogUniform = "inv_log_uniform";
    public const string InvLogUniformValues = "inv_log_uniform_values";
    public const string QUniform = "q_uniform";
    public const string QLogUniform = "q_log_uniform";
    public const string QLogUniformValues = "q_log_uniform_values";
    public const string Normal = "normal";
    public const string QNormal = "q_normal";
    public const string LogNormal = "log_normal";
    public const string QLogNormal = "q_log_normal";

    /// <summary>W&amp;B's names for <c>values:</c> (<see cref="ValueList"/>) and <c>value:</c> (<see cref="FixedValue"/>).</summary>
    public const string Categorical = "categorical";

    public const string Constant = "constant";

    /// <summary>2^53: the largest magnitude below which a double holds every whole number, and so the bound on int_uniform's min and max.</summary>
    public const double MaxExactInteger = 9007199254740992.0;

    /// <summary>How far from mu a normal draw can land: Box-Muller on 53-bit uniforms never passes 8.58 sigma.</summary>
    public const double GaussianReach = 9.0;

    /// <summary>The kinds this record draws.</summary>
    public static readonly IReadOnlyList<string> Kinds =
        [Uniform, IntUniform, LogUniform, LogUniformValues, InvLogUniform, InvLogUniformValues, QUniform, QLogUniform, QLogUniformValues, Normal, QNormal, LogNormal, QLogNormal];

    /// <summary>Every value <c>distribution:</c> may take.</summary>
    public static readonly IReadOnlyList<string> AllKinds = [.. Kinds, Categorical, Constant];

    /// <summary>Mean of the normal kinds (of the logarithm for log_normal). Default: 0.</summary>
    public double Mu { get; init; }

    /// <summary>Standard deviation of the normal kinds, >= 0. Default: 1.</summary>
    public double Sigma { get; init; } = 1;

    /// <summary>q was written as a whole number: the q_ kinds draw whole numbers (long).</summary>
    public bool WholeQ { get; init; }

    public static bool IsGaussian(string kind) => kind is Normal or QNormal or LogNormal or QLogNormal;

    /// <summary>W&amp;B's quantized kinds (q_...), whose q defaults to 1 and rounds without clamping.</summary>
    public static bool IsQuantized(string kind) => kind.StartsWith("q_", StringComparison.Ordinal);

    /// <summary>Kinds whose min and max are given.</summary>
    public static bool IsBounded(string kind) => !IsGaussian(kind);

    /// <summary>Kinds that take q: the q_ kinds (W&amp;B's) and, our extension, uniform, log_uniform_values and int_uniform.</summary>
    public static bool TakesQ(string kind) => IsQuantized(kind) || kind is Uniform or LogUniformValues or IntUniform;

    /// <summary>Draws are whole numbers (long): int_uniform, and the q_ kinds with a whole q.</summary>
    public bool Whole => Kind == IntUniform || (IsQuantized(Kind) && WholeQ);

    /// <summary>
    /// How many values a grid enumerates: int_uniform's min, min + q, ..., max; q_uniform's min, min + q, ... below max
    /// (numpy's arange, as W&amp;B's grid lists it). Null for the kinds a grid cannot enumerate.
    /// </summary>
    public override long? GridCount => Kind switch
    {
        IntUniform => (long)IntegerCount,
        QUniform => (long)Math.Min(ArangeCount, long.MaxValue / 2),
        _ => null,
    };

    /// <summary>int_uniform and q_uniform enumerate (lazily: a list of the arithmetic sequence); the other kinds cannot.</summary>
    public override IReadOnlyList<object>? GridValues
    {
        get
        {
            if (GridCount is not { } count)
            {
                return null;
            }

            if (count > int.MaxValue)
            {
                throw new InvalidOperationException($"{Kind} {ParamValue.Format(Min)}..{ParamValue.Format(Max)} has {count} values, too many to list; count them with GridCount.");
            }

            return Kind == IntUniform ? new ArithmeticSequence((long)Min, IntegerStep, (int)count) : new ArangeSequence(this, (int)count);
        }
    }

    public override bool GridContains(string formatted)
    {
        if (Kind == QUniform)
        {
            if (!double.TryParse(formatted, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) || Q is not { } q)
            {
                return false;
            }

            var i = Math.Round((x - Min) / q);
            return i >= 0 && i < ArangeCount && ParamValue.Format(ArangeValue((long)i)) == formatted;
        }

        if (Kind != IntUniform || !long.TryParse(formatted, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            || ParamValue.Format(v) != formatted)
        {
            return false;
        }

        var offset = (Int128)v - (long)Min;
        return offset >= 0 && v <= (long)Max && offset % IntegerStep == 0;
    }

    /// <summary>
    /// How many values a q leaves. Our clamped q (uniform, log_uniform_values): the multiples of q in [min, max] (from
    /// ceiling(min / q) to floor(max / q)). W&amp;B's q_ kinds: the multiples of q between the rounded lowest and highest
    /// draws (for the normal kinds, mu ± <see cref="GaussianReach"/> sigma). Null without q and for int_uniform; infinite
    /// when q is too small to count.
    /// </summary>
    public double? QuantizedCount
    {
        get
        {
            if (Q is not { } q || Kind == IntUniform)
            {
                return null;
            }

            if (!IsQuantized(Kind))
            {
                return Math.Floor(Max / q) - Math.Ceiling(Min / q) + 1;
            }

            var (low, high) = Unrounded();
            return Math.Round(high / q) - Math.Round(low / q) + 1;
        }
    }

    /// <summary>The lowest and highest values a draw can take (after rounding), for checks against a parameter's range.</summary>
    public (double Low, double High) Extremes
    {
        get
        {
            var (low, high) = Unrounded();
            if (Kind == IntUniform)
            {
                return (Min, (long)Min + (IntegerStep * (long)(IntegerCount - 1)));
            }

            return Q is { } q && IsQuantized(Kind) ? (Math.Round(low / q) * q, Math.Round(high / q) * q)
                : Q is { } c ? (Math.Ceiling(Min / c) * c, Math.Floor(Max / c) * c) : (low, high);
        }
    }

    /// <summary>The range of the draw before any rounding (for the normal kinds, mu ± <see cref="GaussianReach"/> sigma).</summary>
    public (double Low, double High) Unrounded() => Kind switch
    {
        LogUniform or QLogUniform => (Math.Exp(Min), Math.Exp(Max)),
        InvLogUniform => (Math.Exp(-Max), Math.Exp(-Min)),
        Normal or QNormal => (Mu - (GaussianReach * Sigma), Mu + (GaussianReach * Sigma)),
        LogNormal or QLogNormal => (Math.Exp(Mu - (GaussianReach * Sigma)), Math.Exp(Mu + (GaussianReach * Sigma))),
        _ => (Min, Max),
    };

    public override object Sample(Rng rng)
    {
        switch (Kind)
        {
            case IntUniform:
                return (long)Min + (IntegerStep * (long)rng.NextULong(IntegerCount));
            case Uniform:
                {
                    var u = rng.NextDouble();
                    var width = Max - Min;
                    return Clamped(double.IsFinite(width) ? Min + (u * width) : (Min * (1 - u)) + (Max * u));
                }

            case LogUniformValues:
                return Clamped(Math.Clamp(LogUniformBetween(Min, Max, rng.NextDouble()), Min, Max));
            case InvLogUniformValues:
                // exp(-U(-ln max, -ln min)), drawn as W&B does (from 1 - u): log-uniform between the values.
                return Math.Clamp(Math.Exp(-(-Math.Log(Max) + ((1 - rng.NextDouble()) * (Math.Log(Max) - Math.Log(Min))))), Min, Max);
            case LogUniform:
                return Math.Exp(Min + (rng.NextDouble() * (Max - Min)));
            case InvLogUniform:
                return Math.Exp(-(Min + ((1 - rng.NextDouble()) * (Max - Min))));
            case QUniform:
                return Rounded(Min + (rng.NextDouble() * (Max - Min)));
            case QLogUniform:
                return Rounded(Math.Exp(Min + (rng.NextDouble() * (Max - Min))));
            case QLogUniformValues:
                return Rounded(LogUniformBetween(Min, Max, rng.NextDouble()));
            case Normal:
                return Mu + (Sigma * rng.NextGaussian());
            case QNormal:
                return Rounded(Mu + (Sigma * rng.NextGaussian()));
            case LogNormal:
                return Math.Exp(Mu + (Sigma * rng.NextGaussian()));
            case QLogNormal:
                return Rounded(Math.Exp(Mu + (Sigma * rng.NextGaussian())));
            default:
                throw new InvalidOperationException($"unknown distribution {Kind}.");
        }
    }

    private static double LogUniformBetween(double min, double max, double u) => Math.Exp(Math.Log(min) + (u * (Math.Log(max) - Math.Log(min))));

    private long IntegerStep => (long)(Q ?? 1);

    /// <summary>int_uniform's number of values, (max - min) / q + 1, in 64-bit arithmetic.</summary>
    private ulong IntegerCount => (ulong)(((Int128)(long)Max - (long)Min) / IntegerStep) + 1;

    /// <summary>numpy's arange(min, max, q) length: ceiling((max - min) / q).</summary>
    private double ArangeCount => Math.Max(0, Math.Ceiling((Max - Min) / (Q ?? 1)));

    private object ArangeValue(long i) => WholeQ && Min == Math.Floor(Min) ? (object)((long)Min + ((long)(Q ?? 1) * i)) : Min + (i * (Q ?? 1));

    /// <summary>W&amp;B's rounding of the q_ kinds: the nearest multiple of q (halves to even), a long for a whole q.</summary>
    private object Rounded(double v)
    {
        var q = Q ?? 1;
        var r = Math.Round(v / q) * q;
        return WholeQ ? (object)(long)r : r;
    }

    /// <summary>Our q on uniform and log_uniform_values: the nearest multiple of q within [min, max].</summary>
    private double Clamped(double v)
    {
        if (Q is not { } q)
        {
            return v;
        }

        var r = Math.Round(v / q) * q;
        return Math.Clamp(r, Math.Ceiling(Min / q) * q, Math.Floor(Max / q) * q);
    }

    /// <summary>min, min + step, ... (count values), boxed on demand: a grid axis that costs nothing until it is walked.</summary>
    private sealed class ArithmeticSequence(long first, long step, int count) : IReadOnlyList<object>
    {
        public int Count => count;

        public object this[int index] => (uint)index < (uint)count ? first + (step * index) : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<object> GetEnumerator()
        {
            for (var i = 0; i < count; i++)
            {
                yield return first + (step * i);
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>q_uniform's grid: min + i q below max, as numpy's arange lists it.</summary>
    private sealed class ArangeSequence(Distribution d, int count) : IReadOnlyList<object>
    {
        public int Count => count;

        public object this[int index] => (uint)index < (uint)count ? d.ArangeValue(index) : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<object> GetEnumerator()
        {
            for (var i = 0; i < count; i++)
            {
                yield return d.ArangeValue(i);
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

/// <summary>Parameters that exist only when other parameters have given values (e.g. hidden_size only for nets).</summary>
public sealed record ConditionalBlock(IReadOnlyDictionary<string, IReadOnlyList<object>> When, IReadOnlyDictionary<string, ParameterDomain> Parameters, int Line)
{
    public bool Matches(IReadOnlyDictionary<string, object> assignment) =>
        When.All(kv => assignment.TryGetValue(kv.Key, out var v) && kv.Value.Any(w => ParamValue.Format(w) == ParamValue.Format(v)));
}

/// <summary>
/// Which data a run trains on, how CIFAR-10 is split and how it is preprocessed: the data block of a sweep file (which
/// sets <see cref="Dataset"/>, <see cref="Path"/> and the three split sizes) and what the engine's loader takes (all of
/// it but the dataset and path, which say where the files come from). Defaults follow cs231n. The loader checks the
/// sizes against the files (train + validation at most 50,000, test at most 10,000, dev at most train).
/// </summary>
public sealed record DataSettings
{
    /// <summary>Only cifar10 for now. Default: cifar10.</summary>
    public string Dataset { get; init; } = "cifar10";

    /// <summary>A folder with the binary files; null: the usual resolution ($SWEEPER_DATA, cache, download). Default: null.</summary>
    public string? Path { get; init; }

    /// <summary>Training examples: the first ones of data_batch_1..5. Default: 49,000.</summary>
    public int TrainSize { get; init; } = 49_000;

    /// <summary>Validation examples: the ones right after the training examples. Default: 1,000.</summary>
    public int ValSize { get; init; } = 1_000;

    /// <summary>Test examples: the first ones of test_batch. Default: 1,000.</summary>
    public int TestSize { get; init; } = 1_000;

    /// <summary>Size of a development subset drawn (seeded) from the training split, for quick experiments. Default: 0 (none).</summary>
    public int DevSize { get; init; }

    /// <summary>Subtract the training split's mean image from every split. Default: true.</summary>
    public bool SubtractMean { get; init; } = true;

    /// <summary>Append a constant 1 feature to every example (the linear classifier's bias trick). Default: false.</summary>
    public bool BiasColumn { get; init; }
}

/// <summary>How much work a study may do.</summary>
public sealed record Budget
{
    /// <summary>Trials of a random search; the largest grid allowed. Default: 20.</summary>
    public int MaxTrials { get; init; } = 20;

    /// <summary>Trials running at once, whatever the number of workers. Default: no limit.</summary>
    public int? MaxConcurrent { get; init; }

    /// <summary>Extra attempts a trial gets after its worker vanished (lease expired). Default: 2.</summary>
    public int Retries { get; init; } = 2;
}

/// <summary>
/// The stopping rule's settings (<c>early_terminate</c>): our <c>median</c> rule, or W&amp;B's <c>hyperband</c>, or
/// <c>none</c>.
/// </summary>
public sealed record EarlyTerminate
{
    public const string Median = "median";
    public const string Hyperband = "hyperband";
    public const string None = "none";

    /// <summary>"median", "hyperband" or "none".</summary>
    public string Type { get; init; } = Median;

    /// <summary>median: epochs every trial runs before it can be stopped. Default: 1.</summary>
    public int WarmupEpochs { get; init; } = 1;

    /// <summary>median: completed trials needed at an epoch before their median is used. Default: 3.</summary>
    public int MinTrials { get; init; } = 3;

    /// <summary>hyperband: the first band (epochs), the bands being min_iter, min_iter·eta, min_iter·eta², ... Null when max_iter is given.</summary>
    public int? MinIter { get; init; }

    /// <summary>hyperband: the last epoch the bands count back from (with <see cref="S"/>). Null when min_iter is given.</summary>
    public int? MaxIter { get; init; }

    /// <summary>hyperband with max_iter: how many bands, max_iter/eta, max_iter/eta², ... (those >= 1).</summary>
    public int? S { get; init; }

    /// <summary>hyperband: at each band, the best 1/eta of the trials go on. > 1. Default: 3.</summary>
    public double Eta { get; init; } = 3;

    /// <summary>
    /// hyperband: judge a trial by its value at the band (true: stops more) instead of by its best value so far
    /// (false, W&amp;B's default).
    /// </summary>
    public bool Strict { get; init; }

    /// <summary>
    /// hyperband's bands (epochs, ascending) as W&amp;B computes them: with max_iter, max_iter/eta^k truncated for k = 1..s
    /// while >= 1; with min_iter, min_iter·eta^k truncated (k = 0, 1, ...) up to <paramref name="upTo"/> epochs. Empty for
    /// the other rules.
    /// </summary>
    public IReadOnlyList<int> Bands(int upTo = 1_000_000)
    {
        var bands = new List<int>();
        if (Type != Hyperband)
        {
            return bands;
        }

        if (MaxIter is { } max)
        {
            double band = max;
            for (var i = 0; i < (S ?? 0); i++)
            {
                band /= Eta;
                if (band < 1)
                {
                    break;
                }

                bands.Add((int)band);
            }

            bands.Sort();
        }
        else if (MinIter is { } min)
        {
            for (double band = min; band <= upTo && bands.Count < 100; band *= Eta)
            {
                bands.Add((int)band);
            }
        }

        return bands;
    }
}

/// <summary>Settings of <c>method: bayes</c> (TPE), from our own <c>bayes:</c> block.</summary>
public sealed record BayesSettings
{
    /// <summary>Random trials before the model proposes any. Default: 10.</summary>
    public int StartupTrials { get; init; } = 10;

    /// <summary>Candidates drawn from the good-trials density per proposal; the best ratio wins. Default: 24.</summary>
    public int Candidates { get; init; } = 24;
}

/// <summary>
/// A trial that runs the user's own program (<c>program</c>, <c>command</c> and our <c>trial:</c> block) instead of a
/// built-in model; its metrics are read from its standard output. <see cref="Build"/> turns a trial's parameters into
/// its argv and environment as W&amp;B's agent does.
/// </summary>
public sealed record ProgramSpec
{
    /// <summary>W&amp;B's default command: <c>${env} ${interpreter} ${program} ${args}</c>.</summary>
    public static readonly IReadOnlyList<string> DefaultCommand = ["${env}", "${interpreter}", "${program}", "${args}"];

    /// <summary>The macros a command may use (and <c>${envvar:NAME}</c>).</summary>
    public static readonly IReadOnlyList<string> Macros =
        ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_json_file}"];

    /// <summary>The training script, e.g. train.py (relative to <see cref="WorkDir"/>).</summary>
    public required string Program { get; init; }

    /// <summary>The command line with macros. Default: <see cref="DefaultCommand"/>.</summary>
    public IReadOnlyList<string> Command { get; init; } = DefaultCommand;

    /// <summary>The folder the program runs in. Default: null (the sweep file's folder).</summary>
    public string? WorkDir { get; init; }

    /// <summary>Extra environment variables of every trial. Default: none.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    /// <summary>A trial running longer is stopped and failed. Default: null (no limit).</summary>
    public int? TimeoutSeconds { get; init; }

    /// <summary>
    /// The argv and environment of one trial. Macros expand as W&amp;B's agent expands them: <c>${env}</c> to
    /// /usr/bin/env (nothing on Windows), <c>${interpreter}</c> to python (for a .py program; nothing otherwise),
    /// <c>${program}</c> to the program, <c>${args}</c> to one <c>--name=value</c> per parameter,
    /// <c>${args_no_hyphens}</c> to <c>name=value</c>, <c>${args_no_boolean_flags}</c> to <c>--name=value</c> except
    /// booleans (<c>--name</c> when true, nothing when false), <c>${args_json}</c> to one JSON object,
    /// <c>${args_json_file}</c> to <paramref name="argsJsonFile"/> (whose content the caller writes:
    /// <see cref="ArgsJson"/>), and <c>${envvar:NAME}</c> to the variable NAME of the trial's environment. Values are
    /// written as Python prints them (True, 1e-05, 0.001), since W&amp;B's agent formats them with Python.
    /// </summary>
    public (IReadOnlyList<string> Argv, IReadOnlyDictionary<string, string> Environment) Build(
        IReadOnlyDictionary<string, object> parameters, string argsJsonFile, bool windows = false, IReadOnlyDictionary<string, string>? baseEnvironment = null)
    {
        var environment = new Dictionary<string, string>(baseEnvironment ?? new Dictionary<string, string>());
        foreach (var (k, v) in Env)
        {
            environment[k] = v;
        }

        var argv = new List<string>();
        foreach (var part in Command)
        {
            switch (part)
            {
                case "${env}":
                    if (!windows)
                    {
                        argv.Add("/usr/bin/env");
                    }

                    break;
                case "${interpreter}":
                    if (Program.EndsWith(".py", StringComparison.OrdinalIgnoreCase))
                    {
                        argv.Add("python");
                    }

                    break;
                case "${program}":
                    argv.Add(Program);
                    break;
                case "${args}":
                    argv.AddRange(parameters.Select(kv => $"--{kv.Key}={PythonText(kv.Value)}"));
                    break;
                case "${args_no_hyphens}":
                    argv.AddRange(parameters.Select(kv => $"{kv.Key}={PythonText(kv.Value)}"));
                    break;
                case "${args_no_boolean_flags}":
                    argv.AddRange(parameters.Where(kv => kv.Value is not false).Select(kv => kv.Value is true ? $"--{kv.Key}" : $"--{kv.Key}={PythonText(kv.Value)}"));
                    break;
                case "${args_json}":
                    argv.Add(ArgsJson(parameters));
                    break;
                case "${args_json_file}":
                    argv.Add(argsJsonFile);
                    break;
                default:
                    argv.Add(System.Text.RegularExpressions.Regex.Replace(part, @"\$\{envvar:([^}]*)\}", m => environment.GetValueOrDefault(m.Groups[1].Value, "")));
                    break;
            }
        }

        return (argv, environment);
    }

    /// <summary>The parameters as one JSON object (<c>${args_json}</c>, and the content of <c>${args_json_file}</c>).</summary>
    public static string ArgsJson(IReadOnlyDictionary<string, object> parameters) => ParamJson.Serialize(parameters);

    /// <summary>A value as Python's str() writes it: True/False, whole numbers plainly, floats in repr form (1e-05, 0.001, 1.0, 1e+16).</summary>
    public static string PythonText(object value) => value switch
    {
        bool b => b ? "True" : "False",
        double d => PythonFloat(d),
        float f => PythonFloat(f),
        _ => ParamValue.Format(value),
    };

    private static string PythonFloat(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        // Python's repr: the shortest round-trip digits, positional when 1e-4 <= |d| < 1e16, else d.ddde[+-]XX.
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        var mantissa = r;
        var exponent = 0;
        var e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            mantissa = r[..e];
            exponent = int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        }

        var negative = mantissa.StartsWith('-');
        mantissa = mantissa.TrimStart('-');
        var point = mantissa.IndexOf('.', StringComparison.Ordinal);
        var digits = mantissa.Replace(".", "", StringComparison.Ordinal);
        var decimalExponent = (point < 0 ? mantissa.Length : point) + exponent; // value = 0.digits × 10^decimalExponent
        var trimmed = digits.TrimStart('0');
        decimalExponent -= digits.Length - trimmed.Length;
        digits = trimmed.TrimEnd('0');
        if (digits.Length == 0)
        {
            return negative ? "-0.0" : "0.0";
        }

        var sci = decimalExponent - 1;
        string text;
        if (sci < -4 || sci >= 16)
        {
            text = digits[..1] + (digits.Length > 1 ? "." + digits[1..] : "") + "e" + (sci < 0 ? "-" : "+") + Math.Abs(sci).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (decimalExponent <= 0)
        {
            text = "0." + new string('0', -decimalExponent) + digits;
        }
        else if (decimalExponent >= digits.Length)
        {
            text = digits + new string('0', decimalExponent - digits.Length) + ".0";
        }
        else
        {
            text = digits[..decimalExponent] + "." + digits[decimalExponent..];
        }

        return negative ? "-" + text : text;
    }
}

/// <summary>A parsed, validated sweep definition file (stored with its study as <see cref="SweepJson"/>).</summary>
public sealed record SweepDefinition
{
    /// <summary>The metrics the built-in models record for every trial (a program's trials report their own).</summary>
    public static readonly IReadOnlyList<string> BuiltInMetrics = ["val_accuracy", "train_accuracy", "train_loss"];

    public required string Name { get; init; }

    public string? Description { get; init; }

    /// <summary>W&amp;B's project and entity: kept, shown, not used.</summary>
    public string? Project { get; init; }

    public string? Entity { get; init; }

    /// <summary>grid, random or bayes.</summary>
    public required string Method { get; init; }

    /// <summary>The metric the study selects by. Default: val_accuracy (with goal maximize).</summary>
    public string Metric { get; init; } = "val_accuracy";

    /// <summary>minimize or maximize.</summary>
    public string Goal { get; init; } = "maximize";

    /// <summary>native or torch. Default: native.</summary>
    public string Engine { get; init; } = "native";

    /// <summary>cpu or cuda. Default: cpu.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>method: bayes's settings (the defaults for the other methods).</summary>
    public BayesSettings Bayes { get; init; } = new();

    /// <summary>The user's program run for every trial; null: the built-in models.</summary>
    public ProgramSpec? Program { get; init; }

    public DataSettings Data { get; init; } = new();

    public required IReadOnlyDictionary<string, ParameterDomain> Parameters { get; init; }

    public IReadOnlyList<ConditionalBlock> Conditions { get; init; } = [];

    /// <summary>Every parameter's name, once each: the unconditional ones in file order, then those of the conditions blocks in order.</summary>
    public IReadOnlyList<string> ParameterNames => [.. Parameters.Keys.Concat(Conditions.SelectMany(c => c.Parameters.Keys)).Distinct()];

    public Budget Budget { get; init; } = new();

    public EarlyTerminate? EarlyTerminate { get; init; }

    public ulong Seed { get; init; }

    /// <summary>
    /// What the parser warns about: keys that mean nothing here (W&amp;B's controller, metric.target, ...) and readings
    /// that may surprise (W&amp;B's default goal, whole-number bounds making int_uniform). Kept with their place, printed
    /// by validate and stored with the study.
    /// </summary>
    public IReadOnlyList<SweepFileIssue> Warnings { get; init; } = [];

    /// <summary>The file's text, stored with the study.</summary>
    public required string SourceText { get; init; }

    /// <summary>sha256 of <see cref="SourceText"/>: the same file resumes the same study.</summary>
    public string SourceHash => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(SourceText)));
}
