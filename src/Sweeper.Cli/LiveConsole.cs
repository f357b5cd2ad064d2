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
        var writer = new StringWriter();
        _format.Format(stackTraces ? logEvent : OneLine(logEvent), writer);
        if (logEvent.Exception is { } e)
        {
            // The message says what happened; a stack trace only with SWEEPER_LOG_LEVEL=Debug.
            writer.WriteLine(stackTraces ? e.ToString() : $"  ({e.GetType().Name}: {FirstLine(e.Message)})");
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
        if (!logEvent.Properties.Values.Any(v => v is ScalarValue { Value: string text } && text.Contains('\n', StringComparison.Ordinal)))
        {
            return logEvent;
        }

        var properties = logEvent.Properties.Select(p => new LogEventProperty(p.Key, p.Value is ScalarValue { Value: string text } ? new ScalarValue(FirstLine(text)) : p.Value));
        return new LogEvent(logEvent.Timestamp, logEvent.Level, logEvent.Exception, logEvent.MessageTemplate, properties);
    }

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
