using System.Diagnostics;
using System.Text.Json;
using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;
using Sweeper.Storage;

namespace Sweeper.Core.Tests;

/// <summary>
/// The real <c>sweeper</c> program in a pipe: <c>results</c> on a study whose parameter is called epochs (a trial field
/// too), with --where, --columns, --csv and --json, and <c>validate --json</c>. A pipe gets plain tab-separated rows.
/// </summary>
public sealed class CliOutputTests : IAsyncLifetime
{
    private const string Sweep = """
        name: ep
        method: grid
        model: softmax
        parameters:
          learning_rate: {values: [1.0e-7, 1.0e-6]}
          epochs: {values: [1, 2, 3]}
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("sweeper-cli-").FullName;

    private string Store => "sqlite:" + Path.Combine(_dir, "store.db");

    public async Task InitializeAsync()
    {
        await using var store = await TrialStores.OpenAsync(Store);
        var sweep = SweepParser.Parse(Sweep, "ep.yaml");
        var trials = new GridSampler().Propose(sweep, 6);
        await store.CreateStudyAsync(new NewStudy("ep", sweep.SourceHash, Sweep, SweepJson.Serialize(sweep), "grid",
            [.. trials.Select(t => new NewTrial(t.Number, ParamJson.Serialize(t.Parameters), t.Seed))]));
        while (await store.ClaimAsync("ep", "w", TimeSpan.FromMinutes(5)) is { } lease)
        {
            // Every trial stops after one epoch whatever its epochs parameter, so the field and the parameter differ.
            await store.FinishAsync(lease, new TrialFinish(TrialState.Completed, 0.1 + (lease.Number * 0.05), 0.2, 1, null));
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private (int Code, string Stdout, string Stderr) Sweeper(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "sweeper.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "sweeper did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Results_in_a_pipe_tell_the_epochs_field_from_the_epochs_parameter()
    {
        var (code, stdout, stderr) = Sweeper("results", "ep", "--store", Store, "--where", "params.epochs >= 2 and epochs = 1", "--columns", "number,epochs,params.epochs,val_accuracy");
        Assert.True(code == 0, stderr);
        var lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Equal("number\tepochs\tparams.epochs\tval_accuracy", lines[0]);

        // Grid order: learning_rate outer, epochs inner; trials 1, 2, 4, 5 have epochs 2 or 3; best first.
        Assert.Equal(["5\t1\t3\t0.35", "4\t1\t2\t0.3", "2\t1\t3\t0.2", "1\t1\t2\t0.15"], lines[1..]);
        Assert.Contains("4 matching trial(s)", stderr);

        var csv = Sweeper("results", "ep", "--store", Store, "--csv", "--columns", "number,epochs,params.epochs", "--where", "params.epochs = 3");
        Assert.Equal("number,epochs,params.epochs\n5,1,3\n2,1,3\n", csv.Stdout.ReplaceLineEndings("\n"));

        var json = JsonDocument.Parse(Sweeper("results", "ep", "--store", Store, "--json", "--top", "1", "--columns", "number,epochs,params.epochs").Stdout).RootElement;
        var row = json.GetProperty("rows")[0];
        Assert.Equal((5, 1, 3), (row.GetProperty("number").GetInt32(), row.GetProperty("epochs").GetInt32(), row.GetProperty("params.epochs").GetInt32()));

        var bad = Sweeper("results", "ep", "--store", Store, "--where", "params.epoch = 1");
        Assert.Equal(2, bad.Code);
        Assert.StartsWith("error: unknown field 'params.epoch'", bad.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("results", "--top", "0", "error: --top must be at least 1 (got 0)")]
    [InlineData("results", "--top", "-5", "error: --top must be at least 1 (got -5)")]
    [InlineData("validate", "--show", "-1", "error: --show must be 0 or more (got -1)")]
    // Not a number the option takes: exit 2 (it was 1), one line without .NET's type names, not the whole help text.
    [InlineData("results", "--top", "99999999999", "error: Cannot parse argument '99999999999' for option '--top': expected a whole number.\n(see 'sweeper results --help')")]
    [InlineData("results", "--bogus", "1", "error: Unrecognized command or argument '--bogus'.\nerror: Unrecognized command or argument '1'.\n(see 'sweeper results --help')")]
    public void A_count_out_of_range_is_named_with_its_value_and_exits_2(string command, string option, string value, string message)
    {
        var (code, stdout, stderr) = command == "results"
            ? Sweeper("results", "ep", "--store", Store, option, value)
            : Sweeper("validate", Path.Combine(WandbFilesTests.FindWandb(), "controller-local.yaml"), option, value);
        Assert.Equal(2, code);
        Assert.Equal(message, stderr.TrimEnd('\n'));
        Assert.Equal(string.Empty, stdout);
    }

    [Fact]
    public void A_store_address_without_a_path_is_named_with_the_form_it_needs()
    {
        // An address that cannot be read is a bad argument (exit 2, as README says); one that names no store there is 1.
        var (code, stdout, stderr) = Sweeper("status", "--store", "sqlite:");
        Assert.Equal(2, code);
        Assert.Equal("error: cannot open the store sqlite:: the address names no file; give one, e.g. sqlite:.sweeper/sweeper.db.", stderr.TrimEnd('\n'));
        Assert.Equal(string.Empty, stdout);
        foreach (var malformed in (string[])["postgres://x@127.0.0.1:notaport/db", "mysql://x@y/z", "Host=127.0.0.1;Timeout=abc;Database=x", "postgres://"])
        {
            var bad = Sweeper("status", "--store", malformed);
            Assert.True(bad.Code == 2, $"{malformed}: {bad.Code} {bad.Stderr}");
            Assert.StartsWith($"error: cannot open the store {malformed}: ", bad.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(1, Sweeper("status", "--store", "sqlite:" + Path.Combine(_dir, "none.db")).Code);
    }

    [Fact]
    public void A_silo_is_refused_a_store_it_may_only_read_and_the_readers_still_read_it()
    {
        // Write-protected with the immutable attribute: root (which these tests run as) ignores file modes, not that.
        var path = Path.Combine(_dir, "protected.db");
        File.Copy(Store["sqlite:".Length..], path);
        var before = File.ReadAllBytes(path);
        Chattr("+i", path);
        try
        {
            // The coordinator hosts a silo (as run and worker do), which writes the trials and its membership.
            var sweepFile = Path.Combine(_dir, "ep.yaml");
            File.WriteAllText(sweepFile, Sweep);
            var (code, _, stderr) = Sweeper("coordinator", sweepFile, "--store", "sqlite:" + path);
            Assert.True(code == 1, stderr);
            Assert.Contains($"error: cannot write to the store sqlite:{path}: this process may only read {path} (the file or its folder is write-protected)", stderr);
            Assert.DoesNotContain("Exception", stderr);

            var status = Sweeper("status", "--store", "sqlite:" + path);
            Assert.True(status.Code == 0, status.Stderr);
            Assert.Contains("ep", status.Stdout);
        }
        finally
        {
            Chattr("-i", path);
        }

        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void Silo_flags_past_what_a_silo_can_take_are_refused_naming_the_flag_before_anything_starts()
    {
        var sweepFile = Path.Combine(_dir, "ep.yaml");
        File.WriteAllText(sweepFile, Sweep);
        var fresh = "sqlite:" + Path.Combine(_dir, "fresh.db");
        var cudaFile = Path.Combine(_dir, "cuda.yaml");
        File.WriteAllText(cudaFile, "name: cu\nmethod: grid\nmodel: softmax\nengine: torch\ndevice: cuda\nparameters:\n  learning_rate: {value: 1.0e-7}\n");
        // A million slots was a million threads (the runtime died: "Out of memory" or an internal CLR error); a lease of
        // 2^31 s overflowed the keep-alive timer mid-study.
        foreach (var (args, message) in new[]
                 {
                     (new[] { "run", sweepFile, "--store", fresh, "--slots", "1000000" }, "error: --slots must be between 1 and 1024 (got 1000000)"),
                     (["worker", "--store", fresh, "--slots", "2000"], "error: --slots must be between 1 and 1024 (got 2000)"),
                     (["run", sweepFile, "--store", fresh, "--lease-seconds", "2147483647"], "error: --lease-seconds must be between 1 and 86400 (one day; got 2147483647)."),
                     (["coordinator", sweepFile, "--store", fresh, "--lease-seconds", "999999999999"], "error: --lease-seconds must be between 1 and 86400"),
                     // This build carries libtorch for the CPU only: GPU slots would fail every device: cuda trial they took.
                     (["worker", "--store", fresh, "--gpu-slots", "1"], "error: --gpu-slots 1: device cuda: no usable CUDA runtime"),
                     // Its trials would have waited for ever on the embedded store: no slot of this silo takes them.
                     (["run", cudaFile, "--store", fresh], $"error: {cudaFile}: device: cuda trains on GPU slots, and this silo has none; give --gpu-slots N"),
                 })
        {
            var (code, _, stderr) = Sweeper(args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: {code} {stderr}");
            Assert.Contains(message, stderr);
            Assert.DoesNotContain("Exception", stderr);
        }

        Assert.False(File.Exists(Path.Combine(_dir, "fresh.db")));
    }

    [Fact]
    public void A_silo_port_in_use_is_named_with_the_flag_and_the_dashboard_does_not_create_a_store_it_was_only_to_read()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var sweepFile = Path.Combine(_dir, "ep.yaml");
        File.WriteAllText(sweepFile, Sweep);
        var (code, stdout, stderr) = Sweeper("coordinator", sweepFile, "--store", "sqlite:" + Path.Combine(_dir, "p.db"), "--silo-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(code == 1, stderr);
        Assert.Contains($"error: the silo port {port} is in use on this machine", stderr);
        Assert.Contains("--silo-port 0 for a free one", stderr);
        Assert.DoesNotContain("Hosting failed", stderr);
        // Said once, by the command: not also by Orleans, once per start stage that gave up.
        Assert.DoesNotContain("Address already in use", stdout + stderr);
        Assert.DoesNotContain(" ERR]", stdout + stderr);

        // The dashboard on a port in use: the flag and a way out, not "IOException: Failed to bind".
        var busy = Sweeper("dashboard", "--store", Store, "--url", $"http://127.0.0.1:{port}");
        Assert.True(busy.Code == 1, busy.Stderr);
        Assert.StartsWith($"error: --url http://127.0.0.1:{port}: that port is in use on this machine", busy.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", busy.Stderr);

        // A mistyped store for the dashboard: an error, as for status and results, not a new empty store (and folders).
        var missing = Path.Combine(_dir, "no", "such", "d.db");
        var dashboard = Sweeper("dashboard", "--store", "sqlite:" + missing, "--url", "http://127.0.0.1:0");
        Assert.True(dashboard.Code == 1, dashboard.Stderr);
        Assert.Contains($"No store at {missing}", dashboard.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "no")));
        var folder = Sweeper("status", "--store", "sqlite:" + _dir);
        Assert.Contains($"{_dir} is a folder, not a store file", folder.Stderr);
    }

    [Fact]
    public void A_cut_off_copy_of_the_data_stops_a_run_before_its_study_exists()
    {
        // Before, every trial failed reading it and the study closed for good with exit status 0.
        var data = Path.Combine(_dir, "cut");
        Directory.CreateDirectory(data);
        foreach (var name in new[] { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin" })
        {
            using var file = File.Create(Path.Combine(data, name));
            file.SetLength(name == "test_batch.bin" ? 1000 : 30_730_000);
        }

        var sweepFile = Path.Combine(_dir, "ep.yaml");
        File.WriteAllText(sweepFile, Sweep);
        var (code, _, stderr) = Sweeper("run", sweepFile, "--store", "sqlite:" + Path.Combine(_dir, "cut.db"), "--data", data);
        Assert.True(code == 1, stderr);
        Assert.Contains($"in {data}, test_batch.bin is truncated (1000 bytes)", stderr);
        Assert.DoesNotContain("Exception", stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "cut.db")));
    }

    private static void Chattr(string change, string path)
    {
        using var p = Process.Start(new ProcessStartInfo("chattr", [change, path]) { RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"chattr {change} {path} failed (these tests run as root on a file system with the immutable attribute): {error}");
    }

    [Fact]
    public void Validate_json_lists_every_error_with_its_place_and_exits_2()
    {
        var file = Path.Combine(_dir, "bad.yaml");
        File.WriteAllText(file, "name: bad\nmetod: random\nmodel: fc\nparameters:\n  learning_rat: {value: 1}\n  reg: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-2}\n");
        var (code, stdout, _) = Sweeper("validate", file, "--json");
        Assert.Equal(2, code);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.False(json.GetProperty("ok").GetBoolean());
        Assert.Equal([(2, 1, "metod"), (5, 3, "parameters.learning_rat"), (6, 41, "parameters.reg.min"), (1, 1, "method")],
            json.GetProperty("errors").EnumerateArray().Select(e => (e.GetProperty("line").GetInt32(), e.GetProperty("column").GetInt32(), e.GetProperty("key").GetString()!)));

        var good = Sweeper("validate", Path.Combine(WandbFilesTests.FindWandb(), "controller-local.yaml"), "--json", "--show", "2");
        Assert.Equal(0, good.Code);
        var ok = JsonDocument.Parse(good.Stdout).RootElement;
        Assert.True(ok.GetProperty("ok").GetBoolean());
        Assert.Equal((20, 3, 2), (ok.GetProperty("trials").GetInt32(), ok.GetProperty("warnings").GetArrayLength(), ok.GetProperty("first").GetArrayLength()));
        // W&B's example names its train.py, which is not beside the copy here: its trials could not start on this machine.
        var program = ok.GetProperty("warnings")[2];
        Assert.Equal("program", program.GetProperty("key").GetString());
        Assert.StartsWith("train.py: no such file in ", program.GetProperty("message").GetString(), StringComparison.Ordinal);

        var text = Sweeper("validate", file);
        Assert.Equal(2, text.Code);
        Assert.Equal(5, text.Stderr.TrimEnd('\n').Split('\n').Length);
        Assert.All(text.Stderr.TrimEnd('\n').Split('\n')[..4], l => Assert.StartsWith($"error: {file}:", l, StringComparison.Ordinal));
    }
}
