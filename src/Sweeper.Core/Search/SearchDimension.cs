using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>
/// One parameter as a model-based sampler sees it: a constant, a categorical choice, or a numeric range (linear or log
/// scale, continuous or on a grid of steps). <see cref="Of(DimensionSpec)"/> maps every distribution kind of a sweep
/// file to one of these; <see cref="Validate"/> lists what is wrong with a spec, for the sweep-file parser.
/// </summary>
public abstract record SearchDimension
{
    /// <summary>
    /// How many standard deviations either side of mu a normal kind's range reaches: TPE needs a bounded range, and
    /// beyond 4 sigma lies a 6e-5 share of the prior. Within the range the prior kernel is the user's normal itself.
    /// </summary>
    public const double NormalSpan = 4;

    /// <summary>A draw from the parameter's own distribution (what random search would propose), as the value a trial receives.</summary>
    public abstract object SamplePrior(Rng rng);

    /// <summary>The dimension for a spec; throws <see cref="ArgumentException"/> listing every problem <see cref="Validate"/> finds.</summary>
    public static SearchDimension Of(DimensionSpec spec)
    {
        var problems = Validate(spec);
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems));
        }

        var kind = spec.Kind;
        var q = spec.Q ?? 1;
        var mu = spec.Mu ?? 0;
        var sigma = spec.Sigma ?? 1;
        var integer = spec.Integer ?? IsWhole(q);
        NumericDimension numeric;
        switch (kind)
        {
            case DistributionKinds.Constant:
                return new ConstantDimension(spec.Value!);
            case DistributionKinds.Categorical:
                return spec.Values!.Count == 1 ? new ConstantDimension(spec.Values[0]) : new CategoricalDimension(spec.Values);
            case DistributionKinds.Uniform:
                numeric = new NumericDimension(spec.Min!.Value, spec.Max!.Value, Log: false);
                break;
            case DistributionKinds.IntUniform:
                numeric = new NumericDimension(spec.Min!.Value, spec.Max!.Value, Log: false, Step: q, Origin: spec.Min.Value, IsInteger: true, EqualGridPrior: true);
                break;
            case DistributionKinds.QUniform:
                numeric = new NumericDimension(spec.Min!.Value, spec.Max!.Value, Log: false, Step: q, IsInteger: integer);
                break;
            case DistributionKinds.LogUniformValues or DistributionKinds.InvLogUniformValues:
                // inv_log_uniform_values: 1/x with x log-uniform on [1/max, 1/min] is log-uniform on [min, max] itself.
                numeric = new NumericDimension(spec.Min!.Value, spec.Max!.Value, Log: true);
                break;
            case DistributionKinds.LogUniform:
                numeric = new NumericDimension(Math.Exp(spec.Min!.Value), Math.Exp(spec.Max!.Value), Log: true);
                break;
            case DistributionKinds.InvLogUniform:
                numeric = new NumericDimension(Math.Exp(-spec.Max!.Value), Math.Exp(-spec.Min!.Value), Log: true);
                break;
            case DistributionKinds.QLogUniformValues:
                numeric = new NumericDimension(spec.Min!.Value, spec.Max!.Value, Log: true, Step: q, IsInteger: integer);
                break;
            case DistributionKinds.QLogUniform:
                numeric = new NumericDimension(Math.Exp(spec.Min!.Value), Math.Exp(spec.Max!.Value), Log: true, Step: q, IsInteger: integer);
                break;
            case DistributionKinds.Normal or DistributionKinds.QNormal:
                numeric = new NumericDimension(mu - (NormalSpan * sigma), mu + (NormalSpan * sigma), Log: false, Step: kind == DistributionKinds.QNormal ? q : null,
                    IsInteger: kind == DistributionKinds.QNormal && integer, PriorMu: mu, PriorSigma: sigma);
                break;
            default: // log_normal, q_log_normal: the log of the value is normal(mu, sigma)
                numeric = new NumericDimension(Math.Exp(mu - (NormalSpan * sigma)), Math.Exp(mu + (NormalSpan * sigma)), Log: true,
                    Step: kind == DistributionKinds.QLogNormal ? q : null, IsInteger: kind == DistributionKinds.QLogNormal && integer, PriorMu: mu, PriorSigma: sigma);
                break;
        }

        return numeric.IsSinglePoint ? new ConstantDimension(numeric.FromInternal(numeric.InternalLow + (0.5 * (numeric.InternalHigh - numeric.InternalLow)))) : numeric;
    }

    /// <summary>The dimension of one of today's sweep-file domains (through <see cref="DimensionSpec.Of(ParameterDomain)"/>).</summary>
    public static SearchDimension Of(ParameterDomain domain) => Of(DimensionSpec.Of(domain));

    /// <summary>Everything wrong with <paramref name="spec"/> (empty when it is usable), each naming the key at fault.</summary>
    public static IReadOnlyList<SpecProblem> Validate(DimensionSpec spec)
    {
        var problems = new List<SpecProblem>();
        var kind = spec.Kind;
        if (!DistributionKinds.All.Contains(kind))
        {
            problems.Add(new SpecProblem("distribution", $"unknown distribution '{kind}' (one of {string.Join(", ", DistributionKinds.All)})."));
            return problems;
        }

        switch (kind)
        {
            case DistributionKinds.Constant:
                if (spec.Value is null)
                {
                    problems.Add(new SpecProblem("value", "a constant needs a value."));
                }

                return problems;
            case DistributionKinds.Categorical:
                if (spec.Values is not { Count: > 0 })
                {
                    problems.Add(new SpecProblem("values", "a categorical parameter needs at least one value."));
                }

                return problems;
        }

        var q = spec.Q ?? 1;
        var quantized = kind is DistributionKinds.QUniform or DistributionKinds.QLogUniform or DistributionKinds.QLogUniformValues
            or DistributionKinds.QNormal or DistributionKinds.QLogNormal or DistributionKinds.IntUniform;
        if (quantized && !(double.IsFinite(q) && q > 0))
        {
            problems.Add(new SpecProblem("q", $"must be a number greater than 0 (got {SpecProblem.Num(q)})."));
            return problems;
        }

        if (quantized && spec.Integer == true && !IsWhole(q))
        {
            problems.Add(new SpecProblem("q", $"whole-number values need a whole q (got {SpecProblem.Num(q)})."));
            return problems;
        }

        double lo, hi; // the value range
        if (kind is DistributionKinds.Normal or DistributionKinds.QNormal or DistributionKinds.LogNormal or DistributionKinds.QLogNormal)
        {
            var mu = spec.Mu ?? 0;
            var sigma = spec.Sigma ?? 1;
            if (!double.IsFinite(mu))
            {
                problems.Add(new SpecProblem("mu", $"must be a finite number (got {SpecProblem.Num(mu)})."));
            }

            if (!(double.IsFinite(sigma) && sigma > 0))
            {
                problems.Add(new SpecProblem("sigma", $"must be a number greater than 0 (got {SpecProblem.Num(sigma)})."));
            }

            if (problems.Count > 0)
            {
                return problems;
            }

            (lo, hi) = (mu - (NormalSpan * sigma), mu + (NormalSpan * sigma));
            if (kind is DistributionKinds.LogNormal or DistributionKinds.QLogNormal)
            {
                (lo, hi) = (Math.Exp(lo), Math.Exp(hi));
                if (!(lo > 0 && double.IsFinite(hi)))
                {
                    problems.Add(new SpecProblem("sigma", $"exp(mu ± {NormalSpan} sigma) must stay within a double's range (mu {SpecProblem.Num(mu)}, sigma {SpecProblem.Num(sigma)})."));
                    return problems;
                }
            }
            else if (!double.IsFinite(hi - lo))
            {
                problems.Add(new SpecProblem("sigma", $"mu ± {NormalSpan} sigma must stay within a double's range."));
                return problems;
            }
        }
        else
        {
            if (spec.Min is not { } min || !double.IsFinite(min))
            {
                problems.Add(new SpecProblem("min", spec.Min is null ? $"{kind} needs min." : $"must be a finite number (got {SpecProblem.Num(spec.Min.Value)})."));
            }

            if (spec.Max is not { } max || !double.IsFinite(max))
            {
                problems.Add(new SpecProblem("max", spec.Max is null ? $"{kind} needs max." : $"must be a finite number (got {SpecProblem.Num(spec.Max.Value)})."));
            }

            if (problems.Count > 0)
            {
                return problems;
            }

            (lo, hi) = (spec.Min!.Value, spec.Max!.Value);
            if (lo > hi)
            {
                problems.Add(new SpecProblem("max", $"must be at least min (min {SpecProblem.Num(lo)}, max {SpecProblem.Num(hi)})."));
                return problems;
            }

            switch (kind)
            {
                case DistributionKinds.IntUniform:
                    if (!IsWhole(lo) || Math.Abs(lo) > Distribution.MaxExactInteger)
                    {
                        problems.Add(new SpecProblem("min", $"int_uniform's min must be a whole number within ±2^53 (got {SpecProblem.Num(lo)})."));
                    }

                    if (!IsWhole(hi) || Math.Abs(hi) > Distribution.MaxExactInteger)
                    {
                        problems.Add(new SpecProblem("max", $"int_uniform's max must be a whole number within ±2^53 (got {SpecProblem.Num(hi)})."));
                    }

                    if (!IsWhole(q))
                    {
                        problems.Add(new SpecProblem("q", $"int_uniform's q must be a whole number (got {SpecProblem.Num(q)})."));
                    }

                    return problems;
                case DistributionKinds.LogUniformValues or DistributionKinds.QLogUniformValues or DistributionKinds.InvLogUniformValues:
                    if (lo <= 0)
                    {
                        problems.Add(new SpecProblem("min", $"{kind} needs min greater than 0 (got {SpecProblem.Num(lo)})."));
                        return problems;
                    }

                    break;
                case DistributionKinds.LogUniform or DistributionKinds.QLogUniform or DistributionKinds.InvLogUniform:
                    // min and max are exponents: exp of both must be a positive, finite double.
                    if (!(Math.Exp(-Math.Max(Math.Abs(lo), Math.Abs(hi))) > 0 && double.IsFinite(Math.Exp(Math.Max(Math.Abs(lo), Math.Abs(hi))))))
                    {
                        problems.Add(new SpecProblem(Math.Abs(lo) > Math.Abs(hi) ? "min" : "max", $"{kind}'s min and max are natural-log exponents; exp of them must stay within a double's range (|x| <= 709)."));
                        return problems;
                    }

                    (lo, hi) = kind == DistributionKinds.InvLogUniform ? (Math.Exp(-hi), Math.Exp(-lo)) : (Math.Exp(lo), Math.Exp(hi));
                    break;
            }
        }

        if (quantized)
        {
            var kLow = Math.Ceiling((lo / q) - GridTolerance);
            var kHigh = Math.Floor((hi / q) + GridTolerance);
            if (Math.Max(Math.Abs(kLow), Math.Abs(kHigh)) > Distribution.MaxExactInteger)
            {
                problems.Add(new SpecProblem("q", $"q {SpecProblem.Num(q)} is too small for the range [{SpecProblem.Num(lo)}, {SpecProblem.Num(hi)}]: more than 2^53 steps."));
            }
            else if (kLow > kHigh)
            {
                problems.Add(new SpecProblem("q", $"no multiple of q {SpecProblem.Num(q)} lies within [{SpecProblem.Num(lo)}, {SpecProblem.Num(hi)}]."));
            }
        }

        return problems;
    }

    /// <summary>Slack (in steps) when counting the multiples of q within a range, so that 0.3 / 0.1 = 2.9999999999999996 still counts 3.</summary>
    internal const double GridTolerance = 1e-9;

    internal static bool IsWhole(double x) => double.IsFinite(x) && Math.Floor(x) == x;
}

