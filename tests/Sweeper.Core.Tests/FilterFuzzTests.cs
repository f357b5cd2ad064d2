using Sweeper.Core.Queries;

namespace Sweeper.Core.Tests;

/// <summary>
/// Feeds the filter language (where, sort, columns, group-by) mutants of valid queries and random token soups for a
/// fixed budget: nothing but a <see cref="QueryException"/> with a position inside the text may come out. Seeded.
/// </summary>
public class FilterFuzzTests
{
    private const int Inputs = 30_000;

    /// <summary>A study whose parameters include epochs (also a trial field) and reason-like and odd names.</summary>
    private static readonly string[] _params = ["epochs", "dropout", "model", "optimizer.lr", "state", "reason", "warmup-ratio"];

    private static readonly string[] _seeds =
    [
        "dropout > 0 and (epochs >= 3 or model = 'fc') and not state = pruned",
        "params.epochs = 5 and epochs < 5",
        "params.state = 'x' or state = completed",
        "val_accuracy >= 0.5 and train_accuracy < 1e-1 or number <> 3",
        "not not not (model != \"two_layer\")",
        "optimizer.lr <= 1e-3",
        "params.optimizer.lr > 1.5e-4 and params.reason = 'none'",
    ];

    private static readonly string[] _tokens =
    [
        "(", ")", "and", "or", "not", "AND", "Or", "=", "!=", "<>", "<", "<=", ">", ">=", "==", "'", "\"", "'fc'", "\"x y\"", "params.", "params",
        ".", "epochs", "params.epochs", "state", "val_accuracy", "reason", "owner", "seed", "1", "-1", "1e400", "-1e400", "1e-320", "NaN",
        "Infinity", "-Infinity", "0x10", "1_000", "1,5", "٣", "é", "\u0000", "\t", " ", "  ", ",", "-", "+", "--x", "-val_accuracy",
        "optimizer.lr", "warmup-ratio", "params.warmup-ratio", "9999999999999999999999", "'unterminated", "\\", ";", "DROP TABLE trials",
    ];

    [Fact]
    public void Mutated_and_random_queries_raise_nothing_but_query_errors()
    {
        var rng = new Rng(1_301);
        var failures = new List<string>();
        var accepted = 0;
        for (var i = 0; i < Inputs && failures.Count < 5; i++)
        {
            var text = i % 3 == 0 ? Soup(rng) : Mutate(_seeds[rng.NextInt(_seeds.Length)], rng);
            foreach (var (what, parse) in new (string, Func<string, object?>)[]
            {
                ("where", t => FilterParser.Parse(t, _params)),
                ("sort", t => FilterParser.ParseSort(t, _params)),
                ("columns", t => FilterParser.ParseColumns(t, _params)),
                ("group-by", t => FilterParser.ParseField(t, _params)),
            })
            {
                try
                {
                    parse(text);
                    accepted++;
                }
                catch (QueryException e)
                {
                    if (e.Position < 0 || e.Position > text.Length || !e.Message.Contains(" at position ", StringComparison.Ordinal))
                    {
                        failures.Add($"{what} {Show(text)}: position {e.Position} outside the text: {e.Message}");
                    }
                }
                catch (Exception e)
                {
                    failures.Add($"{what} {Show(text)}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        Assert.InRange(accepted, Inputs / 20, 4 * Inputs);
    }

    [Theory]
    [InlineData(100_000)]
    [InlineData(101)]
    public void Deep_nesting_is_a_query_error_not_a_stack_overflow(int depth)
    {
        foreach (var text in new[] { new string('(', depth) + "epochs > 1" + new string(')', depth), string.Concat(Enumerable.Repeat("not ", depth)) + "epochs > 1" })
        {
            var ex = Assert.Throws<QueryException>(() => FilterParser.Parse(text, _params));
            Assert.Contains("nested more than 100 levels deep", ex.Message);
        }

        Assert.NotNull(FilterParser.Parse(new string('(', 99) + "epochs > 1" + new string(')', 99), _params));
    }

    [Theory]
    [InlineData("dropout > 1e400", "the number 1e400 is past the largest double")]
    [InlineData("dropout < -1e999", "the number -1e999 is past the largest double")]
    public void Numbers_past_the_largest_double_are_query_errors(string text, string says) =>
        Assert.Contains(says, Assert.Throws<QueryException>(() => FilterParser.Parse(text, _params)).Message);

    [Fact]
    public void Words_like_nan_and_infinity_are_text_values()
    {
        Assert.Equal(new Comparison("model", "=", "NaN", 0), FilterParser.Parse("model = NaN", _params));
        Assert.Equal(new Comparison("model", "=", "Infinity", 0), FilterParser.Parse("model = Infinity", _params));
    }

    [Fact]
    public void Trial_fields_and_parameters_live_in_separate_namespaces()
    {
        // epochs is the trial field (epochs done); params.epochs is the parameter of that name.
        Assert.Equal(new Comparison("epochs", ">", 3.0, 0), FilterParser.Parse("epochs > 3", _params));
        Assert.Equal(new Comparison("params.epochs", ">", 3.0, 0), FilterParser.Parse("params.epochs > 3", _params));
        Assert.Equal(new Comparison("params.state", "=", "a", 0), FilterParser.Parse("params.state = a", _params));
        Assert.Equal(new Comparison("dropout", "=", 1.0, 0), FilterParser.Parse("params.dropout = 1", _params));
        Assert.Equal(new Comparison("optimizer.lr", "<", 1.0, 0), FilterParser.Parse("params.optimizer.lr < 1", _params));
        Assert.Equal(new Comparison("optimizer.lr", "<", 1.0, 0), FilterParser.Parse("optimizer.lr < 1", _params));
        Assert.Equal(new And(new Comparison("warmup-ratio", ">", 0.0, 0), new Comparison("epochs", ">", -1.0, 21)), FilterParser.Parse("warmup-ratio > 0 and epochs>-1", _params));
        Assert.Equal([new SortKey("params.epochs", true), new SortKey("epochs", false)], FilterParser.ParseSort("-params.epochs,epochs", _params));
        Assert.Equal(["params.epochs", "epochs", "params.reason", "reason", "dropout"], FilterParser.ParseColumns("params.epochs,epochs,params.reason,reason,dropout", _params));
        Assert.Equal("params.epochs", FilterParser.ParameterColumn("epochs"));
        Assert.Equal("dropout", FilterParser.ParameterColumn("dropout"));
        Assert.Equal("epochs", FilterParser.ParameterOf("params.epochs"));
        Assert.Null(FilterParser.ParameterOf("epochs"));
    }

    private static string Soup(Rng rng)
    {
        var n = 1 + rng.NextInt(12);
        return string.Join(rng.NextInt(4) == 0 ? "" : " ", Enumerable.Range(0, n).Select(_ => _tokens[rng.NextInt(_tokens.Length)]));
    }

    private static string Mutate(string text, Rng rng)
    {
        for (var m = 1 + rng.NextInt(3); m > 0 && text.Length > 0; m--)
        {
            var at = rng.NextInt(text.Length);
            text = rng.NextInt(5) switch
            {
                0 => text.Remove(at, 1),
                1 => text.Insert(at, _tokens[rng.NextInt(_tokens.Length)]),
                2 => text[..at],
                3 => text.Insert(at, ((char)rng.NextInt(0x3000)).ToString()),
                _ => text.Insert(at, " " + _tokens[rng.NextInt(_tokens.Length)] + " "),
            };
        }

        return text;
    }

    private static string Show(string text) => "\"" + string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString())) + "\"";
}
