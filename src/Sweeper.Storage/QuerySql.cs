using System.Text;
using Sweeper.Core.Queries;

namespace Sweeper.Storage;

/// <summary>
/// A query's SQL: <see cref="Where"/> (" AND ..." after "WHERE study = ..."), <see cref="OrderBy"/> (the keys, then
/// the number), its keys, and whether an index gives that order (then a page needs no sort of all matches).
/// </summary>
public sealed record QueryClause(string Where, string OrderBy, IReadOnlyList<(string Expression, string Direction)> Keys, bool IndexServed);

/// <summary>SQL dialects of the stores.</summary>
public enum SqlDialect
{
    Sqlite,
    Postgres,
}

/// <summary>
/// Turns a <see cref="TrialQuery"/> into a WHERE / ORDER BY clause with every value passed as a SQL parameter. A field is a
/// trial column from the fixed map, a parameter's slot columns (<see cref="ParamSlots"/>, names generated there), or, for a
/// parameter without a slot, an extraction from the JSON parameters with the name passed as a SQL parameter. No text of
/// the query is ever pasted into SQL.
/// </summary>
public static class QuerySql
{
    private static readonly Dictionary<string, (string Column, bool Text)> _columns = new()
    {
        ["number"] = ("number", false),
        ["state"] = ("state", true),
        ["val_accuracy"] = ("val_accuracy", false),
        ["train_accuracy"] = ("train_accuracy", false),
        ["epochs"] = ("epochs_done", false),
        ["attempts"] = ("attempts", false),
        ["seed"] = ("seed", false),
        ["owner"] = ("owner", true),
        ["value"] = ("value", false),
    };

    /// <summary>Builds the filter and the order of a query and fills <paramref name="parameters"/> (names like p0, p1, ...).</summary>
    /// <param name="slots">The study's parameter slots (name to slot number).</param>
    public static QueryClause Build(TrialQuery query, SqlDialect dialect, IReadOnlyDictionary<string, int> slots, List<(string Name, object Value)> parameters)
    {
        var context = new Context(dialect, slots, parameters);
        var sql = new StringBuilder();
        AppendWhere(query, context, sql);
        var keys = new List<(string Expression, string Direction)>();
        foreach (var key in query.Sort)
        {
            var direction = key.Descending ? " DESC NULLS LAST" : " ASC NULLS LAST";
            if (FilterParser.ParameterOf(key.Field) is { } name && slots.TryGetValue(name, out var slot) && slot < ParamSlots.Count)
            {
                // Numbers first (in numeric order), then strings: a parameter may hold either.
                keys.Add((ParamSlots.Number(slot), direction));
                keys.Add((ParamSlots.Text(slot), direction));
            }
            else
            {
                keys.Add((Expression(key.Field, numeric: !IsTextColumn(key.Field), context), direction));
                if (FilterParser.ParameterOf(key.Field) is not null && context.Dialect == SqlDialect.Postgres)
                {
                    keys.Add((Expression(key.Field, numeric: false, context), direction)); // then the strings, as SQLite orders JSON values
                }
            }
        }

        // An index walks the rows in this order and the page stops early: (study, number) or (study, val_accuracy DESC, number).
        var first = query.Sort.Count == 0 ? null : query.Sort[0];
        var indexed = first is null || first.Field == "number" || (first.Field == "val_accuracy" && first.Descending);
        var orderBy = string.Concat(keys.Select(k => k.Expression + k.Direction + ", ")) + "number ASC";
        return new QueryClause(sql.ToString(), orderBy, keys, indexed);
    }

    /// <summary>
    /// The SQL of one page: in an order an index gives, the index is walked and the page read; in any other,
    /// <see cref="SinglePass"/>. The last column is the number of matches, or -1 where this did not count them (see
    /// <see cref="Count"/>).
    /// </summary>
    public static string Page(QueryClause clause, string trialColumns, string p) => clause.IndexServed
        ? $"SELECT {trialColumns}, CAST(-1 AS BIGINT) FROM trials WHERE study = {p}s{clause.Where} ORDER BY {clause.OrderBy} LIMIT {p}limit OFFSET {p}offset"
        : SinglePass(clause, trialColumns, p);

    /// <summary>The number of matches of <paramref name="clause"/>.</summary>
    public static string Count(QueryClause clause, string p) => $"SELECT count(*) FROM trials WHERE study = {p}s{clause.Where}";

