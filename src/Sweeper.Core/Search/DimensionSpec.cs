using System.Globalization;
using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>
/// The distribution kinds a sweep file's <c>distribution:</c> may name, with W&amp;B's meanings (W&amp;B's
/// <c>sweeps/params.py</c> is the reference). Sweeper's own files before the W&amp;B kinds arrived wrote
/// <c>log_uniform</c> with raw bounds; <see cref="DimensionSpec.Of(ParameterDomain)"/> maps that to
/// <see cref="LogUniformValues"/>.
/// </summary>
public static class DistributionKinds
{
    /// <summary>value: the one value.</summary>
    public const string Constant = "constant";

    /// <summary>values: a uniform choice among them.</summary>
    public const string Categorical = "categorical";

    /// <summary>min, max: uniform.</summary>
    public const string Uniform = "uniform";

    /// <summary>min, max (whole), q (default 1): min, min + q, ..., up to max, uniformly.</summary>
    public const string IntUniform = "int_uniform";

    /// <summary>min, max, q: uniform, rounded to a multiple of q.</summary>
    public const string QUniform = "q_uniform";

    /// <summary>min, max: exp(uniform(min, max)): the bounds are natural-log exponents.</summary>
    public const string LogUniform = "log_uniform";

    /// <summary>min, max: log-uniform between the values min and max.</summary>
    public const string LogUniformValues = "log_uniform_values";

    /// <summary>min, max, q: exp(uniform(min, max)) rounded to a multiple of q.</summary>
    public const string QLogUniform = "q_log_uniform";

    /// <summary>min, max, q: log-uniform between the values min and max, rounded to a multiple of q.</summary>
    public const string QLogUniformValues = "q_log_uniform_values";

    /// <summary>min, max: exp(-uniform(min, max)), i.e. 1/x with x = exp(uniform(min, max)); log-uniform on [e^-max, e^-min].</summary>
    public const string InvLogUniform = "inv_log_uniform";

    /// <summary>min, max: 1/x with x log-uniform on [1/max, 1/min]; which is log-uniform on [min, max] itself.</summary>
    public const string InvLogUniformValues = "inv_log_uniform_values";

    /// <summary>mu, sigma: normal.</summary>
    public const string Normal = "normal";

    /// <summary>mu, sigma, q: normal rounded to a multiple of q.</summary>
    public const string QNormal = "q_normal";

    /// <summary>mu, sigma: exp(normal(mu, sigma)).</summary>
    public const string LogNormal = "log_normal";

    /// <summary>mu, sigma, q: exp(normal(mu, sigma)) rounded to a multiple of q.</summary>
    public const string QLogNormal = "q_log_normal";

    /// <summary>Every kind above.</summary>
    public static readonly IReadOnlyList<string> All =
    [
        Constant, Categorical, Uniform, IntUniform, QUniform, LogUniform, LogUniformValues, QLogUniform, QLogUniformValues,
        InvLogUniform, InvLogUniformValues, Normal, QNormal, LogNormal, QLogNormal,
    ];
}

/// <summary>
/// One parameter's distribution as plain numbers, whatever record the sweep-file parser keeps it in: the input of
/// <see cref="SearchDimension.Of(DimensionSpec)"/>. Which fields a kind reads is listed on <see cref="DistributionKinds"/>;
/// the others are ignored.
/// </summary>
/// <param name="Kind">One of <see cref="DistributionKinds"/>.</param>
/// <param name="Q">Quantization step; the q_ kinds default to 1 (as W&amp;B does).</param>
/// <param name="Mu">The normal kinds' mean (of the value, or of its log for log_normal); default 0.</param>
/// <param name="Sigma">The normal kinds' standard deviation; default 1.</param>
/// <param name="Values">categorical's values.</param>
/// <param name="Value">constant's value.</param>
/// <param name="Integer">
/// Whether a q_ kind's values are whole numbers (longs). Null: when q is a whole number, as W&amp;B returns ints when q
/// is an int. int_uniform's values are always longs.
/// </param>
public sealed record DimensionSpec(
    string Kind,
    double? Min = null,
    double? Max = null,
    double? Q = null,
    double? Mu = null,
    double? Sigma = null,
    IReadOnlyList<object>? Values = null,
    object? Value = null,
    bool? Integer = null)
{
    /// <summary>
    /// The adapter from the sweep file's records: <c>value</c> is constant, <c>values</c> categorical, and a
    /// <see cref="Distribution"/> keeps its W&amp;B kind and meaning (<c>log_uniform</c>'s bounds are exponents), except
    /// that a q on uniform or log_uniform_values (which the parser accepts) becomes the q_ kind; whole
    /// numbers exactly where the parser's own draws give them (<see cref="Distribution.Whole"/>), so that random and Bayesian
    /// search of one file hand trials the same types.
    /// </summary>
    public static DimensionSpec Of(ParameterDomain domain) => domain switch
    {
        FixedValue f => new DimensionSpec(DistributionKinds.Constant, Value: f.Value),
        ValueList l => new DimensionSpec(DistributionKinds.Categorical, Values: l.Values),
        Distribution { Kind: Distribution.LogUniformValues, Q: not null } d => new DimensionSpec(DistributionKinds.QLogUniformValues, d.Min, d.Max, d.Q, Integer: d.Whole),
        Distribution { Kind: Distribution.Uniform, Q: not null } d => new DimensionSpec(DistributionKinds.QUniform, d.Min, d.Max, d.Q, Integer: d.Whole),
        Distribution d when Distribution.IsGaussian(d.Kind) => new DimensionSpec(d.Kind, Q: d.Q, Mu: d.Mu, Sigma: d.Sigma, Integer: d.Whole),
        Distribution d => new DimensionSpec(d.Kind, d.Min, d.Max, d.Q, Integer: d.Whole),
        _ => throw new ArgumentException($"unknown kind of parameter domain {domain.GetType().Name}."),
    };
}

/// <summary>One thing wrong with a spec: the sweep-file key at fault (min, max, q, mu, sigma, values, value, distribution, or an early_terminate key) and why.</summary>
public sealed record SpecProblem(string Key, string Message)
{
    public override string ToString() => $"{Key}: {Message}";

    internal static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
