using Serilog.Events;
using Serilog.Parsing;
using Sweeper.Cli;

namespace Sweeper.Core.Tests;

public class LogLineTests
{
    [Fact]
    public void A_value_that_carries_a_stack_trace_is_cut_to_its_first_line_and_the_rest_is_kept()
    {
        // As Orleans words a failed grain call to a silo that was just killed.
        const string Orleans = "Exception while sending message: Orleans.Runtime.Messaging.ConnectionFailedException: Unable to connect to S127.0.0.1:22113:155323495, will retry after 990.7246ms\n"
            + "   at Orleans.Runtime.Messaging.ConnectionManager.GetConnectionAsync(SiloAddress endpoint) in /_/src/Orleans.Core/Networking/ConnectionManager.cs:line 142";
        var template = new MessageTemplateParser().Parse("Slot {Owner}: no work this time ({Message}); trying again after {Seconds} s");
        var logEvent = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Warning, null, template,
            [new LogEventProperty("Owner", new ScalarValue("s/slot0")), new LogEventProperty("Message", new ScalarValue(Orleans)), new LogEventProperty("Seconds", new ScalarValue(2))]);

        var line = LiveConsole.OneLine(logEvent).RenderMessage(System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal("Slot \"s/slot0\": no work this time (\"Exception while sending message: Orleans.Runtime.Messaging.ConnectionFailedException: Unable to connect to S127.0.0.1:22113:155323495, will retry after 990.7246ms\"); trying again after 2 s", line);

        // A line without such a value is left as it is.
        var plain = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Warning, null, template, [new LogEventProperty("Message", new ScalarValue("refused"))]);
        Assert.Same(plain, LiveConsole.OneLine(plain));
    }

    [Fact]
    public void A_very_long_value_is_cut_and_says_how_much_was_left_out_and_Orleans_own_death_line_is_left_to_ours()
    {
        var template = new MessageTemplateParser().Parse("Membership: {Table}");
        var table = string.Concat(Enumerable.Repeat("S127.0.0.1:21111:1 Active; ", 70));
        var logEvent = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Warning, null, template, [new LogEventProperty("Table", new ScalarValue(table))]);

        var line = LiveConsole.OneLine(logEvent).RenderMessage(System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal($"Membership: \"{table[..LiveConsole.MaxValueLength]}... ({table.Length - LiveConsole.MaxValueLength} more characters; SWEEPER_LOG_LEVEL=Debug shows them)\"", line);

        // As Orleans 10.4.2 logs it (MembershipTableManager) before it calls the silo's fatal error handler, which says it in one line.
        var dead = new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Error, null, new MessageTemplateParser().Parse("I have been told I am dead, so this silo will stop! Reason: {Reason}"),
            [new LogEventProperty("Reason", new ScalarValue(table))]);
        Assert.True(LiveConsole.SaidBetterByUs(dead));
        Assert.False(LiveConsole.SaidBetterByUs(logEvent));
    }
}
