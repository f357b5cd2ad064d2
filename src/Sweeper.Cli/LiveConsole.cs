using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;
using Spectre.Console;

namespace Sweeper.Cli;

/// <summary>
/// Where log lines go: standard error, or, while a live progress display is on the terminal, through Spectre.Console
/// above that display (so the two never write over each other).
/// </summary>
public sealed class LiveConsole(bool stackTraces) : ILogEventSink
{
    public const string Template = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}";

    private static int _live;
    private readonly MessageTemplateTextFormatter _format = new(Template);
    private readonly object _gate = new();

    /// <summary>Routes log lines above the live display until disposed.</summary>
    public static IDisposable Begin()
    {
        Interlocked.Increment(ref _live);
        return new End();
    }

    public void Emit(LogEvent logEvent)
    {
        if (!stackTraces && SaidBetterByUs(logEvent))
        {
            return;
        }

        var writer = new StringWriter();
        _format.Format(stackTraces ? logEvent : OneLine(logEvent), writer);
        if (logEvent.Exception is { } e)
        {
            // The message says what happened; a stack trace only with SWEEPER_LOG_LEVEL=Debug.
            writer.WriteLine(stackTraces ? e.ToString() : $"  ({e.GetType().Name}: {Cut(e.Message)})");
        }

        var text = writer.ToString();
        lock (_gate)
        {
            if (Volatile.Read(ref _live) > 0)
            {
                AnsiConsole.Write(new Text(text));
            }
            else
            {
                Console.Error.Write(text);
            }
        }
    }

    /// <summary>
    /// The event with each text value cut to its first line: some exceptions' messages (Orleans' messaging errors among
    /// them) carry their inner exception's stack trace, and a log line shows what happened, not where in the code.
    /// </summary>
    public static LogEvent OneLine(LogEvent logEvent)
    {
        if (!logEvent.Properties.Values.Any(v => v is ScalarValue { Value: string text } && Cut(text) != text))
        {
            return logEvent;
        }

        var properties = logEvent.Properties.Select(p => new LogEventProperty(p.Key, p.Value is ScalarValue { Value: string text } ? new ScalarValue(Cut(text)) : p.Value));
        return new LogEvent(logEvent.Timestamp, logEvent.Level, logEvent.Exception, logEvent.MessageTemplate, properties);
    }

    /// <summary>The characters of a value a log line shows at the most (Orleans puts whole membership tables in some).</summary>
    public const int MaxValueLength = 300;

    /// <summary>A value's first line, and of a longer one its first <see cref="MaxValueLength"/> characters and how many more there were.</summary>
    private static string Cut(string text)
    {
        var line = FirstLine(text);
        return line.Length <= MaxValueLength ? line : $"{line[..MaxValueLength]}... ({line.Length - MaxValueLength} more characters; SWEEPER_LOG_LEVEL=Debug shows them)";
    }

    /// <summary>
    /// Orleans' own line when the cluster declared this silo dead ("I have been told I am dead, so this silo will
    /// stop! Reason: ..." with the membership table in it, about 1.8 KB): the silo's death handler says what happened
    /// and what follows right after it, in one plain line.
    /// </summary>
    public static bool SaidBetterByUs(LogEvent logEvent) =>
        logEvent.MessageTemplate.Text.StartsWith("I have been told I am dead", StringComparison.Ordinal);

    private static string FirstLine(string text) => text.IndexOf('\n', StringComparison.Ordinal) is var end and >= 0 ? text[..end].TrimEnd('\r') : text;

    private sealed class End : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                Interlocked.Decrement(ref _live);
            }
        }
    }
}
