using System.Globalization;
using Sweeper.Core.Trials;

namespace Sweeper.Core.Queries;

/// <summary>A filter expression: comparisons joined by and/or/not.</summary>
public abstract record FilterNode;

/// <summary><c>field op value</c>; the value is a double or a string.</summary>
public sealed record Comparison(string Field, string Op, object Value, int Position) : FilterNode;

public sealed record And(FilterNode Left, FilterNode Right) : FilterNode;

public sealed record Or(FilterNode Left, FilterNode Right) : FilterNode;

public sealed record Not(FilterNode Inner) : FilterNode;

/// <summary>One sort key: a field, descending when written with a leading '-'.</summary>
public sealed record SortKey(string Field, bool Descending);

/// <summary>
/// A query over a study's trials: filter, sort, paging. Fields are trial columns or parameter names. <see cref="Sample"/>
/// (in (0, 1]) keeps about that fraction of the matches: a fixed pseudo-random subset chosen by a hash of the trial
/// number, so the same trials stay in it as a study runs and grid order cannot alias with it. With
/// <see cref="CountMatches"/> false the store need not count the matches (a scan of the study when the page itself
/// walks an index) and reports the total as -1.
/// </summary>
public sealed record TrialQuery(FilterNode? Filter, IReadOnlyList<SortKey> Sort, int Offset = 0, int? Limit = null, double? Sample = null, bool CountMatches = true);

/// <summary>One group of <c>--group-by</c>: the field's value (a number, a string, or null when a trial lacks it) and its trials' figures.</summary>
public sealed record TrialGroup(object? Value, int Trials, int Completed, double? BestValAccuracy, double? MeanValAccuracy);

/// <summary>A bad query: the message says what and <see cref="Position"/> where (0-based character offset).</summary>
public sealed class QueryException(string message, int position, string text)
    : Exception($"{message} at position {position + 1} of \"{text}\"")
{
    public int Position { get; } = position;

    public string Problem { get; } = message;
}

/// <summary>
/// Parses the filter language of <c>sweeper results --where</c> and the API:
/// <c>dropout &gt; 0 and (hidden_size &gt;= 100 or model = 'fc') and not state = pruned</c>. Fields are checked
/// against the known ones: trial fields (<see cref="TrialFields"/>) and parameters, which live in separate namespaces:
/// <c>params.NAME</c> always names the parameter NAME, and a bare name is the trial field when there is one (so
/// <c>epochs</c> is the epochs a trial has done and <c>params.epochs</c> the parameter). Names may hold '.' and '-'
/// (W&amp;B's nested parameters: <c>optimizer.lr</c>). Values are finite numbers, quoted strings or bare words. Nesting
/// is limited to <see cref="MaxDepth"/> levels. Every problem is a <see cref="QueryException"/> with its position. The
/// tree is turned into parameterized SQL by the store; no text of the query is ever pasted into SQL.
/// </summary>
public sealed class FilterParser
{
    /// <summary>The trial columns a query may name (parameters come on top).</summary>
    public static readonly IReadOnlySet<string> TrialFields = new HashSet<string> { "number", "state", "val_accuracy", "train_accuracy", "epochs", "attempts", "seed", "owner", "value" };

    /// <summary>Names a parameter explicitly: <c>params.epochs</c> is the parameter, <c>epochs</c> the trial field.</summary>
    public const string ParameterPrefix = "params.";

    /// <summary>
    /// The name a parameter goes by in filters, sorts, columns, rows and tables: its own name, unless a trial field (or
    /// <c>reason</c>) has that name, in which case <c>params.NAME</c>. <c>params.NAME</c> is accepted for any parameter.
    /// </summary>
    public static string ParameterColumn(string name) => TrialFields.Contains(name) || name == "reason" ? ParameterPrefix + name : name;

    /// <summary>The parameter a field names (by <see cref="ParameterColumn"/> or with the prefix), or null for a trial field.</summary>
    public static string? ParameterOf(string field) => field.StartsWith(ParameterPrefix, StringComparison.Ordinal) ? field[ParameterPrefix.Length..] : TrialFields.Contains(field) || field == "reason" ? null : field;

    /// <summary>Every name a query may use, mapped to its canonical form (<see cref="ParameterColumn"/> for parameters).</summary>
    private static Dictionary<string, string> Names(IEnumerable<string> parameterNames, bool reason = false)
    {
        var names = TrialFields.ToDictionary(f => f, f => f);
        if (reason)
        {
            names["reason"] = "reason";
        }

        foreach (var p in parameterNames)
        {
            names[ParameterColumn(p)] = ParameterColumn(p);
            names[ParameterPrefix + p] = ParameterColumn(p);
        }

        return names;
    }

    private static readonly string[] _ops = ["<=", ">=", "!=", "<>", "=", "<", ">"];

