using Sweeper.Engine.Data;

namespace Sweeper.Cli;

/// <summary>
/// A one-line progress bar on stderr when it is a terminal; otherwise one line per stage and every 10%, so that
/// logs of non-interactive runs (CI, a Kubernetes Job) stay readable.
/// </summary>
public sealed class ConsoleProgress : IProgress<DownloadProgress>
{
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private string _stage = "";
    private int _lastDecile = -1;
    private DateTime _lastDraw = DateTime.MinValue;

    public void Report(DownloadProgress value)
    {
        var fraction = value.Total > 0 ? Math.Clamp((double)value.Done / value.Total, 0, 1) : -1;
        if (_interactive)
        {
            if (value.Stage == _stage && DateTime.UtcNow - _lastDraw < TimeSpan.FromMilliseconds(100) && fraction < 1)
            {
                return;
            }

            _lastDraw = DateTime.UtcNow;
            var bar = fraction < 0 ? "" : "[" + new string('#', (int)(fraction * 30)).PadRight(30) + $"] {fraction,4:P0} {value.Done / 1e6,7:F1}/{value.Total / 1e6:F1} MB";
            Console.Error.Write($"\r{value.Stage,-28} {bar}".PadRight(100));
            _stage = value.Stage;
            return;
        }

        var decile = fraction < 0 ? -1 : (int)(fraction * 10);
        if (value.Stage != _stage || decile > _lastDecile)
        {
            Console.Error.WriteLine(fraction < 0 ? value.Stage : $"{value.Stage}: {fraction:P0} of {value.Total / 1e6:F1} MB");
            _stage = value.Stage;
            _lastDecile = decile;
        }
    }

    /// <summary>Ends the bar's line.</summary>
    public void Done()
    {
        if (_interactive && _stage.Length > 0)
        {
            Console.Error.WriteLine();
        }
    }
}
