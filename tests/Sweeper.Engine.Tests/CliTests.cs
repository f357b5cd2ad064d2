using System.Diagnostics;
using System.Text.Json;

namespace Sweeper.Engine.Tests;

/// <summary>The real <c>sweeper</c> program, run as a separate process.</summary>
public class CliTests
{
    public static (int ExitCode, string Stdout, string Stderr) Sweeper(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "sweeper.dll");
        var start = new ProcessStartInfo("dotnet", [dll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["SWEEPER_DATA"] = TestData.CifarDir;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
    }

    [Fact]
    public void Train_with_json_prints_one_object_with_the_results()
    {
        var (code, stdout, stderr) = Sweeper("train", "--model", "fc", "--hidden-sizes", "50,40", "--normalization", "batch", "--dropout", "0.2",
            "--update-rule", "adam", "--learning-rate", "1e-3", "--train-size", "1000", "--val-size", "200", "--epochs", "3", "--batch-size", "100", "--json");
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.Equal("completed", root.GetProperty("outcome").GetString());
        Assert.Equal(3, root.GetProperty("epochs").GetInt32());
        Assert.InRange(root.GetProperty("val_accuracy").GetDouble(), 0.15, 1);
        Assert.InRange(root.GetProperty("train_accuracy").GetDouble(), 0.15, 1);
        Assert.True(root.GetProperty("elapsed_seconds").GetDouble() > 0);
        Assert.Equal(3, root.GetProperty("history").GetArrayLength());
        Assert.Contains("(Epoch 3 / 3)", stderr);
    }

    [Fact]
    public void Train_resumes_from_its_checkpoint_file()
    {
        using var dir = new TempDir();
        var checkpoint = Path.Combine(dir.Path, "run.ckpt");
        string[] common = ["train", "--model", "two_layer", "--hidden-size", "30", "--train-size", "600", "--val-size", "100", "--batch-size", "100", "--seed", "4", "--json", "--checkpoint", checkpoint];
        var first = Sweeper([.. common, "--epochs", "2"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.True(File.Exists(checkpoint));
        var resumed = Sweeper([.. common, "--epochs", "4"]);
        Assert.Contains("Resumed from", resumed.Stderr);
        var straight = Sweeper([.. common[..^2], "--epochs", "4"]);
        double Val(string s) => JsonDocument.Parse(s).RootElement.GetProperty("val_accuracy").GetDouble();
        string Hist(string s) => JsonDocument.Parse(s).RootElement.GetProperty("history").ToString();
        Assert.Equal(Val(straight.Stdout), Val(resumed.Stdout));
        Assert.Equal(Hist(straight.Stdout), Hist(resumed.Stdout));
    }

    [Theory]
    [InlineData("--model", "resnet", "resnet")]
    [InlineData("--dropout", "1.5", "dropout")]
    [InlineData("--hidden-sizes", "100,x", "--hidden-sizes")]
    [InlineData("--learning-rate", "-1", "learning rate")]
    [InlineData("--train-size", "-5", "--train-size must be between 1 and 50000 (got -5)")]
    [InlineData("--val-size", "0", "--val-size must be between 1 and 50000 (got 0)")]
    [InlineData("--train-size", "49500", "--train-size + --val-size = 50500 exceeds the 50,000 CIFAR-10 training images")]
    [InlineData("--print-every", "-1", "--print-every must be 0 (never) or more (got -1)")]
    public void Bad_arguments_are_named_in_the_error_and_exit_non_zero(string option, string value, string mentioned)
    {
        var (code, stdout, stderr) = Sweeper("train", "--model", option == "--model" ? value : "fc", option == "--model" ? "--seed" : option, option == "--model" ? "1" : value, "--epochs", "1");
        Assert.NotEqual(0, code);
        Assert.Contains(mentioned, stdout + stderr);
        Assert.DoesNotContain("Exception", stdout + stderr);
        Assert.DoesNotContain("Iteration", stdout + stderr); // refused before any training
    }

    [Fact]
    public void A_checkpoint_goes_into_a_folder_made_for_it_and_one_that_cannot_be_written_is_refused_before_training()
    {
        using var dir = new TempDir();
        string[] small = ["train", "--model", "softmax", "--train-size", "500", "--val-size", "100", "--batch-size", "100", "--epochs", "1"];
        var nested = Path.Combine(dir.Path, "runs", "a", "run.ckpt");
        var made = Sweeper([.. small, "--checkpoint", nested]);
        Assert.True(made.ExitCode == 0, made.Stderr);
        Assert.True(File.Exists(nested));

        var blocker = Path.Combine(dir.Path, "a-file");
        File.WriteAllText(blocker, "not a folder");
        var refused = Sweeper([.. small, "--checkpoint", Path.Combine(blocker, "run.ckpt")]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains($"--checkpoint {Path.Combine(blocker, "run.ckpt")}: cannot write a checkpoint there", refused.Stdout + refused.Stderr);
        Assert.DoesNotContain("Iteration", refused.Stdout + refused.Stderr);
        Assert.DoesNotContain("Exception", refused.Stdout + refused.Stderr);

        // A folder as the checkpoint: refused before training (it failed after the first epoch, "IOException: Is a directory").
        var folder = Sweeper([.. small, "--checkpoint", dir.Path]);
        Assert.Equal(2, folder.ExitCode);
        Assert.Contains($"--checkpoint {dir.Path} is a folder; give a file in it, e.g. {Path.Combine(dir.Path, "run.ckpt")}", folder.Stdout + folder.Stderr);
        Assert.DoesNotContain("Iteration", folder.Stdout + folder.Stderr);
    }

    [Theory]
    [InlineData("--dropout", "0.5")]
    [InlineData("--normalization", "batch")]
    [InlineData("--hidden-size", "50")]
    public void Settings_of_hidden_layers_on_a_linear_classifier_are_refused_as_in_a_sweep_file(string option, string value)
    {
        var (code, stdout, stderr) = Sweeper("train", "--model", "softmax", option, value, "--epochs", "1");
        Assert.Equal(2, code);
        Assert.Contains($"{option} is for the nets (two_layer, fc); the softmax classifier has no hidden layer.", stdout + stderr);
    }

    [Fact]
    public void Data_download_names_a_mirror_address_it_cannot_use()
    {
        var (code, stdout, stderr) = Sweeper("data", "download", "--url", "notaurl", "--to", Path.GetTempPath());
        Assert.Equal(2, code);
        Assert.Equal("error: --url notaurl: not an http:// or https:// address of the archive", stderr.TrimEnd('\n'));
        Assert.Equal(string.Empty, stdout);
    }

    [Fact]
    public void Data_where_reports_the_environment_variable()
    {
        var (code, stdout, _) = Sweeper("data", "where");
        Assert.Equal(0, code);
        Assert.Contains("$SWEEPER_DATA", stdout);
    }
}
