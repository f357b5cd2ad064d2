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

/// <summary><c>values: [a, b, c]</c>: a grid axis, or a uniform choice for random search.</summary>
public sealed record ValueList(IReadOnlyList<object> Values) : ParameterDomain
{
    public override long? GridCount => Values.Count;

    public override IReadOnlyList<object> GridValues => Values;

    public override bool GridContains(string formatted) => Values.Any(v => ParamValue.Format(v) == formatted);

    public override object Sample(Rng rng) => Values[rng.NextInt(Values.Count)];
}

/// <summary>
/// Continuous or integer distributions: uniform, log_uniform, int_uniform (inclusive), with optional quantization q.
/// int_uniform's bounds are whole numbers within ±2^53 (so that the doubles hold them exactly) and it draws with 64-bit
/// arithmetic over the whole range; a continuous q rounds a draw to the nearest multiple of q within [min, max].
/// </summary>
public sealed record Distribution(string Kind, double Min, double Max, double? Q) : ParameterDomain
{
    public const string Uniform = "uniform";
    public const string LogUniform = "log_uniform";
    public const string IntUniform = "int_uniform";

    /// <summary>2^53: the largest magnitude below which a double holds every whole number, and so the bound on int_uniform's min and max.</summary>
    public const double MaxExactInteger = 9007199254740992.0;

    public static readonly IReadOnlyList<string> Kinds = [Uniform, LogUniform, IntUniform];

    /// <summary>int_uniform's values: min, min+q, ..., up to max; null for the continuous kinds.</summary>
    public override long? GridCount => Kind == IntUniform ? (long)IntegerCount : null;

    /// <summary>int_uniform enumerates min, min+q, ..., max on a grid (lazily: a list of the arithmetic sequence); continuous kinds cannot.</summary>
    public override IReadOnlyList<object>? GridValues
    {
        get
        {
            if (Kind != IntUniform)
            {
                return null;
            }

            var count = IntegerCount;
            if (count > int.MaxValue)
            {
                throw new InvalidOperationException($"int_uniform {ParamValue.Format((long)Min)}..{ParamValue.Format((long)Max)} has {count} values, too many to list; count them with GridCount.");
            }

            return new ArithmeticSequence((long)Min, IntegerStep, (int)count);
        }
    }

    public override bool GridContains(string formatted)
    {
        if (Kind != IntUniform || !long.TryParse(formatted, System.Globalization.NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            || ParamValue.Format(v) != formatted)
        {
            return false;
        }

        var offset = (Int128)v - (long)Min;
        return offset >= 0 && v <= (long)Max && offset % IntegerStep == 0;
    }

    /// <summary>
    /// How many values a continuous q leaves: the multiples of q in [min, max] as <see cref="Sample"/> rounds to them
    /// (from ceiling(min / q) to floor(max / q)); without q, or for int_uniform, null. Infinite when q is too small to count.
    /// </summary>
    public double? QuantizedCount => Q is { } q && Kind != IntUniform ? Math.Floor(Max / q) - Math.Ceiling(Min / q) + 1 : null;

    public override object Sample(Rng rng)
    {
        switch (Kind)
        {
            case IntUniform:
                return (long)Min + (IntegerStep * (long)rng.NextULong(IntegerCount));

            case LogUniform:
                {
                    var v = Math.Exp(Math.Log(Min) + (rng.NextDouble() * (Math.Log(Max) - Math.Log(Min))));
                    return Quantize(Math.Clamp(v, Min, Max));
                }

            default:
                {
                    var u = rng.NextDouble();
                    var width = Max - Min;
                    return Quantize(double.IsFinite(width) ? Min + (u * width) : (Min * (1 - u)) + (Max * u));
                }
        }
    }

    private long IntegerStep => (long)(Q ?? 1);

    /// <summary>int_uniform's number of values, (max - min) / q + 1, in 64-bit arithmetic.</summary>
    private ulong IntegerCount => (ulong)(((Int128)(long)Max - (long)Min) / IntegerStep) + 1;

    private double Quantize(double v)
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

/// <summary>The median stopping rule's settings (<c>early_terminate</c>).</summary>
public sealed record EarlyTerminate
{
    /// <summary>"median" or "none".</summary>
    public string Type { get; init; } = "median";

    /// <summary>Epochs every trial runs before it can be stopped. Default: 1.</summary>
    public int WarmupEpochs { get; init; } = 1;

    /// <summary>Completed trials needed at an epoch before their median is used. Default: 3.</summary>
    public int MinTrials { get; init; } = 3;
}

/// <summary>A parsed, validated sweep definition file (stored with its study as <see cref="SweepJson"/>).</summary>
public sealed record SweepDefinition
{
    public required string Name { get; init; }

    public string? Description { get; init; }

    /// <summary>grid or random.</summary>
    public required string Method { get; init; }

    /// <summary>The metric the study selects by: val_accuracy (maximize).</summary>
    public string Metric { get; init; } = "val_accuracy";

    public string Goal { get; init; } = "maximize";

    public DataSettings Data { get; init; } = new();

    public required IReadOnlyDictionary<string, ParameterDomain> Parameters { get; init; }

    public IReadOnlyList<ConditionalBlock> Conditions { get; init; } = [];

    /// <summary>Every parameter's name, once each: the unconditional ones in file order, then those of the conditions blocks in order.</summary>
    public IReadOnlyList<string> ParameterNames => [.. Parameters.Keys.Concat(Conditions.SelectMany(c => c.Parameters.Keys)).Distinct()];

    public Budget Budget { get; init; } = new();

    public EarlyTerminate? EarlyTerminate { get; init; }

    public ulong Seed { get; init; }

    /// <summary>The file's text, stored with the study.</summary>
    public required string SourceText { get; init; }

    /// <summary>sha256 of <see cref="SourceText"/>: the same file resumes the same study.</summary>
    public string SourceHash => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(SourceText)));
}
