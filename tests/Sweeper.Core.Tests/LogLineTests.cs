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
}
