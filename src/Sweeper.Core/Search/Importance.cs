using System.Globalization;

namespace Sweeper.Core.Search;

/// <summary>Settings of <see cref="Importance"/>. Defaults keep one computation well under a second for 2,000 trials.</summary>
public sealed record ImportanceOptions
{
    /// <summary>Regression trees in the forest. Default: 32.</summary>
    public int Trees { get; init; } = 32;

    /// <summary>Deepest split of a tree. Default: 8.</summary>
    public int MaxDepth { get; init; } = 8;

    /// <summary>Fewest rows a leaf may hold. Default: 3.</summary>
    public int MinLeaf { get; init; } = 3;

    /// <summary>Most rows used: more are sampled down to this many (seeded), so the cost is capped. Default: 2,000.</summary>
    public int MaxRows { get; init; } = 2_000;

    /// <summary>Seed of the bootstrap, the row sample and the permutations: equal inputs give equal answers. Default: 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>
/// Parameter importances by the <b>permutation importance of a random forest</b> (Breiman 2001): a forest of
/// regression trees, each grown on a bootstrap sample of the trials, predicts a trial's value from its parameters; a
/// parameter's importance is how much the trees' squared error on the trials each tree did not see (out of bag) grows
/// when that parameter's column is shuffled among those trials, averaged over the trees, negatives counted as 0, and
/// the importances scaled to shares that sum to 1. A parameter the value does not depend on gets about 0; two that
/// matter alike get about equal shares. Deterministic for a given <see cref="ImportanceOptions.Seed"/>; cost capped by
/// sampling at most <see cref="ImportanceOptions.MaxRows"/> rows. Not an fANOVA: it measures how much predictions rely
/// on a parameter, not a variance decomposition over marginals.
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
        if (n < 2 * options.MinLeaf || d == 0)
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
        var increase = new double[d];
        var counted = 0;
        var row = new double[d];
        for (var t = 0; t < options.Trees; t++)
        {
            var inBag = new int[n];
            var bag = new int[n];
            for (var i = 0; i < n; i++)
            {
                bag[i] = rng.Next(n);
                inBag[bag[i]]++;
            }

            var oob = Enumerable.Range(0, n).Where(i => inBag[i] == 0).ToArray();
            if (oob.Length < 2)
            {
                continue;
            }

            var tree = Tree.Grow(x, y, bag, options.MaxDepth, options.MinLeaf);
            double Mse(int permuted, int[]? order)
            {
                var sum = 0.0;
                for (var k = 0; k < oob.Length; k++)
                {
                    for (var j = 0; j < d; j++)
                    {
                        row[j] = x[j][j == permuted ? order![k] : oob[k]];
                    }

                    var e = tree.Predict(row) - y[oob[k]];
                    sum += e * e;
                }

                return sum / oob.Length;
            }

            var baseline = Mse(-1, null);
            for (var j = 0; j < d; j++)
            {
                var order = (int[])oob.Clone();
                rng.Shuffle(order);
                increase[j] += Mse(j, order) - baseline;
            }

            counted++;
        }

        if (counted == 0)
        {
            return shares;
        }

        var total = 0.0;
        for (var j = 0; j < d; j++)
        {
            shares[j] = Math.Max(0, increase[j] / counted);
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
