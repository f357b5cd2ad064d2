using Microsoft.Playwright;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// Debian's Chromium, headless, driven by Playwright (no browser download, no sandbox or GPU in containers): for the
/// browser tests and the page-load benchmark.
/// </summary>
public static class HeadlessChromium
{
    public const string Executable = "/usr/bin/chromium";

    /// <summary>Launches it; without it, fails saying how to install it.</summary>
    public static Task<IBrowser> LaunchAsync(IPlaywright playwright) => File.Exists(Executable)
        ? playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Executable,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        })
        : throw new InvalidOperationException($"{Executable} is missing: scripts/setup.sh installs Debian's chromium package for the browser tests and the page benchmark.");
}
