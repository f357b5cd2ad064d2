using System.Globalization;

namespace Sweeper.Core.Search;

/// <summary>Settings of <see cref="Importance"/>. The defaults bound the work: 32 trees of depth 8 on at most 2,000 rows.</summary>
public sealed record ImportanceOptions
{
    /// <summary>Regression trees in the forest. Default: 32.</summary>
    public int Trees { get; init; } = 32;

    /// <summary>Deepest split of a tree. Default: 8.</summary>
    public int MaxDepth { get; init; } = 8;

    /// <summary>Fewest rows a leaf may hold (in a sample of n rows, at most n/10, at least 1, so small studies still split). Default: 3.</summary>
    public int MinLeaf { get; init; } = 3;

    /// <summary>Most rows used: more are sampled down to this many (seeded), so the cost is capped. Default: 2,000.</summary>
    public int MaxRows { get; init; } = 2_000;

    /// <summary>Seed of the bootstrap samples and the row samples: equal inputs give equal answers. Default: 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>
/// Parameter importances, fANOVA-like: a <b>random forest</b> of regression trees (each grown on a bootstrap sample of
/// the trials) predicts a trial's value from its parameters, and a parameter's importance is the <b>variance of its main
/// effect</b>: of the forest's partial dependence on it (the prediction averaged over the trials' other parameters, with
/// this one set to each of its values in turn), weighted by how the trials are spread over its values. The shares are
/// those variances scaled to sum to 1 (fANOVA's first-order terms, measured over the trials' own distribution instead of
/// the uniform one, and without the interaction terms). A parameter the value does not depend on gets about 0, two that
/// matter alike about equal shares, and an effect carried by a few trials still shows in a small study. Deterministic for
/// a given <see cref="ImportanceOptions.Seed"/>; the cost is capped by sampling at most
/// <see cref="ImportanceOptions.MaxRows"/> rows, averaging over at most 256 of them and evaluating at most 24 points of each parameter.
/// </summary>
public static class Importance
{
    /// <summary>
    /// Shares of importance (in [0, 1], summing to 1, or all 0 when no parameter explains anything) of each column of
    /// <paramref name="features"/> for <paramref name="values"/>. A NaN feature (a parameter a trial does not have)
    /// is its own value, below every other. Rows whose value is not finite are left out.
    /// </summary>
    public static double[] Of(IReadOnlyList<double[]> features, IReadOnlyList<double> values, ImportanceOptions? options = null)
    {
        options ??= new ImportanceOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Trees, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinLeaf, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRows, 2);
        if (features.Count != values.Count)
        {
            throw new ArgumentException($"{features.Count} rows of features but {values.Count} values.", nameof(values));
        }

        var d = features.Count == 0 ? 0 : features[0].Length;
        var rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
        var rows = Enumerable.Range(0, features.Count).Where(i => double.IsFinite(values[i])).ToArray();
        if (rows.Any(i => features[i].Length != d))
        {
            throw new ArgumentException("every row of features must have as many columns as the first.", nameof(features));
        }

        if (rows.Length > options.MaxRows)
        {
            // A seeded partial shuffle keeps MaxRows of them, each equally likely.
            for (var i = 0; i < options.MaxRows; i++)
            {
                var j = i + rng.Next(rows.Length - i);
                (rows[i], rows[j]) = (rows[j], rows[i]);
            }

            rows = rows[..options.MaxRows];
            Array.Sort(rows);
        }

        var n = rows.Length;
        var shares = new double[d];
        if (n < 4 || d == 0)
        {
            return shares;
        }

        // Columns as contiguous arrays; NaN becomes one value below the column's smallest.
        var x = new double[d][];
        for (var j = 0; j < d; j++)
        {
            x[j] = new double[n];
            var lo = double.PositiveInfinity;
            var hi = double.NegativeInfinity;
            for (var r = 0; r < n; r++)
            {
                var v = features[rows[r]][j];
                x[j][r] = v;
                if (!double.IsNaN(v))
                {
                    lo = Math.Min(lo, v);
                    hi = Math.Max(hi, v);
                }
            }

            var missing = double.IsFinite(lo) ? lo - Math.Max(1, hi - lo) : 0;
            for (var r = 0; r < n; r++)
            {
                if (double.IsNaN(x[j][r]))
                {
                    x[j][r] = missing;
                }
            }
        }

