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
        _format.Format(logEvent, writer);
        if (logEvent.Exception is { } e)
        {
            // The message says what happened; a stack trace only with SWEEPER_LOG_LEVEL=Debug.
            writer.WriteLine(stackTraces ? e.ToString() : $"  ({e.GetType().Name}: {e.Message})");
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
