using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Search;

/// <summary>
/// The Parzen estimator of one numeric dimension: a weighted mixture of normals in the dimension's internal coordinate t
/// (the value, or its log), each truncated to the internal range — one kernel per observation plus one prior kernel.
/// Kernel widths follow Optuna's rule: the larger gap to a sorted neighbour (the range's ends count as neighbours only
/// when <see cref="TpeOptions.ConsiderEndpoints"/>; the prior's centre counts as one when
/// <see cref="TpeOptions.PriorAmongNeighbours"/>), clipped to [range / min(100, 1 + kernels), range] with the "magic
/// clip", or to [1e-12, range] without it. On a grid the estimator gives each grid point the mixture's mass within half
/// a step of it, so its densities are probabilities that sum to 1 over the grid.
/// </summary>
public sealed class NumericParzenEstimator
{
    private readonly NumericDimension _dimension;
    private readonly double[] _mus;
    private readonly double[] _sigmas;
    private readonly double[] _logWeights;
    private readonly double[] _cumulative;
    private readonly double[] _logMass; // each kernel's log mass on the internal range, its truncation's normalizer

    /// <param name="dimension">The dimension.</param>
    /// <param name="observations">Observed values in internal coordinates (<see cref="NumericDimension.TryInternal"/>).</param>
    /// <param name="weights">One non-negative weight per observation (<see cref="TpeOptions.ObservationWeights"/>).</param>
    /// <param name="options">Prior weight, clipping and endpoints.</param>
    public NumericParzenEstimator(NumericDimension dimension, IReadOnlyList<double> observations, IReadOnlyList<double> weights, TpeOptions options)
    {
        if (observations.Count != weights.Count)
        {
            throw new ArgumentException($"{observations.Count} observations but {weights.Count} weights.");
        }

        _dimension = dimension;
        var low = dimension.InternalLow;
        var high = dimension.InternalHigh;
        var n = observations.Count;
        _mus = new double[n + 1];
        _sigmas = new double[n + 1];
        var w = new double[n + 1];
        // The points whose gaps set the widths: the observations, and with PriorAmongNeighbours (Optuna up to 3.x) the
        // prior's centre too.
        var points = options.PriorAmongNeighbours && n > 0 ? [.. observations, dimension.PriorCentre] : observations.ToArray();
        var m = points.Length;
        var order = Enumerable.Range(0, m).OrderBy(i => points[i]).ThenBy(i => i).ToArray();
        for (var r = 0; r < m; r++)
        {
            var i = order[r];
            var mu = points[i];
            var left = r == 0 ? low : points[order[r - 1]];
            var right = r == m - 1 ? high : points[order[r + 1]];
            var sigma = Math.Max(mu - left, right - mu);
            if (!options.ConsiderEndpoints && m >= 2)
            {
                // The outermost kernels measure to their inner neighbour only, not to the end of the range.
                sigma = r == 0 ? right - mu : r == m - 1 ? mu - left : sigma;
            }

            if (i < n)
            {
                _mus[i] = mu;
                _sigmas[i] = sigma;
                w[i] = weights[i];
            }
        }

        var range = high - low;
        var minSigma = options.MagicClip ? range / Math.Min(100.0, 1.0 + (n + 1)) : 1e-12;
        for (var i = 0; i < n; i++)
        {
            _sigmas[i] = Math.Clamp(_sigmas[i], minSigma, range);
        }

        _mus[n] = dimension.PriorCentre;
        _sigmas[n] = dimension.PriorWidth;
        w[n] = n == 0 ? 1.0 : options.PriorWeight;
        Weights = Normalize(w);
        _logWeights = [.. Weights.Select(w => Math.Log(w))];
        _cumulative = Cumulative(Weights);
        _logMass = new double[n + 1];
        for (var k = 0; k <= n; k++)
        {
            _logMass[k] = Gaussian.LogMass((low - _mus[k]) / _sigmas[k], (high - _mus[k]) / _sigmas[k]);
        }
    }

    /// <summary>The kernels' centres in t (the observations in their given order, then the prior's).</summary>
    public IReadOnlyList<double> Mus => _mus;

    /// <summary>The kernels' standard deviations in t.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    /// <summary>The kernels' mixture weights, summing to 1.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>
    /// log of the mixture's density in t at <paramref name="value"/> (continuous: integrate exp of it over t from
    /// InternalLow to InternalHigh and get 1), or, on a grid, log of the probability of that grid point.
    /// </summary>
    public double LogDensity(double value)
    {
        var terms = KernelLogDensities(value);
        for (var k = 0; k < terms.Length; k++)
        {
            terms[k] += _logWeights[k];
        }

        return LogSumExp(terms);
    }

    /// <summary>One draw: a kernel chosen by weight, a truncated-normal draw from it, mapped to a value on the grid.</summary>
    public object Sample(Rng rng) => SampleKernel(Pick(_cumulative, rng.NextDouble()), rng);

