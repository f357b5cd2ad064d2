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

    /// <summary>The values a grid enumerates; null when the domain is continuous.</summary>
    public abstract IReadOnlyList<object>? GridValues { get; }

    public abstract object Sample(Engine.Kernels.Rng rng);
}

/// <summary><c>value: x</c>.</summary>
public sealed record FixedValue(object Value) : ParameterDomain
{
    public override IReadOnlyList<object> GridValues => [Value];

    public override object Sample(Engine.Kernels.Rng rng) => Value;
}

/// <summary><c>values: [a, b, c]</c>: a grid axis, or a uniform choice for random search.</summary>
public sealed record ValueList(IReadOnlyList<object> Values) : ParameterDomain
{
    public override IReadOnlyList<object> GridValues => Values;

    public override object Sample(Engine.Kernels.Rng rng) => Values[rng.NextInt(Values.Count)];
}

/// <summary>Continuous or integer distributions: uniform, log_uniform, int_uniform (inclusive), with optional quantization q.</summary>
public sealed record Distribution(string Kind, double Min, double Max, double? Q) : ParameterDomain
{
    public const string Uniform = "uniform";
    public const string LogUniform = "log_uniform";
    public const string IntUniform = "int_uniform";

    public static readonly IReadOnlyList<string> Kinds = [Uniform, LogUniform, IntUniform];

    /// <summary>int_uniform enumerates min, min+q, ..., max on a grid; continuous kinds cannot.</summary>
    public override IReadOnlyList<object>? GridValues
    {
        get
        {
            if (Kind != IntUniform)
            {
                return null;
            }

            var step = (long)(Q ?? 1);
            var list = new List<object>();
            for (var v = (long)Min; v <= (long)Max; v += step)
            {
                list.Add(v);
            }

            return list;
        }
    }

    public override object Sample(Engine.Kernels.Rng rng)
    {
        switch (Kind)
        {
            case IntUniform:
                {
                    var step = (long)(Q ?? 1);
                    var count = (((long)Max - (long)Min) / step) + 1;
                    return (long)Min + (step * rng.NextInt((int)count));
                }

            case LogUniform:
                {
                    var v = Math.Exp(Math.Log(Min) + (rng.NextDouble() * (Math.Log(Max) - Math.Log(Min))));
                    return Quantize(v);
                }

            default:
                return Quantize(Min + (rng.NextDouble() * (Max - Min)));
        }
    }

    private double Quantize(double v)
    {
        if (Q is not { } q)
        {
            return v;
        }

        var r = Math.Round(v / q) * q;
        return Math.Clamp(r, Math.Ceiling(Min / q) * q, Math.Floor(Max / q) * q);
    }
}

/// <summary>Parameters that exist only when other parameters have given values (e.g. hidden_size only for nets).</summary>
public sealed record ConditionalBlock(IReadOnlyDictionary<string, IReadOnlyList<object>> When, IReadOnlyDictionary<string, ParameterDomain> Parameters, int Line)
{
    public bool Matches(IReadOnlyDictionary<string, object> assignment) =>
        When.All(kv => assignment.TryGetValue(kv.Key, out var v) && kv.Value.Any(w => ParamValue.Format(w) == ParamValue.Format(v)));
}

/// <summary>Which CIFAR-10 splits the trials use.</summary>
public sealed record DataSettings
{
    /// <summary>Only cifar10 for now.</summary>
    public string Dataset { get; init; } = "cifar10";

    /// <summary>A folder with the binary files; null: the usual resolution ($SWEEPER_DATA, cache, download).</summary>
    public string? Path { get; init; }

    public int TrainSize { get; init; } = 49_000;

    public int ValSize { get; init; } = 1_000;

    public int TestSize { get; init; } = 1_000;
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

/// <summary>A parsed, validated sweep definition file.</summary>
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

    public Budget Budget { get; init; } = new();

    public EarlyTerminate? EarlyTerminate { get; init; }

    public ulong Seed { get; init; }

    /// <summary>The file's text, stored with the study.</summary>
    public required string SourceText { get; init; }

    /// <summary>sha256 of <see cref="SourceText"/>: the same file resumes the same study.</summary>
    public string SourceHash => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(SourceText)));
}