        var y = rows.Select(i => values[i]).ToArray();
        var minLeaf = Math.Clamp(n / 10, 1, options.MinLeaf);
        var trees = new List<Tree>(options.Trees);
        for (var t = 0; t < options.Trees; t++)
        {
            var bag = new int[n];
            for (var i = 0; i < n; i++)
            {
                bag[i] = rng.Next(n);
            }

            trees.Add(Tree.Grow(x, y, bag, options.MaxDepth, minLeaf));
        }

        // The rows each partial dependence averages over: all of them, or a fixed sample of Background.
        var background = Enumerable.Range(0, n).ToArray();
        if (n > Background)
        {
            rng.Shuffle(background);
            background = background[..Background];
        }

        var row = new double[d];
        var effect = new double[d];
        for (var j = 0; j < d; j++)
        {
            // The forest's partial dependence on column j at each point of its grid, weighted by how often the
            // trials take (or fall near) that value; the variance of those means is the main effect's.
            var grid = Grid(x[j]);
            var pd = new double[grid.Count];
            for (var g = 0; g < grid.Count; g++)
            {
                var sum = 0.0;
                foreach (var b in background)
                {
                    for (var k = 0; k < d; k++)
                    {
                        row[k] = k == j ? grid[g].Value : x[k][b];
                    }

                    foreach (var tree in trees)
                    {
                        sum += tree.Predict(row);
                    }
                }

                pd[g] = sum / (background.Length * trees.Count);
            }

            var mean = 0.0;
            for (var g = 0; g < grid.Count; g++)
            {
                mean += grid[g].Weight * pd[g];
            }

            for (var g = 0; g < grid.Count; g++)
            {
                effect[j] += grid[g].Weight * (pd[g] - mean) * (pd[g] - mean);
            }
        }

        var total = 0.0;
        for (var j = 0; j < d; j++)
        {
            shares[j] = effect[j] > 1e-15 * (1 + Variance(y)) ? effect[j] : 0; // numerical dust is no effect
            total += shares[j];
        }

        if (!(total > 0))
        {
            return new double[d];
        }

        for (var j = 0; j < d; j++)
        {
            shares[j] /= total;
        }

        return shares;
    }

    /// <summary>Rows a partial dependence averages over at most (a fixed sample beyond).</summary>
    private const int Background = 256;

    /// <summary>Points at which a column's partial dependence is taken at most: its distinct values when fewer, else quantiles.</summary>
    private const int GridPoints = 24;

    /// <summary>A column's grid: each distinct value weighted by its share of the rows, or, past <see cref="GridPoints"/> values, equally weighted mid-quantiles.</summary>
    private static List<(double Value, double Weight)> Grid(double[] column)
    {
        var sorted = (double[])column.Clone();
        Array.Sort(sorted);
        var distinct = new List<(double Value, double Weight)>();
        for (var i = 0; i < sorted.Length; i++)
        {
            if (distinct.Count > 0 && distinct[^1].Value == sorted[i])
            {
                distinct[^1] = (sorted[i], distinct[^1].Weight + (1.0 / sorted.Length));
            }
            else
            {
                distinct.Add((sorted[i], 1.0 / sorted.Length));
            }
        }

        if (distinct.Count <= GridPoints)
        {
            return distinct;
        }

        return [.. Enumerable.Range(0, GridPoints).Select(k => (sorted[(int)((k + 0.5) * sorted.Length / GridPoints)], 1.0 / GridPoints))];
    }

    private static double Variance(double[] y)
    {
        var mean = y.Average();
        return y.Sum(v => (v - mean) * (v - mean)) / y.Length;
    }

    /// <summary>
    /// The feature rows of trials' parameters, one column per name in <paramref name="names"/>: numbers as they are
    /// (log10 of those in <paramref name="logScaled"/>, when positive), booleans and strings as ordered categories
    /// (their index in the sorted distinct values of the column; a column with any non-number is all categories), and
    /// NaN where a trial lacks the parameter.
    /// </summary>
    public static List<double[]> Encode(IReadOnlyList<string> names, IReadOnlyList<IReadOnlyDictionary<string, object>> parameters, IReadOnlySet<string> logScaled)
    {
        var rows = parameters.Select(_ => new double[names.Count]).ToList();
        for (var j = 0; j < names.Count; j++)
        {
            var name = names[j];
            var numeric = parameters.All(p => !p.TryGetValue(name, out var v) || v is null || AsNumber(v) is not null);
            var categories = numeric ? null : parameters.Select(p => p.TryGetValue(name, out var v) && v is not null ? Text(v) : null).OfType<string>()
                .Distinct().Order(StringComparer.Ordinal).Select((c, i) => (c, i)).ToDictionary(x => x.c, x => (double)x.i, StringComparer.Ordinal);
            var log = logScaled.Contains(name);
            for (var r = 0; r < parameters.Count; r++)
            {
                if (!parameters[r].TryGetValue(name, out var v) || v is null)
                {
                    rows[r][j] = double.NaN;
                }
                else if (categories is not null)
                {
                    rows[r][j] = categories[Text(v)];
                }
                else
                {
                    var number = AsNumber(v)!.Value;
                    rows[r][j] = log && number > 0 ? Math.Log10(number) : number;
                }
            }
        }

        return rows;
    }