    /// <summary>How many kernels the mixture has (observations + the prior).</summary>
    public int KernelCount => _mus.Length;

    /// <summary>Each kernel's own log density (or, on a grid, log probability) at <paramref name="value"/>, before weighting.</summary>
    public double[] KernelLogDensities(double value)
    {
        var d = _dimension;
        var terms = new double[_mus.Length];
        if (d.Step is not { } step)
        {
            var t = d.ToInternal(value);
            for (var k = 0; k < _mus.Length; k++)
            {
                var z = (t - _mus[k]) / _sigmas[k];
                terms[k] = Gaussian.LogPdf(z) - Math.Log(_sigmas[k]) - _logMass[k];
            }
        }
        else
        {
            var left = Math.Max(d.ToInternal(value - (step / 2)), d.InternalLow);
            var right = Math.Min(d.ToInternal(value + (step / 2)), d.InternalHigh);
            for (var k = 0; k < _mus.Length; k++)
            {
                terms[k] = Gaussian.LogMass((left - _mus[k]) / _sigmas[k], (right - _mus[k]) / _sigmas[k]) - _logMass[k];
            }
        }

        return terms;
    }

    /// <summary>A draw from kernel <paramref name="k"/> alone.</summary>
    public object SampleKernel(int k, Rng rng)
    {
        var mu = _mus[k];
        var sigma = _sigmas[k];
        var z = Gaussian.SampleTruncated(rng, (_dimension.InternalLow - mu) / sigma, (_dimension.InternalHigh - mu) / sigma);
        return _dimension.FromInternal(mu + (sigma * z));
    }

    internal static double[] Normalize(double[] w)
    {
        var sum = w.Sum();
        return [.. w.Select(x => x / sum)];
    }

    internal static double[] Cumulative(IReadOnlyList<double> p)
    {
        var c = new double[p.Count];
        var s = 0.0;
        for (var i = 0; i < p.Count; i++)
        {
            s += p[i];
            c[i] = s;
        }

        return c;
    }

    /// <summary>The first index whose cumulative weight exceeds u (the last one if rounding leaves u above them all).</summary>
    internal static int Pick(double[] cumulative, double u)
    {
        for (var i = 0; i < cumulative.Length; i++)
        {
            if (u < cumulative[i])
            {
                return i;
            }
        }

        return cumulative.Length - 1;
    }

    internal static double LogSumExp(double[] terms)
    {
        var max = terms.Max();
        if (double.IsNegativeInfinity(max))
        {
            return max;
        }

        var sum = 0.0;
        foreach (var t in terms)
        {
            sum += Math.Exp(t - max);
        }

        return max + Math.Log(sum);
    }
}

/// <summary>
/// The Parzen estimator of a categorical dimension (as Optuna builds it): one kernel per observation that puts weight 1
/// on the observed choice plus prior_weight / kernels spread evenly over all choices, then normalized; plus a uniform
/// prior kernel; mixed by the kernels' weights.
/// </summary>
public sealed class CategoricalParzenEstimator
{
    private readonly double[][] _rows;
    private readonly double[] _cumulative;

    /// <param name="choices">How many values the dimension has.</param>
    /// <param name="observations">Observed choices' indices.</param>
    /// <param name="weights">One non-negative weight per observation.</param>
    /// <param name="options">The prior weight.</param>
    public CategoricalParzenEstimator(int choices, IReadOnlyList<int> observations, IReadOnlyList<double> weights, TpeOptions options)
    {
        if (observations.Count != weights.Count)
        {
            throw new ArgumentException($"{observations.Count} observations but {weights.Count} weights.");
        }

        var n = observations.Count;
        var kernels = n + 1;
        _rows = new double[kernels][];
        for (var k = 0; k < kernels; k++)
        {
            var row = Enumerable.Repeat(options.PriorWeight / kernels, choices).ToArray();
            if (k < n)
            {
                row[observations[k]] += 1;
            }

            var sum = row.Sum();
            _rows[k] = sum > 0 ? [.. row.Select(x => x / sum)] : [.. Enumerable.Repeat(1.0 / choices, choices)];
        }

        var w = new double[kernels];
        for (var k = 0; k < n; k++)
        {
            w[k] = weights[k];
        }

        w[n] = n == 0 ? 1.0 : options.PriorWeight;
        Weights = NumericParzenEstimator.Normalize(w);
        _cumulative = NumericParzenEstimator.Cumulative(Weights);
        Probabilities = [.. Enumerable.Range(0, choices).Select(c => Enumerable.Range(0, kernels).Sum(k => Weights[k] * _rows[k][c]))];
    }

    /// <summary>The kernels' mixture weights, summing to 1.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>The mixture's probability of each choice (summing to 1).</summary>
    public IReadOnlyList<double> Probabilities { get; }

