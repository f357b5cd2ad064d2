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
    [InlineData("state = complete", 8, "unknown state 'complete' (known: pending, running, completed, pruned, diverged, failed, paused)")]
    [InlineData("epochs > 1 and state != 3", 24, "unknown state '3'")]
    [InlineData("val_accuracy != 'abc'", 16, "val_accuracy is a number; got the text 'abc'")]
    [InlineData("not (epochs = abc)", 14, "epochs is a number")]
    [InlineData("owner = 3", 8, "owner is text; quote it")]
    public void Bad_queries_point_at_the_position(string text, int position, string problem)
    {
        var ex = Assert.Throws<QueryException>(() => FilterParser.Parse(text, _params));
        Assert.Equal(position, ex.Position);
        Assert.Contains(problem, ex.Problem);
        Assert.Contains($"position {position + 1}", ex.Message);
    }

    [Fact]
    public void A_filter_holds_at_most_a_hundred_comparisons_before_a_store_would_refuse_its_depth()
    {
        string Chain(int n) => string.Join(" or ", Enumerable.Repeat("dropout = 0.5", n));
        Assert.NotNull(FilterParser.Parse(Chain(FilterParser.MaxComparisons), _params));
        var ex = Assert.Throws<QueryException>(() => FilterParser.Parse(Chain(FilterParser.MaxComparisons + 1), _params));
        Assert.Equal(FilterParser.MaxComparisons * "dropout = 0.5 or ".Length, ex.Position);
        Assert.Contains($"more than {FilterParser.MaxComparisons} comparisons", ex.Problem);
    }

    [Fact]
    public void Sort_keys_take_a_minus_for_descending_and_are_checked()
    {
        Assert.Equal([new SortKey("val_accuracy", true), new SortKey("hidden_size", false)], FilterParser.ParseSort("-val_accuracy, hidden_size", _params));
        var ex = Assert.Throws<QueryException>(() => FilterParser.ParseSort("number,-acc", _params));
        Assert.Equal(8, ex.Position);
        Assert.Equal([new SortKey("number", false)], FilterParser.ParseSort("+number", _params));
        var twice = Assert.Throws<QueryException>(() => FilterParser.ParseSort("--number", _params)); // was taken as -number
        Assert.Equal(1, twice.Position);
        Assert.Contains("one sign before a field", twice.Message);
    }

    [Fact]
    public void A_parameter_named_like_a_trial_field_lives_in_its_own_namespace_as_params_name()
    {
        string[] names = ["epochs", "learning_rate", "reason"];
        Assert.Equal("params.epochs", FilterParser.ParameterColumn("epochs"));
        Assert.Equal("params.reason", FilterParser.ParameterColumn("reason"));
        Assert.Equal("learning_rate", FilterParser.ParameterColumn("learning_rate"));

        // Bare "epochs" is the trial field (epochs trained); the parameter is params.epochs.
        var node = Assert.IsType<And>(FilterParser.Parse("epochs < 10 and params.epochs = 10 and params.learning_rate > 0.1", names));
        var left = Assert.IsType<And>(node.Left);
        Assert.Equal(new Comparison("epochs", "<", 10.0, 0), left.Left);
        Assert.Equal(new Comparison("params.epochs", "=", 10.0, 16), left.Right);
        Assert.Equal(new Comparison("learning_rate", ">", 0.1, 39), node.Right); // the prefix is optional where nothing clashes
        Assert.Null(FilterParser.ParameterOf("epochs"));
        Assert.Equal("epochs", FilterParser.ParameterOf("params.epochs"));
        Assert.Equal("learning_rate", FilterParser.ParameterOf("learning_rate"));

        Assert.Equal(["epochs", "params.epochs", "reason", "params.reason"], FilterParser.ParseColumns("epochs,params.epochs,reason,params.reason", names));
        Assert.Equal([new SortKey("params.epochs", true), new SortKey("epochs", false)], FilterParser.ParseSort("-params.epochs,epochs", names));
        Assert.Equal("params.epochs", FilterParser.ParseField("params.epochs", names));
        var unknown = Assert.Throws<QueryException>(() => FilterParser.Parse("params.epoch = 1", names));
        Assert.Contains("unknown field 'params.epoch'", unknown.Message);
    }
}
