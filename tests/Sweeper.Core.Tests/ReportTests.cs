using Sweeper.Cli;
using Sweeper.Core.Trials;

namespace Sweeper.Core.Tests;

/// <summary>The tables of results, status and validate at fixed widths and in a pipe.</summary>
public class ReportTests
{
    private static readonly string[] _columns = ["number", "state", "val_accuracy", "train_accuracy", "epochs", "model", "learning_rate", "reg", "params.epochs", "batch_size", "reason"];

    private static IReadOnlyList<IReadOnlyDictionary<string, object?>> Rows() =>
    [
        Row(12, "completed", 0.51234567, 0.6012, 10, "two_layer", 0.000734219, 0.0123456, 10L, 200L, null),
        Row(3, "completed", 0.4999, 0.55, 10, "two_layer", 1.5e-05, 25000.0, 10L, 200L, null),
        Row(7, "failed", null, null, 2, "fc", 0.003, 1e-7, 5L, 100L, "worker lost\nits lease"),
        Row(1, "pruned", 0.1, 0.123456789, 3, "softmax", 0.1, 0.0, 5L, 50L, null),
    ];

    private static Dictionary<string, object?> Row(int n, string state, double? val, double? train, int epochs, string model, double lr, double reg, long pe, long bs, string? reason) => new()
    {
        ["number"] = n, ["state"] = state, ["val_accuracy"] = val, ["train_accuracy"] = train, ["epochs"] = epochs, ["model"] = model,
        ["learning_rate"] = lr, ["reg"] = reg, ["params.epochs"] = pe, ["batch_size"] = bs, ["reason"] = reason,
    };

    [Fact]
    public void At_120_columns_every_column_fits_aligned_with_short_numbers()
    {
        var columns = _columns[..^1];
        var lines = Report.Table(Rows(), columns, 120).TrimEnd('\n').Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 120, l));
        Assert.Equal(2 + 4, lines.Length);
        Assert.Equal(columns, lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["12", "completed", "0.5123", "0.6012", "10", "two_layer", "0.0007342", "0.01235", "10", "200"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["7", "failed", "-", "-", "2", "fc", "0.003", "1e-07", "5", "100"], lines[4].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        // With the reason too the line would pass 120: the reason is left out and named.
        Assert.EndsWith("not shown (120 columns): reason (--columns chooses; --json and --csv have all)", Report.Table(Rows(), _columns, 120).TrimEnd('\n'), StringComparison.Ordinal);

        // Numbers are right-aligned under their header, text left-aligned.
        var header = lines[0];
        Assert.Equal(header.IndexOf("val_accuracy", StringComparison.Ordinal) + "val_accuracy".Length, lines[3].IndexOf("0.4999", StringComparison.Ordinal) + "0.4999".Length);
        Assert.Equal(header.IndexOf("model", StringComparison.Ordinal), lines[3].IndexOf("two_layer", StringComparison.Ordinal));
    }

    [Fact]
    public void At_80_columns_the_columns_that_do_not_fit_are_left_out_and_named_underneath()
    {
        var text = Report.Table(Rows(), _columns, 80);
        var lines = text.TrimEnd('\n').Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 80, $"{l.Length}: {l}"));
        var shown = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(_columns.Take(shown.Length), shown);
        Assert.InRange(shown.Length, 5, _columns.Length - 1);
        var notShown = string.Join(" ", lines.SkipWhile(l => !l.StartsWith("not shown (80 columns):", StringComparison.Ordinal)));
        Assert.All(_columns.Skip(shown.Length), c => Assert.Contains(c, notShown, StringComparison.Ordinal));

        // No value is cut or wrapped: every shown cell appears whole on its row's line.
        Assert.Equal(["12", "completed", "0.5123", "0.6012", "10"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(5));
    }

    [Fact]
    public void A_very_narrow_terminal_still_shows_the_first_column_whole()
    {
        var lines = Report.Table(Rows(), _columns, 10).TrimEnd('\n').Split('\n');
        Assert.Equal("number", lines[0]);
        Assert.Equal("    12", lines[2]);
        Assert.Contains(lines, l => l.Contains("learning_rate", StringComparison.Ordinal));
    }

    [Fact]
    public void In_a_pipe_every_row_is_one_tab_separated_line_with_every_column()
    {
        var lines = Report.Table(Rows(), _columns, null).TrimEnd('\n').Split('\n');
        Assert.Equal(5, lines.Length);
        Assert.Equal(_columns, lines[0].Split('\t'));
        Assert.All(lines, l => Assert.Equal(_columns.Length, l.Split('\t').Length));
        Assert.Equal("7\tfailed\t-\t-\t2\tfc\t0.003\t1e-07\t5\t100\tworker lost its lease", lines[3]);

        // cut -f3 | sort -g works: column 3 holds plain numbers (or '-').
        Assert.Equal(["0.1", "0.4999", "0.5123"], lines.Skip(1).Select(l => l.Split('\t')[2]).Where(v => v != "-").Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(0.51234567, "0.5123")]
    [InlineData(0.0003, "0.0003")]
    [InlineData(1.5e-05, "1.5e-05")]
    [InlineData(25000.0, "25000")]
    [InlineData(1234.5678, "1235")]
    [InlineData(2.5e8, "250000000")]
    [InlineData(2.5e8 + 0.5, "2.5e+08")]
    [InlineData(-0.1, "-0.1")]
    [InlineData(double.NaN, "nan")]
    public void Numbers_have_a_few_significant_digits(double value, string text) => Assert.Equal(text, Report.Number(value));

    [Fact]
    public void Wrapping_breaks_between_words_only()
    {
        var words = new[] { "  parameters:", "model=two_layer", "learning_rate=0.0007342", "reg=0.01235", "hidden_size=100", "batch_size=200" };
        var lines = Report.Wrap(words, 40, "    ").Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 40, l));
        Assert.Equal(words.Select(w => w.Trim()), string.Join(" ", lines).Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.All(lines.Skip(1), l => Assert.StartsWith("    ", l, StringComparison.Ordinal));
        Assert.Single(Report.Wrap(words, null, "").Split('\n'));
    }

    [Fact]
    public void Status_counts_name_only_the_states_that_have_trials()
    {
        Assert.Equal("12 completed, 3 running, 1 failed (13/16 final)", Report.ShortCounts(new StateCounts(0, 3, 12, 0, 0, 1)));
        Assert.Equal("no trials (0/0 final)", Report.ShortCounts(new StateCounts(0, 0, 0, 0, 0, 0)));

        // Bayesian search stores its trials one by one: the final count is of the trials planned.
        Assert.Equal("2 completed, 2 running (2/60 final)", Report.ShortCounts(new StateCounts(0, 2, 2, 0, 0, 0), planned: 60));
        Assert.EndsWith("(2/60 final)", Report.Counts(new StateCounts(0, 2, 2, 0, 0, 0), planned: 60));
        Assert.EndsWith("(13/16 final)", Report.Counts(new StateCounts(0, 3, 12, 0, 0, 1), planned: 10));
    }
}