    public double LogDensity(int choice) => Math.Log(Probabilities[choice]);

    /// <summary>One draw: a kernel chosen by weight, then a choice from that kernel.</summary>
    public int Sample(Rng rng) => SampleKernel(NumericParzenEstimator.Pick(_cumulative, rng.NextDouble()), rng);

    /// <summary>How many kernels the mixture has (observations + the prior).</summary>
    public int KernelCount => _rows.Length;

    /// <summary>Each kernel's own log probability of <paramref name="choice"/>, before weighting.</summary>
    public double[] KernelLogDensities(int choice) => [.. _rows.Select(row => Math.Log(row[choice]))];

    /// <summary>A draw from kernel <paramref name="k"/> alone.</summary>
    public int SampleKernel(int k, Rng rng) => NumericParzenEstimator.Pick(NumericParzenEstimator.Cumulative(_rows[k]), rng.NextDouble());
}

/// <summary>
/// The Parzen estimator of several dimensions at once (multivariate TPE, Falkner et al. 2018, as Optuna builds it):
/// kernel k is the product of every dimension's kernel k, all centred on the same trial, so the mixture keeps the
/// trials' combinations of values instead of treating each parameter alone. Each dimension's kernels are built as the
/// one-dimensional estimators build them; the weights are shared.
/// </summary>
public sealed class JointParzenEstimator
{
    private readonly IReadOnlyList<SearchDimension> _dimensions;
    private readonly object[] _estimators; // NumericParzenEstimator or CategoricalParzenEstimator per dimension
    private readonly double[] _logWeights;
    private readonly double[] _cumulative;

    /// <param name="dimensions">Numeric or categorical dimensions.</param>
    /// <param name="observations">One row per trial: its value of every dimension (numbers as internal coordinates, categories as indices).</param>
    /// <param name="weights">One non-negative weight per row.</param>
    /// <param name="options">Prior weight, clipping and endpoints.</param>
    public JointParzenEstimator(IReadOnlyList<SearchDimension> dimensions, IReadOnlyList<double[]> observations, IReadOnlyList<double> weights, TpeOptions options)
    {
        _dimensions = dimensions;
        _estimators = new object[dimensions.Count];
        IReadOnlyList<double> kernelWeights = [];
        for (var d = 0; d < dimensions.Count; d++)
        {
            var column = d;
            switch (dimensions[d])
            {
                case NumericDimension numeric:
                    var n = new NumericParzenEstimator(numeric, [.. observations.Select(o => o[column])], weights, options);
                    (_estimators[d], kernelWeights) = (n, n.Weights);
                    break;
                case CategoricalDimension categorical:
                    var c = new CategoricalParzenEstimator(categorical.Values.Count, [.. observations.Select(o => (int)o[column])], weights, options);
                    (_estimators[d], kernelWeights) = (c, c.Weights);
                    break;
                default:
                    throw new ArgumentException($"a joint estimator takes numeric and categorical dimensions, not {dimensions[d].GetType().Name}.");
            }
        }

        Weights = kernelWeights;
        _logWeights = [.. kernelWeights.Select(w => Math.Log(w))];
        _cumulative = NumericParzenEstimator.Cumulative(kernelWeights);
    }

    /// <summary>The kernels' mixture weights, summing to 1.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>log of the mixture's density at a point (one value per dimension, as trials receive them).</summary>
    public double LogDensity(IReadOnlyList<object> point)
    {
        var terms = (double[])_logWeights.Clone();
        for (var d = 0; d < _dimensions.Count; d++)
        {
            var kernels = _estimators[d] switch
            {
                NumericParzenEstimator n => n.KernelLogDensities(ParamValue.AsDouble(point[d])),
                CategoricalParzenEstimator c => c.KernelLogDensities(((CategoricalDimension)_dimensions[d]).IndexOf(point[d])),
                _ => throw new InvalidOperationException(),
            };
            for (var k = 0; k < terms.Length; k++)
            {
                terms[k] += kernels[k];
            }
        }

        return NumericParzenEstimator.LogSumExp(terms);
    }

    /// <summary>One draw: a kernel chosen by weight, then every dimension drawn from that kernel.</summary>
    public object[] Sample(Rng rng)
    {
        var k = NumericParzenEstimator.Pick(_cumulative, rng.NextDouble());
        var point = new object[_dimensions.Count];
        for (var d = 0; d < _dimensions.Count; d++)
        {
            point[d] = _estimators[d] switch
            {
                NumericParzenEstimator n => n.SampleKernel(k, rng),
                CategoricalParzenEstimator c => ((CategoricalDimension)_dimensions[d]).Values[c.SampleKernel(k, rng)],
                _ => throw new InvalidOperationException(),
            };
        }

        return point;
    }
}
