using System.Globalization;

namespace Sweeper.Core.Sweeps;

/// <summary>
/// One problem of a sweep file at its place: <c>file:line:column: key: message</c>. Errors make the file unusable;
/// warnings (a W&amp;B key that means nothing here) are kept on the definition and printed by <c>sweeper validate</c>.
/// </summary>
/// <param name="File">The file as the user named it.</param>
/// <param name="Line">1-based line (0 when the file itself is missing).</param>
/// <param name="Column">1-based column.</param>
/// <param name="Key">The key's path, e.g. parameters.learning_rate.min; empty for the file as a whole.</param>
/// <param name="Message">What is wrong, with a "did you mean" when a misspelling is likely.</param>
public sealed record SweepFileIssue(string File, int Line, int Column, string Key, string Message)
{
    /// <summary><c>file:line:column: key: message</c>, or <c>file: message</c> for the file as a whole (line 0: it is missing).</summary>
    public override string ToString() => (Line > 0 ? $"{File}:{Line.ToString(CultureInfo.InvariantCulture)}:{Column.ToString(CultureInfo.InvariantCulture)}: " : File + ": ")
        + (Key.Length > 0 ? Key + ": " : "") + Message;
}

/// <summary>
/// A sweep file that cannot be used. It carries every problem the parser found (<see cref="Errors"/>, in the order of
/// the file); its message is one <c>file:line:column: key: problem</c> line per error. <see cref="Line"/>,
/// <see cref="Column"/>, <see cref="Key"/> and <see cref="Problem"/> are the first error's.
/// </summary>
public sealed class SweepFileException : Exception
{
    public SweepFileException(string file, int line, int column, string key, string problem)
        : this([new SweepFileIssue(file, line, column, key, problem)])
    {
    }

    public SweepFileException(IReadOnlyList<SweepFileIssue> errors)
        : base(string.Join("\n", Check(errors)))
    {
        Errors = errors;
    }

    /// <summary>Every error of the file, at least one.</summary>
    public IReadOnlyList<SweepFileIssue> Errors { get; }

    public string File => Errors[0].File;

    public int Line => Errors[0].Line;

    public int Column => Errors[0].Column;

    /// <summary>The first error's key path, e.g. parameters.learning_rate.min.</summary>
    public string Key => Errors[0].Key;

    /// <summary>The first error's problem.</summary>
    public string Problem => Errors[0].Message;

    private static IReadOnlyList<SweepFileIssue> Check(IReadOnlyList<SweepFileIssue> errors) =>
        errors.Count > 0 ? errors : throw new ArgumentException("a sweep file error needs at least one problem.", nameof(errors));
}

/// <summary>"Did you mean" for misspelt keys and values: the closest known word by edit distance, when close enough.</summary>
public static class Suggest
{
    /// <summary>" (did you mean X?)" for the closest of <paramref name="known"/>, or "" when none is close.</summary>
    public static string DidYouMean(string word, IEnumerable<string> known)
    {
        var best = Closest(word, known);
        return best is null ? "" : $" (did you mean {best}?)";
    }

    /// <summary>
    /// The known word nearest to <paramref name="word"/> (case-insensitive Damerau-Levenshtein distance), if at most a
    /// third of its letters differ (at least 1, at most 3); never the word itself.
    /// </summary>
    public static string? Closest(string word, IEnumerable<string> known)
    {
        var limit = Math.Clamp(word.Length / 3, 1, 3);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in known)
        {
            var d = Distance(word.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (d < bestDistance && d <= limit && candidate != word)
            {
                (best, bestDistance) = (candidate, d);
            }
        }

        return best;
    }

    /// <summary>Edits (insert, delete, substitute, swap two neighbours) that turn <paramref name="a"/> into <paramref name="b"/>.</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