    /// <summary>
    /// One pass for a page in an order no index gives: the matching trials' numbers and sort keys are gathered once
    /// (narrow rows, from the covering index <c>trials_keys</c> where it holds them), counted, and the page's numbers
    /// picked from them; only those rows are read whole. The last column of each row is the number of matches. <paramref name="p"/> is the dialect's parameter prefix; the study is
    /// {p}s, the page {p}limit and {p}offset.
    /// </summary>
    public static string SinglePass(QueryClause clause, string trialColumns, string p)
    {
        var select = string.Concat(clause.Keys.Select((k, i) => $", {k.Expression} AS s{i}"));
        var order = string.Concat(clause.Keys.Select((k, i) => $"s{i}{k.Direction}, ")) + "number ASC";
        // Numbers, not ids: PostgreSQL's covering index holds no id (see ParamSlots.Covered).
        return $"WITH m AS MATERIALIZED (SELECT number{select} FROM trials WHERE study = {p}s{clause.Where}), " +
            $"page AS (SELECT number FROM m ORDER BY {order} LIMIT {p}limit OFFSET {p}offset) " +
            $"SELECT {trialColumns}, (SELECT count(*) FROM m) FROM trials WHERE study = {p}s AND number IN (SELECT number FROM page) ORDER BY {clause.OrderBy}";
    }

    /// <summary>
    /// Builds a grouping by <paramref name="field"/>: "SELECT {num} AS gn, {text} AS gt, ... FROM trials WHERE study = {p}s
    /// AND filter GROUP BY gn, gt ORDER BY best DESC, gn, gt LIMIT {p}limit OFFSET {p}offset"; a number lands in gn,
    /// anything else in gt.
    /// </summary>
    public static string Group(TrialQuery query, string field, SqlDialect dialect, IReadOnlyDictionary<string, int> slots, List<(string Name, object Value)> parameters, string p)
    {
        var context = new Context(dialect, slots, parameters);
        string number, text;
        var parameter = FilterParser.ParameterOf(field);
        if (field == "seed")
        {
            (number, text) = (SeedValue, "NULL");
        }
        else if (parameter is null && _columns.TryGetValue(field, out var column))
        {
            (number, text) = column.Text ? ("NULL", column.Column) : (column.Column, "NULL");
        }
        else if (slots.TryGetValue(parameter ?? field, out var slot) && slot < ParamSlots.Count)
        {
            (number, text) = (ParamSlots.Number(slot), ParamSlots.Text(slot));
        }
        else if (dialect == SqlDialect.Sqlite)
        {
            var path = Parameter("$.\"" + (parameter ?? field) + "\"", context);
            number = $"(CASE WHEN json_type(params, {path}) IN ('integer', 'real') THEN json_extract(params, {path}) END)";
            text = $"(CASE WHEN json_type(params, {path}) NOT IN ('integer', 'real') THEN json_extract(params, {path}) END)";
        }
        else
        {
            number = Expression(field, numeric: true, context);
            text = $"(CASE WHEN {number} IS NULL THEN {Expression(field, numeric: false, context)} END)";
        }

        var sql = new StringBuilder($"SELECT {number} AS gn, {text} AS gt, count(*), sum(CASE WHEN state = 'completed' THEN 1 ELSE 0 END), max(val_accuracy), avg(val_accuracy) FROM trials WHERE study = {p}s");
        AppendWhere(query, context, sql);
        sql.Append($" GROUP BY gn, gt ORDER BY max(val_accuracy) DESC NULLS LAST, gn ASC NULLS LAST, gt ASC NULLS LAST LIMIT {p}limit OFFSET {p}offset");
        return sql.ToString();
    }

    /// <summary>The parameters every statement here takes besides the query's own: the study and the page.</summary>
    public static IEnumerable<(string Name, object Value)> Paging(string study, TrialQuery query) =>
        [("s", study), ("limit", query.Limit ?? int.MaxValue), ("offset", query.Offset)];

    /// <summary>" AND (filter) AND (sample)": the conditions after "WHERE study = ...".</summary>
    private static void AppendWhere(TrialQuery query, Context context, StringBuilder sql)
    {
        if (query.Filter is not null)
        {
            sql.Append(" AND (");
            Append(query.Filter, context, sql);
            sql.Append(')');
        }

        if (query.Sample is { } fraction and < 1)
        {
            // Multiplicative hashing of the number onto [0, 1000003): a fixed subset of about the fraction asked.
            sql.Append(" AND (number * 2654435761) % 1000003 < ").Append(Parameter((long)Math.Ceiling(fraction * 1000003), context));
        }
    }