    /// <summary>The deepest nesting of parentheses and nots a filter may have: the parser recurses once per level.</summary>
    public const int MaxDepth = 100;

    /// <summary>
    /// The most comparisons a filter may hold: each becomes a term of one SQL expression, and the stores refuse deep
    /// ones (SQLite at 1,000 levels) with an error of their own.
    /// </summary>
    public const int MaxComparisons = 100;

    /// <summary>The trial fields that hold text; the others (<see cref="TrialFields"/>) hold numbers.</summary>
    private static readonly HashSet<string> _textFields = ["state", "owner"];

    private readonly string _text;
    private int _depth;
    private int _comparisons;
    private readonly IReadOnlyDictionary<string, string> _fields;
    private int _pos;

    private FilterParser(string text, IReadOnlyDictionary<string, string> fields)
    {
        _text = text;
        _fields = fields;
    }

    /// <summary>Parses <paramref name="text"/>; <paramref name="parameterNames"/> are the study's parameters.</summary>
    public static FilterNode? Parse(string? text, IEnumerable<string> parameterNames)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var parser = new FilterParser(text, Names(parameterNames));
        var node = parser.ParseOr();
        parser.SkipSpace();
        if (parser._pos < text.Length)
        {
            throw new QueryException($"unexpected '{text[parser._pos..]}'", parser._pos, text);
        }