/// <summary>A parameter with one value: never searched.</summary>
public sealed record ConstantDimension(object Value) : SearchDimension
{
    public override object SamplePrior(Rng rng) => Value;
}

/// <summary>A choice among values, unordered; the prior is uniform.</summary>
public sealed record CategoricalDimension(IReadOnlyList<object> Values) : SearchDimension
{
    public override object SamplePrior(Rng rng) => Values[rng.NextInt(Values.Count)];

    /// <summary>The index of <paramref name="value"/> among <see cref="Values"/> (compared as <see cref="ParamValue.Format"/> writes them); -1 when absent.</summary>
    public int IndexOf(object value)
    {
        var formatted = ParamValue.Format(value);
        for (var i = 0; i < Values.Count; i++)
        {
            if (ParamValue.Format(Values[i]) == formatted)
            {
                return i;
            }
        }

        return -1;
    }
}

/// <summary>
/// A numeric range [<paramref name="Low"/>, <paramref name="High"/>] of values, searched in an internal coordinate t:
/// the value itself, or its natural log when <paramref name="Log"/>. With a <paramref name="Step"/> the values are the
/// grid <paramref name="Origin"/> + k * step within the range (Origin 0: the multiples of q, as W&amp;B's q_ kinds
/// round; Origin min: int_uniform's min, min + q, ...), and the internal range reaches half a step beyond the outer
/// grid points, so that every grid point owns an equal share of it (as in Optuna). The prior kernel is
/// N(<paramref name="PriorMu"/>, <paramref name="PriorSigma"/>) in t when given (the normal kinds), otherwise Optuna's:
/// centred, as wide as the internal range.
/// <para>
/// <see cref="SamplePrior"/> draws what W&amp;B's random search draws: t uniform (or normal) over [t(Low), t(High)], then
/// rounded to the grid, so that a q_ kind's outer grid points get only the part of their cell inside the range; with
/// <paramref name="EqualGridPrior"/> (int_uniform) every grid point is equally likely instead.
/// </para>
/// </summary>
public sealed record NumericDimension(
    double Low,
    double High,
    bool Log,
    double? Step = null,
    double Origin = 0,
    bool IsInteger = false,
    double? PriorMu = null,
    double? PriorSigma = null,
    bool EqualGridPrior = false) : SearchDimension
{
    /// <summary>The lowest grid index (GridLow = Origin + KLow * Step); 0 without a step.</summary>
    public long KLow => Step is { } s ? (long)Math.Ceiling(((Low - Origin) / s) - GridTolerance) : 0;

    /// <summary>The highest grid index; 0 without a step.</summary>
    public long KHigh => Step is { } s ? (long)Math.Floor(((High - Origin) / s) + GridTolerance) : 0;

    /// <summary>The smallest value a trial can receive.</summary>
    public double GridLow => Step is null ? Low : GridValue(KLow);

    /// <summary>The largest value a trial can receive.</summary>
    public double GridHigh => Step is null ? High : GridValue(KHigh);

    /// <summary>The lower end of the internal range: t(low), or t(lowest grid point - step / 2).</summary>
    public double InternalLow => ToInternal(Step is { } s ? GridLow - (s / 2) : Low);

    /// <summary>The upper end of the internal range: t(high), or t(highest grid point + step / 2).</summary>
    public double InternalHigh => ToInternal(Step is { } s ? GridHigh + (s / 2) : High);

    /// <summary>The prior kernel's centre in t.</summary>
    public double PriorCentre => PriorMu ?? (0.5 * (InternalLow + InternalHigh));

    /// <summary>The prior kernel's width in t.</summary>
    public double PriorWidth => PriorSigma ?? (InternalHigh - InternalLow);

    /// <summary>Whether only one value is possible (a range of zero width, or a grid of one point).</summary>
    public bool IsSinglePoint => Step is null ? !(High > Low) : KHigh <= KLow;

    public double ToInternal(double value) => Log ? Math.Log(value) : value;

    /// <summary>The value at internal coordinate t, moved onto the grid and into the range, boxed as a trial receives it (long when integer).</summary>
    public object FromInternal(double t)
    {
        var v = Log ? Math.Exp(t) : t;
        if (Step is not { } s)
        {
            return Math.Clamp(v, Low, High);
        }

        var k = Math.Clamp((long)Math.Round((v - Origin) / s, MidpointRounding.ToEven), KLow, KHigh);
        return IsInteger ? (long)Origin + (k * (long)s) : (object)GridValue(k);
    }

    /// <summary>
    /// The internal coordinate of an observed value, or null when the value is not a number of this range (a trial from
    /// another conditions block that gave the parameter another domain). On a grid the value is first moved to its point.
    /// </summary>
    public double? TryInternal(object value)
    {
        if (value is not (double or long or int))
        {
            return null;
        }

        var v = ParamValue.AsDouble(value);
        var slack = 1e-9 * (GridHigh - GridLow);
        if (!double.IsFinite(v) || v < GridLow - slack - ((Step ?? 0) / 2) || v > GridHigh + slack + ((Step ?? 0) / 2) || (Log && v <= 0))
        {
            return null;
        }

        return ToInternal(ParamValue.AsDouble(FromInternal(ToInternal(v))));
    }

    public override object SamplePrior(Rng rng)
    {
        var (low, high) = EqualGridPrior ? (InternalLow, InternalHigh) : (ToInternal(Low), ToInternal(High));
        double t;
        if (PriorMu is { } mu && PriorSigma is { } sigma)
        {
            t = mu + (sigma * Gaussian.SampleTruncated(rng, (low - mu) / sigma, (high - mu) / sigma));
        }
        else
        {
            t = low + (rng.NextDouble() * (high - low));
        }

        return FromInternal(t);
    }

    private double GridValue(long k) => IsInteger ? (long)Origin + (k * (long)Step!.Value) : Origin + (k * Step!.Value);
}