    /// <summary>Reads one row of <see cref="Group"/>.</summary>
    public static TrialGroup ReadGroup(System.Data.Common.DbDataReader r) => new(
        !r.IsDBNull(0) ? Convert.ToDouble(r.GetValue(0), System.Globalization.CultureInfo.InvariantCulture) : r.IsDBNull(1) ? null : Convert.ToString(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture),
        Convert.ToInt32(r.GetValue(2), System.Globalization.CultureInfo.InvariantCulture),
        Convert.ToInt32(r.GetValue(3), System.Globalization.CultureInfo.InvariantCulture),
        r.IsDBNull(4) ? null : r.GetDouble(4),
        r.IsDBNull(5) ? null : r.GetDouble(5));

    private static bool IsTextColumn(string field) => _columns.TryGetValue(field, out var c) && c.Text;

    private sealed record Context(SqlDialect Dialect, IReadOnlyDictionary<string, int> Slots, List<(string Name, object Value)> Parameters);

    private static void Append(FilterNode node, Context context, StringBuilder sql)
    {
        switch (node)
        {
            case And a:
                Binary(a.Left, " AND ", a.Right);
                break;
            case Or o:
                Binary(o.Left, " OR ", o.Right);
                break;
            case Not n:
                sql.Append("NOT (");
                Append(n.Inner, context, sql);
                sql.Append(')');
                break;
            case Comparison { Field: "seed", Value: ulong seed } c:
                // The store keeps a seed's 64 bits in a signed column: compared in unsigned order through SeedKey.
                sql.Append(SeedKey).Append(' ').Append(c.Op is "=" or "!=" or "<" or "<=" or ">" or ">=" ? c.Op : throw new ArgumentException($"unknown operator {c.Op}"))
                    .Append(' ').Append(Parameter(unchecked((long)(seed ^ 0x8000_0000_0000_0000UL)), context));
                break;
            case Comparison c:
                var numeric = c.Value is double && !IsTextColumn(c.Field);
                var value = Parameter(numeric ? c.Value : Core.Sweeps.ParamValue.Format(c.Value), context);
                var op = c.Op switch
                {
                    "=" or "!=" or "<" or "<=" or ">" or ">=" => c.Op,
                    _ => throw new ArgumentException($"unknown operator {c.Op}"),
                };
                sql.Append(Expression(c.Field, numeric, context)).Append(' ').Append(op).Append(' ').Append(value);
                break;
        }

        void Binary(FilterNode left, string op, FilterNode right)
        {
            sql.Append('(');
            Append(left, context, sql);
            sql.Append(op);
            Append(right, context, sql);
            sql.Append(')');
        }
    }

    /// <summary>
    /// A trial's seed (0..2^64-1, kept in a signed 64-bit column as its two's complement) with its top bit flipped: signed
    /// order of this is the seeds' unsigned order. Written with | and &amp; (SQLite has no XOR); it never overflows.
    /// </summary>
    private const string SeedKey = "((seed | -9223372036854775808) - (seed & -9223372036854775808))";

    /// <summary>A trial's seed as the number it is (a double; the signed column holds seeds from 2^63 as negatives).</summary>
    private const string SeedValue = "(CASE WHEN seed < 0 THEN seed + 18446744073709551616.0 ELSE seed + 0.0 END)";

    /// <summary>A trial column, a parameter's slot column, or a parameter read out of the JSON (its name passed as a SQL parameter).</summary>
    private static string Expression(string field, bool numeric, Context context)
    {
        if (field == "seed")
        {
            return SeedKey; // sorts in the seeds' order
        }

        if (FilterParser.ParameterOf(field) is { } parameter)
        {
            field = parameter;
        }
        else if (_columns.TryGetValue(field, out var column))
        {
            return context.Dialect == SqlDialect.Postgres && column.Text == false && !numeric ? $"{column.Column}::text" : column.Column;
        }

        if (context.Slots.TryGetValue(field, out var slot) && slot < ParamSlots.Count)
        {
            return numeric ? ParamSlots.Number(slot) : ParamSlots.Text(slot);
        }

        if (context.Dialect == SqlDialect.Sqlite)
        {
            return $"json_extract(params, {Parameter("$.\"" + field + "\"", context)})";
        }

        var key = Parameter(field, context);
        return numeric
            ? $"(CASE WHEN jsonb_typeof(params -> {key}) = 'number' THEN (params ->> {key})::float8 END)"
            : $"(params ->> {key})";
    }

    private static string Parameter(object value, Context context)
    {
        var name = "p" + context.Parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Parameters.Add((name, value));
        return (context.Dialect == SqlDialect.Sqlite ? "$" : "@") + name;
    }
}