        return node;
    }

    /// <summary>Parses "-val_accuracy,number" into sort keys, checking the fields.</summary>
    public static IReadOnlyList<SortKey> ParseSort(string? text, IEnumerable<string> parameterNames)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return [];
        }

        var fields = Names(parameterNames);
        var keys = new List<SortKey>();
        var offset = 0;
        foreach (var part in text.Split(','))
        {
            var trimmed = part.Trim();
            var descending = trimmed.StartsWith('-');
            var name = trimmed.Length > 0 && trimmed[0] is '-' or '+' ? trimmed[1..] : trimmed;
            if (name.Length > 0 && name[0] is '-' or '+')
            {
                throw new QueryException("one sign before a field: '-' for descending, '+' or none for ascending", offset + part.IndexOf(name, StringComparison.Ordinal), text);
            }

            if (!fields.TryGetValue(name, out var canonical))
            {
                throw new QueryException($"unknown field '{name}' (known: {Known(fields)})", offset + part.IndexOf(name, StringComparison.Ordinal), text);
            }

            keys.Add(new SortKey(canonical, descending));
            offset += part.Length + 1;
        }

        return keys;
    }

    /// <summary>Parses "learning_rate,reg,val_accuracy" into the columns to show (trial fields, parameters and reason), checking each.</summary>
    public static IReadOnlyList<string> ParseColumns(string text, IEnumerable<string> parameterNames)
    {
        var fields = Names(parameterNames, reason: true);
        var columns = new List<string>();
        var offset = 0;
        foreach (var part in text.Split(','))
        {
            var name = part.Trim();
            if (!fields.TryGetValue(name, out var canonical))
            {
                throw new QueryException($"unknown column '{name}' (known: {Known(fields)})", offset + Math.Max(0, part.IndexOf(name, StringComparison.Ordinal)), text);
            }

            columns.Add(canonical);
            offset += part.Length + 1;
        }

        return columns;
    }

    /// <summary>Checks the field of a grouping: a trial field or a parameter.</summary>
    public static string ParseField(string text, IEnumerable<string> parameterNames)
    {
        var name = text.Trim();
        var fields = Names(parameterNames);
        if (!fields.TryGetValue(name, out var canonical))
        {
            throw new QueryException($"unknown field '{name}' (known: {Known(fields)})", Math.Max(0, text.IndexOf(name, StringComparison.Ordinal)), text);
        }

        return canonical;
    }

    /// <summary>The names to suggest: canonical ones only (not the redundant params. forms).</summary>
    private static string Known(IReadOnlyDictionary<string, string> fields) => string.Join(", ", fields.Values.Distinct().Order());

    private FilterNode ParseOr()
    {
        var left = ParseAnd();
        while (Keyword("or"))
        {
            left = new Or(left, ParseAnd());
        }

        return left;
    }

    private FilterNode ParseAnd()
    {
        var left = ParseUnary();
        while (Keyword("and"))
        {
            left = new And(left, ParseUnary());
        }

        return left;
    }

    private FilterNode ParseUnary()
    {
        if (++_depth > MaxDepth)
        {
            throw new QueryException($"nested more than {MaxDepth} levels deep (parentheses and nots)", _pos, _text);
        }

        try
        {
            return ParseUnaryAtDepth();
        }
        finally
        {
            _depth--;
        }
    }

    private FilterNode ParseUnaryAtDepth()
    {
        if (Keyword("not"))
        {
            return new Not(ParseUnary());
        }

        SkipSpace();
        if (Peek() == '(')
        {
            _pos++;
            var inner = ParseOr();
            SkipSpace();
            if (Peek() != ')')
            {
                throw new QueryException("missing ')'", _pos, _text);
            }

            _pos++;
            return inner;
        }

        return ParseComparison();
    }

    private FilterNode ParseComparison()
    {
        SkipSpace();
        var start = _pos;
        if (++_comparisons > MaxComparisons)
        {
            throw new QueryException($"more than {MaxComparisons} comparisons; narrow the filter (a range such as x >= 1 and x <= 5 instead of one comparison per value)", start, _text);
        }

        var name = FieldName();
        if (name.Length == 0)
        {
            throw new QueryException("expected a field name", start, _text);
        }

        if (!_fields.TryGetValue(name, out var field))
        {
            throw new QueryException($"unknown field '{name}' (known: {Known(_fields)})", start, _text);
        }

        SkipSpace();
        var op = _ops.FirstOrDefault(o => string.CompareOrdinal(_text, _pos, o, 0, o.Length) == 0)
            ?? throw new QueryException("expected a comparison (=, !=, <, <=, >, >=)", _pos, _text);
        _pos += op.Length;
        SkipSpace();
        var valueStart = _pos;
        object value;
        if (Peek() is '\'' or '"')
        {
            var quote = _text[_pos++];
            var end = _text.IndexOf(quote, _pos);
            if (end < 0)
            {
                throw new QueryException("unterminated string", valueStart, _text);
            }

            value = _text[_pos..end];
            _pos = end + 1;
        }
        else
        {
            var word = Word(allowNumber: true);
            if (word.Length == 0)
            {
                throw new QueryException("expected a value", valueStart, _text);
            }

            // A number is finite; words such as NaN or Infinity are text (a study may have a choice called that).
            var numeric = word[0] is (>= '0' and <= '9') or '.' or '-' or '+';
            if (numeric && double.TryParse(word, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            {
                value = double.IsFinite(d) ? d : throw new QueryException($"the number {word} is past the largest double", valueStart, _text);
            }
            else
            {
                value = word;
            }
        }

        if (field == "seed" && value is double)
        {
            // A seed takes 64 bits, more than a double holds exactly: read as the whole number written.
            var digits = _text[valueStart.._pos].TrimStart('+');
            value = ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var seed)
                ? seed
                : throw new QueryException($"a seed is a whole number from 0 to {ulong.MaxValue} (got {_text[valueStart.._pos]})", valueStart, _text);
        }

        if (value is string && op is "<" or "<=" or ">" or ">=")
        {
            throw new QueryException($"'{op}' needs a number", valueStart, _text);
        }

        // A trial field holds one kind of value: a number compared with text (or text with a number) would match no
        // trial, and its negation none either.
        if (value is string word2 && TrialFields.Contains(field) && !_textFields.Contains(field))
        {
            throw new QueryException($"{field} is a number; got the text '{word2}'", valueStart, _text);
        }

        if (value is double && field == "owner")
        {
            throw new QueryException($"owner is text; quote it: owner = '{_text[valueStart.._pos]}'", valueStart, _text);
        }

        if (field == "state")
        {
            // A trial's state is one of a fixed set: a typo ("complete") is an error, not a filter that matches nothing.
            var states = Enum.GetValues<TrialState>().Select(t => t.ToText()).ToList();
            if (value is not string text || !states.Contains(text.ToLowerInvariant()))
            {
                throw new QueryException($"unknown state '{Convert.ToString(value, CultureInfo.InvariantCulture)}' (known: {string.Join(", ", states)})", valueStart, _text);
            }

            value = text.ToLowerInvariant();
        }

        return new Comparison(field, op == "<>" ? "!=" : op, value, start);
    }

    private bool Keyword(string word)
    {
        SkipSpace();
        if (string.Compare(_text, _pos, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) == 0
            && (_pos + word.Length == _text.Length || !IsWordChar(_text[_pos + word.Length])))
        {
            _pos += word.Length;
            return true;
        }

        return false;
    }

    private string Word(bool allowNumber = false)
    {
        var start = _pos;
        while (_pos < _text.Length && (IsWordChar(_text[_pos]) || (allowNumber && _text[_pos] is '.' or '-' or '+')))
        {
            _pos++;
        }

        return _text[start.._pos];
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    /// <summary>A field's name: word characters, with '.' and '-' inside (params.epochs, optimizer.lr, warmup-ratio).</summary>
    private string FieldName()
    {
        var start = _pos;
        while (_pos < _text.Length && (IsWordChar(_text[_pos])
            || (_text[_pos] is '.' or '-' && _pos > start && _pos + 1 < _text.Length && IsWordChar(_text[_pos + 1]))))
        {
            _pos++;
        }

        return _text[start.._pos];
    }

    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private void SkipSpace()
    {
        while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos]))
        {
            _pos++;
        }
    }
}
