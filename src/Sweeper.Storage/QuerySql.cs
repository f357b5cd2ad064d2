using System.Text;
using Sweeper.Core.Queries;

namespace Sweeper.Storage;

/// <summary>SQL dialects of the stores.</summary>
public enum SqlDialect
{
    Sqlite,
    Postgres,
}

/// <summary>
/// Turns a <see cref="TrialQuery"/> (parameters in SQLite's JSON text or PostgreSQL's jsonb column) into a WHERE / ORDER BY / LIMIT clause with every value, and every parameter
/// name, passed as a SQL parameter. Field names come only from the fixed column map or become parameters.
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
    };

    /// <summary>Builds "WHERE ... ORDER BY ..." (without paging) and fills <paramref name="parameters"/> (names like p0, p1, ...).</summary>
    public static string Build(TrialQuery query, SqlDialect dialect, List<(string Name, object Value)> parameters)
    {
        var sql = new StringBuilder();
        if (query.Filter is not null)
        {
            sql.Append(" AND (");
            Append(query.Filter, dialect, parameters, sql);
            sql.Append(')');
        }

        sql.Append(" ORDER BY ");
        foreach (var key in query.Sort)
        {
            sql.Append(Expression(key.Field, numeric: !IsTextColumn(key.Field), dialect, parameters)).Append(key.Descending ? " DESC" : " ASC").Append(" NULLS LAST, ");
        }

        sql.Append("number ASC");
        return sql.ToString();
    }

    private static bool IsTextColumn(string field) => _columns.TryGetValue(field, out var c) && c.Text;

    private static void Append(FilterNode node, SqlDialect dialect, List<(string, object)> parameters, StringBuilder sql)
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
                Append(n.Inner, dialect, parameters, sql);
                sql.Append(')');
                break;
            case Comparison c:
                var numeric = c.Value is double && !IsTextColumn(c.Field);
                var value = Parameter(numeric ? c.Value : Core.Sweeps.ParamValue.Format(c.Value), parameters, dialect);
                var op = c.Op switch
                {
                    "=" or "!=" or "<" or "<=" or ">" or ">=" => c.Op,
                    _ => throw new ArgumentException($"unknown operator {c.Op}"),
                };
                sql.Append(Expression(c.Field, numeric, dialect, parameters)).Append(' ').Append(op).Append(' ').Append(value);
                break;
        }

        void Binary(FilterNode left, string op, FilterNode right)
        {
            sql.Append('(');
            Append(left, dialect, parameters, sql);
            sql.Append(op);
            Append(right, dialect, parameters, sql);
            sql.Append(')');
        }
    }

    /// <summary>A trial column, or a parameter read out of the JSON parameters (its name passed as a SQL parameter).</summary>
    private static string Expression(string field, bool numeric, SqlDialect dialect, List<(string, object)> parameters)
    {
        if (_columns.TryGetValue(field, out var column))
        {
            return dialect == SqlDialect.Postgres && column.Text == false && !numeric ? $"{column.Column}::text" : column.Column;
        }

        if (dialect == SqlDialect.Sqlite)
        {
            return $"json_extract(params, {Parameter("$.\"" + field + "\"", parameters, dialect)})";
        }

        var key = Parameter(field, parameters, dialect);
        return numeric
            ? $"(CASE WHEN jsonb_typeof(params -> {key}) = 'number' THEN (params ->> {key})::float8 END)"
            : $"(params ->> {key})";
    }

    private static string Parameter(object value, List<(string, object)> parameters, SqlDialect dialect)
    {
        var name = "p" + parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        parameters.Add((name, value));
        return (dialect == SqlDialect.Sqlite ? "$" : "@") + name;
    }
}
