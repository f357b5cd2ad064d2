using Sweeper.Core.Queries;

namespace Sweeper.Core.Tests;

public class FilterParserTests
{
    private static readonly string[] _params = ["dropout", "hidden_size", "learning_rate", "model"];

    [Fact]
    public void And_binds_tighter_than_or_and_not_applies_to_the_next_term()
    {
        var node = FilterParser.Parse("dropout > 0 or hidden_size >= 100 and not state = pruned", _params);
        var or = Assert.IsType<Or>(node);
        Assert.Equal(new Comparison("dropout", ">", 0.0, 0), or.Left);
        var and = Assert.IsType<And>(or.Right);
        Assert.Equal(new Comparison("hidden_size", ">=", 100.0, 15), and.Left);
        Assert.Equal(new Not(new Comparison("state", "=", "pruned", 42)), and.Right);
    }

    [Fact]
    public void Parentheses_quoted_strings_bare_words_and_scientific_numbers_parse()
    {
        var node = FilterParser.Parse("(model = 'fc' OR model = \"two_layer\") AND learning_rate <= 1e-3 and state <> failed", _params);
        var and = Assert.IsType<And>(node);
        var inner = Assert.IsType<And>(and.Left);
        Assert.IsType<Or>(inner.Left);
        Assert.Equal(new Comparison("learning_rate", "<=", 1e-3, 42), inner.Right);
        Assert.Equal(new Comparison("state", "!=", "failed", 68), and.Right);
        Assert.Null(FilterParser.Parse("  ", _params));
    }

    [Theory]
    [InlineData("dropot > 0", 0, "unknown field 'dropot'")]
    [InlineData("dropout >> 0", 9, "expected a value")]
    [InlineData("dropout 0", 8, "expected a comparison")]
    [InlineData("(dropout > 0", 12, "missing ')'")]
    [InlineData("model = 'fc", 8, "unterminated string")]
    [InlineData("model > fc", 8, "needs a number")]
    [InlineData("dropout > 0 hidden_size > 1", 12, "unexpected")]
    [InlineData("dropout > 0 and", 15, "expected a field name")]
    public void Bad_queries_point_at_the_position(string text, int position, string problem)
    {
        var ex = Assert.Throws<QueryException>(() => FilterParser.Parse(text, _params));
        Assert.Equal(position, ex.Position);
        Assert.Contains(problem, ex.Problem);
        Assert.Contains($"position {position + 1}", ex.Message);
    }

    [Fact]
    public void Sort_keys_take_a_minus_for_descending_and_are_checked()
    {
        Assert.Equal([new SortKey("val_accuracy", true), new SortKey("hidden_size", false)], FilterParser.ParseSort("-val_accuracy, hidden_size", _params));
        var ex = Assert.Throws<QueryException>(() => FilterParser.ParseSort("number,-acc", _params));
        Assert.Equal(8, ex.Position);
    }
}
