using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace Sweeper.Cli;

/// <summary>The command line's parse errors as a user reads them.</summary>
public static partial class ParseErrors
{
    /// <summary>Prints each error of <paramref name="parse"/> as one <c>error:</c> line and where the command's help is; returns 2.</summary>
    public static int Report(ParseResult parse)
    {
        foreach (var message in parse.Errors.Select(e => Friendly(e.Message)).Distinct())
        {
            Console.Error.WriteLine("error: " + message);
        }

        var path = new List<string>();
        for (SymbolResult? r = parse.CommandResult; r is CommandResult c; r = c.Parent)
        {
            path.Insert(0, c.Command is RootCommand ? "sweeper" : c.Command.Name);
        }

        Console.Error.WriteLine($"(see '{string.Join(' ', path)} --help')");
        return 2;
    }

    /// <summary>
    /// <paramref name="message"/> with .NET's type names in words: "Cannot parse argument 'x' for option '--top' as
    /// expected type 'System.Nullable`1[System.Int32]'" says "... for option '--top': expected a whole number".
    /// </summary>
    public static string Friendly(string message) => TypeRegex().Replace(message, m => ": expected " + Kind(m.Groups[1].Value));

    private static string Kind(string type)
    {
        var inner = NullableRegex().Match(type) is { Success: true } n ? n.Groups[1].Value : type;
        return inner switch
        {
            "System.Int32" or "System.Int64" => "a whole number",
            "System.UInt64" => "a whole number of 0 or more",
            "System.Double" or "System.Single" => "a number (e.g. 0.001 or 1e-3)",
            "System.Boolean" => "true or false",
            "System.IO.FileInfo" => "a file path",
            "System.IO.DirectoryInfo" => "a folder path",
            _ => "a value of another kind",
        };
    }

    [GeneratedRegex(@" as expected type '([^']+)'")]
    private static partial Regex TypeRegex();

    [GeneratedRegex(@"^System\.Nullable`1\[(.+)\]$")]
    private static partial Regex NullableRegex();
}