    private static double? AsNumber(object v) => v switch
    {
        double d => d,
        float f => f,
        long l => l,
        int i => i,
        decimal m => (double)m,
        _ => null,
    };

    private static string Text(object v) => v switch
    {
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>A regression tree in flat arrays: node k splits on Feature[k] at Threshold[k] (left when below), or is a leaf when Feature[k] is -1.</summary>
    private sealed class Tree
    {
        private readonly List<int> _feature = [];
        private readonly List<double> _threshold = [];
        private readonly List<int> _left = [];
        private readonly List<int> _right = [];
        private readonly List<double> _value = [];

        public static Tree Grow(double[][] x, double[] y, int[] rows, int maxDepth, int minLeaf)
        {
            var tree = new Tree();
            tree.Split(x, y, rows, 0, maxDepth, minLeaf);
            return tree;
        }

        public double Predict(double[] row)
        {
            var k = 0;
            while (_feature[k] >= 0)
            {
                k = row[_feature[k]] < _threshold[k] ? _left[k] : _right[k];
            }

            return _value[k];
        }

        private int Split(double[][] x, double[] y, int[] rows, int depth, int maxDepth, int minLeaf)
        {
            var k = _feature.Count;
            var mean = 0.0;
            foreach (var r in rows)
            {
                mean += y[r];
            }

            mean /= rows.Length;
            _feature.Add(-1);
            _threshold.Add(0);
            _left.Add(-1);
            _right.Add(-1);
            _value.Add(mean);
            if (depth >= maxDepth || rows.Length < 2 * minLeaf)
            {
                return k;
            }

            // The split that lowers the sum of squared errors most: for a cut after the first m sorted rows, the
            // error left is sum(y^2) - left^2/m - right^2/(n-m), so the best cut maximizes left^2/m + right^2/(n-m).
            var n = rows.Length;
            var total = 0.0;
            foreach (var r in rows)
            {
                total += y[r];
            }

            var bestGain = total * total / n + 1e-12 * Math.Max(1, Math.Abs(total * total / n));
            int bestFeature = -1;
            var bestThreshold = 0.0;
            var sorted = new int[n];
            var keys = new double[n];
            for (var j = 0; j < x.Length; j++)
            {
                rows.CopyTo(sorted, 0);
                for (var i = 0; i < n; i++)
                {
                    keys[i] = x[j][sorted[i]];
                }

                Array.Sort(keys, sorted);
                var left = 0.0;
                for (var m = 1; m < n; m++)
                {
                    left += y[sorted[m - 1]];
                    if (m < minLeaf || n - m < minLeaf || keys[m] <= keys[m - 1])
                    {
                        continue;
                    }

                    var right = total - left;
                    var gain = (left * left / m) + (right * right / (n - m));
                    if (gain > bestGain)
                    {
                        (bestGain, bestFeature, bestThreshold) = (gain, j, (keys[m - 1] + keys[m]) / 2);
                    }
                }
            }

            if (bestFeature < 0)
            {
                return k;
            }

            var lower = rows.Where(r => x[bestFeature][r] < bestThreshold).ToArray();
            var upper = rows.Where(r => x[bestFeature][r] >= bestThreshold).ToArray();
            if (lower.Length == 0 || upper.Length == 0)
            {
                return k; // neighbours too close for a midpoint between them: no split
            }

            _feature[k] = bestFeature;
            _threshold[k] = bestThreshold;
            _left[k] = Split(x, y, lower, depth + 1, maxDepth, minLeaf);
            _right[k] = Split(x, y, upper, depth + 1, maxDepth, minLeaf);
            return k;
        }
    }
}
