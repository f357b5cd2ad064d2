using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Serilog;
using Sweeper.Core.Sweeps;
using Sweeper.Engine.Data;
using Sweeper.Engine.Kernels;
using Sweeper.Engine.Models;
using Sweeper.Engine.Training;

namespace Sweeper.Cli;

/// <summary><c>sweeper train</c>: one training run from the command line, as in the cs231n notebooks.</summary>
public static class TrainCommand
{
    private static readonly Dictionary<string, ModelKind> _models = new()
    {
        ["softmax"] = ModelKind.Softmax,
        ["svm"] = ModelKind.Svm,
        ["two_layer"] = ModelKind.TwoLayer,
        ["fc"] = ModelKind.FullyConnected,
    };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "softmax | svm | two_layer | fc", DefaultValueFactory = _ => "two_layer" };
        model.AcceptOnlyFromAmong([.. _models.Keys]);
        var lr = new Option<double>("--learning-rate", "--lr") { Description = "Initial learning rate.", DefaultValueFactory = _ => 1e-3 };
        var reg = new Option<double>("--reg") { Description = "L2 strength (penalty 0.5 * reg * sum of squared weights).", DefaultValueFactory = _ => 0.0 };
        var hidden = new Option<int?>("--hidden-size") { Description = "Width of the one hidden layer (two_layer; fc: one layer of this width). Default: 100." };
        var hiddenSizes = new Option<string?>("--hidden-sizes") { Description = "Comma-separated hidden widths for fc, e.g. 100,100,100." };
        var dropout = new Option<double>("--dropout") { Description = "Probability of dropping a hidden unit (0 = off).", DefaultValueFactory = _ => 0.0 };
        var norm = new Option<string>("--normalization") { Description = "none | batch | layer", DefaultValueFactory = _ => "none" };
        norm.AcceptOnlyFromAmong("none", "batch", "layer");
        var augment = new Option<string>("--augment") { Description = "none | flip (each training image mirrored left to right at random, afresh each epoch)", DefaultValueFactory = _ => "none" };
        augment.AcceptOnlyFromAmong("none", "flip");
        var rule = new Option<string>("--update-rule") { Description = string.Join(" | ", UpdateRule.Names), DefaultValueFactory = _ => "sgd" };
        rule.AcceptOnlyFromAmong([.. UpdateRule.Names]);
        var decay = new Option<double>("--lr-decay") { Description = "Learning rate multiplier after each epoch.", DefaultValueFactory = _ => 1.0 };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => 200 };
        var epochs = new Option<int?>("--epochs") { Description = "Passes over the training split. Default: 10 (unless --iterations)." };
        var iterations = new Option<long?>("--iterations") { Description = "Total minibatch steps instead of epochs (the last epoch may be partial)." };
        var weightScale = new Option<double?>("--weight-scale") { Description = "Std of the initial weights. Default: 1e-3 linear, 1e-4 two_layer, 1e-2 fc." };
        var init = new Option<string>("--init") { Description = "gaussian (weight-scale) | he | xavier", DefaultValueFactory = _ => "gaussian" };
        init.AcceptOnlyFromAmong("gaussian", "he", "xavier");
        var seed = new Option<ulong>("--seed") { Description = "Seeds initialisation, shuffling and dropout.", DefaultValueFactory = _ => 0UL };
        var data = new Option<DirectoryInfo?>("--data") { Description = "CIFAR-10 folder. Default: $SWEEPER_DATA, then the cache, then a download." };
        var trainSize = new Option<int>("--train-size") { Description = "Training examples.", DefaultValueFactory = _ => 49_000 };
        var valSize = new Option<int>("--val-size") { Description = "Validation examples.", DefaultValueFactory = _ => 1_000 };
        var test = new Option<bool>("--test") { Description = "Also evaluate the final (best-by-validation) model once on the 1,000-image test split." };
        var printEvery = new Option<int>("--print-every") { Description = "Print the loss every this many iterations (0 = never).", DefaultValueFactory = _ => 100 };
        var checkpoint = new Option<FileInfo?>("--checkpoint") { Description = "Write a checkpoint here after every epoch; resume from it if it exists." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with the results at the end (progress goes to stderr)." };
        var engine = new Option<string>("--engine") { Description = "Training engine: native (OpenBLAS + SIMD) | torch (TorchSharp/libtorch).", DefaultValueFactory = _ => TrainingEngines.DefaultEngine };
        engine.AcceptOnlyFromAmong([.. TrainingEngines.Names]);
        var device = new Option<string>("--device") { Description = "cpu | cuda (cuda: torch engine with a CUDA build of libtorch).", DefaultValueFactory = _ => TrainingEngines.DefaultDevice };
        device.AcceptOnlyFromAmong([.. TrainingEngines.Devices]);

        var command = new Command("train", "Train one model on CIFAR-10 and report train and validation accuracy.")
        {
            model, lr, reg, hidden, hiddenSizes, dropout, norm, augment, rule, decay, batch, epochs, iterations, weightScale, init, seed, data,
            trainSize, valSize, test, printEvery, checkpoint, json, engine, device,
        };

        command.SetAction(async (parse, ct) =>
        {
            var asJson = parse.GetValue(json);
            var progress = asJson ? Console.Error : Console.Out;
            var kind = _models[parse.GetValue(model)!];
            ModelSpec spec;
            SolverOptions options;
            try
            {
                IReadOnlyList<int> widths = kind switch
                {
                    ModelKind.Softmax or ModelKind.Svm => [],
                    ModelKind.TwoLayer => [parse.GetValue(hidden) ?? 100],
                    _ => parse.GetValue(hiddenSizes) is { } list ? ParseWidths(list) : [parse.GetValue(hidden) ?? 100],
                };
                if (kind is ModelKind.Softmax or ModelKind.Svm)
                {
                    // As in a sweep file: settings of hidden layers on a model without any are an error, not ignored.
                    var stray = new (string Flag, bool Given)[]
                    {
                        ("--hidden-size", parse.GetValue(hidden) is not null), ("--dropout", parse.GetValue(dropout) != 0),
                        ("--normalization", parse.GetValue(norm) != "none"),
                    }.FirstOrDefault(f => f.Given).Flag;
                    if (stray is not null)
                    {
                        throw new ArgumentException($"{stray} is for the nets (two_layer, fc); the {parse.GetValue(model)} classifier has no hidden layer.");
                    }
                }

                if (kind is ModelKind.Softmax or ModelKind.Svm or ModelKind.TwoLayer && parse.GetValue(hiddenSizes) is not null)
                {
                    throw new ArgumentException($"--hidden-sizes is for --model fc; the {parse.GetValue(model)} model takes {(kind == ModelKind.TwoLayer ? "--hidden-size" : "no hidden sizes")}.");
                }

                spec = new ModelSpec
                {
                    Kind = kind,
                    HiddenSizes = widths,
                    Dropout = parse.GetValue(dropout),
                    Normalization = Enum.Parse<Normalization>(parse.GetValue(norm)!, ignoreCase: true),
                    Reg = parse.GetValue(reg),
                    Init = Enum.Parse<WeightInit>(parse.GetValue(init)!, ignoreCase: true),
                    WeightScale = parse.GetValue(weightScale),
                };
                spec.Validate();
                options = new SolverOptions
                {
                    UpdateRule = parse.GetValue(rule)!,
                    LearningRate = parse.GetValue(lr),
                    LrDecay = parse.GetValue(decay),
                    BatchSize = parse.GetValue(batch),
                    Epochs = parse.GetValue(epochs) ?? 10,
                    Iterations = parse.GetValue(iterations),
                    Seed = parse.GetValue(seed),
                    Augment = parse.GetValue(augment)!,
                };
                if (options.Iterations is not null && parse.GetValue(epochs) is not null)
                {
                    throw new ArgumentException("give --epochs or --iterations, not both.");
                }

                options.Validate();
                CheckSizes(parse.GetValue(trainSize), parse.GetValue(valSize), parse.GetValue(printEvery));
                if (parse.GetValue(checkpoint) is { } folder && Directory.Exists(folder.FullName))
                {
                    // Found before training, not when the first epoch's checkpoint is written.
                    throw new ArgumentException($"--checkpoint {folder.FullName} is a folder; give a file in it, e.g. {Path.Combine(folder.FullName, "run.ckpt")}.");
                }
            }
            catch (ArgumentException e)
            {
                Log.Error("Invalid arguments: {Message}", e.Message);
                return 2;
            }

            string dir;
            try
            {
                dir = await DataCommand.ResolveOrDownloadAsync(parse.GetValue(data)?.FullName, ct);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Log.Error("{Message}", e.Message);
                return 1;
            }

            var clock = Stopwatch.StartNew();
            using var dataset = Cifar10.Load<float>(dir, new DataSettings { TrainSize = parse.GetValue(trainSize), ValSize = parse.GetValue(valSize), TestSize = parse.GetValue(test) ? 1_000 : 0 });
            Log.Information("Loaded CIFAR-10 from {Dir} in {Seconds:F2} s: {Train} train, {Val} validation; BLAS {Blas}",
                dir, clock.Elapsed.TotalSeconds, dataset.Train.Count, dataset.Validation.Count, Blas.Describe());

            ITrainingBackend created;
            try
            {
                created = TrainingEngines.Create(parse.GetValue(engine), new TrainingSetup(spec, options, dataset.Train, dataset.Validation, parse.GetValue(device)!));
            }
            catch (Exception e) when (e is ArgumentException or TrainingEngineUnavailableException)
            {
                Log.Error("{Message}", e.Message);
                return e is ArgumentException ? 2 : 1;
            }

            using var backend = created;
            Log.Information("Engine {Origin}", backend.Origin);
            var checkpointFile = parse.GetValue(checkpoint);
            if (checkpointFile is { Exists: false } && CheckpointFolderProblem(checkpointFile) is { } problem)
            {
                Log.Error("--checkpoint {Checkpoint}: {Problem}", checkpointFile.FullName, problem);
                return 2;
            }

            if (checkpointFile is { Exists: true })
            {
                CheckpointOrigin from;
                try
                {
                    await using var stream = checkpointFile.OpenRead();
                    from = backend.LoadCheckpoint(stream);
                }
                catch (InvalidDataException e)
                {
                    Log.Error("{Checkpoint}: {Message}", checkpointFile.FullName, e.Message);
                    return 1;
                }

                Log.Information("Resumed from {Checkpoint} at epoch {Epoch}, iteration {Iteration}", checkpointFile.FullName, backend.Epoch, backend.Iteration);
                if (backend.Origin.DifferenceFrom(from) is { } change)
                {
                    Log.Warning("The checkpoint was made by {From}; resuming with {Change}: the run goes on correctly but not bit-identically", from, change);
                }
            }

            var every = parse.GetValue(printEvery);
            var totalEpochs = (int)Math.Ceiling(backend.TotalIterations / (double)backend.IterationsPerEpoch);
            clock.Restart();
            TrainingResult result;
            try
            {
                result = backend.Train(
                onEpoch: m =>
                {
                    progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"(Epoch {m.Epoch} / {totalEpochs}) loss: {m.Loss:F4}; train acc: {m.TrainAccuracy:F3}; val acc: {m.ValAccuracy:F3}; lr: {m.LearningRate:g3}; {m.Seconds:F1} s"));
                    if (checkpointFile is not null)
                    {
                        WriteAtomically(checkpointFile.FullName, backend.SaveCheckpoint);
                    }

                    return true;
                },
                onIteration: (i, loss) =>
                {
                    if (every > 0 && (i % every == 0 || i == 1))
                    {
                        progress.WriteLine(string.Create(CultureInfo.InvariantCulture, $"(Iteration {i} / {backend.TotalIterations}) loss: {loss:F6}"));
                    }
                },
                cancellationToken: ct);
            }
            catch (OperationCanceledException)
            {
                Log.Warning("Stopped at iteration {Iteration}{Checkpoint}", backend.Iteration, checkpointFile is null ? "" : "; run the same command again to resume from the last epoch's checkpoint");
                return 130;
            }

            var elapsed = clock.Elapsed.TotalSeconds;
            double? testAccuracy = parse.GetValue(test) ? backend.Accuracy(dataset.Test) : null;

            if (asJson)
            {
                var summary = new Dictionary<string, object?>
                {
                    ["model"] = parse.GetValue(model),
                    ["engine"] = backend.Origin.Engine,
                    ["device"] = backend.Origin.Device,
                    ["kernel"] = backend.Origin.Kernel,
                    ["outcome"] = result.Outcome.ToString().ToLowerInvariant(),
                    ["reason"] = result.Reason,
                    ["train_accuracy"] = result.TrainAccuracy,
                    ["val_accuracy"] = result.BestValAccuracy,
                    ["test_accuracy"] = testAccuracy,
                    ["best_epoch"] = result.BestEpoch,
                    ["epochs"] = result.Epochs,
                    ["iterations"] = result.Iterations,
                    ["final_loss"] = double.IsFinite(result.FinalLoss) ? result.FinalLoss : null,
                    ["elapsed_seconds"] = Math.Round(elapsed, 3),
                    ["steps_per_second"] = Math.Round(result.Iterations / Math.Max(elapsed, 1e-9), 1),
                    ["peak_memory_mb"] = Math.Round(ProcessStats.PeakResidentMegabytes(), 1),
                    ["history"] = result.History.Select(h => new { epoch = h.Epoch, loss = h.Loss, train_accuracy = h.TrainAccuracy, val_accuracy = h.ValAccuracy, learning_rate = h.LearningRate }),
                };
                Console.WriteLine(JsonSerializer.Serialize(summary));
            }
            else
            {
                var testPart = testAccuracy is { } t ? string.Create(CultureInfo.InvariantCulture, $"; test acc {t:F4}") : "";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Outcome}: best val acc {result.BestValAccuracy:F4} (epoch {result.BestEpoch}), train acc {result.TrainAccuracy:F4}, {result.Iterations} iterations in {elapsed:F1} s") + testPart);
                if (result.Reason is not null && result.Outcome != TrainingOutcome.Completed)
                {
                    Console.WriteLine(result.Reason);
                }
            }

            return 0;
        });
        return command;
    }

    /// <summary>
    /// The split sizes and the print interval, checked before the data is read: CIFAR-10 has 50,000 training images to
    /// share between the training and validation splits, and a model is chosen by validation, so that split cannot be empty.
    /// </summary>
    private static void CheckSizes(int train, int validation, int printEvery)
    {
        if (train is < 1 or > Cifar10.TrainRecords)
        {
            throw new ArgumentException($"--train-size must be between 1 and 50000 (got {train}).");
        }

        if (validation is < 1 or > Cifar10.TrainRecords)
        {
            throw new ArgumentException($"--val-size must be between 1 and 50000 (got {validation}): the best epoch is chosen by validation accuracy.");
        }

        if (train + validation > Cifar10.TrainRecords)
        {
            throw new ArgumentException($"--train-size + --val-size = {train + validation} exceeds the 50,000 CIFAR-10 training images.");
        }

        if (printEvery < 0)
        {
            throw new ArgumentException($"--print-every must be 0 (never) or more (got {printEvery}).");
        }
    }

    private static IReadOnlyList<int> ParseWidths(string list)
    {
        var parts = list.Split(',', StringSplitOptions.TrimEntries);
        var widths = new List<int>();
        foreach (var part in parts)
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var w) || w <= 0)
            {
                throw new ArgumentException($"--hidden-sizes: '{part}' is not a positive whole number (expected e.g. 100,100,100).");
            }

            widths.Add(w);
        }

        return widths;
    }

    /// <summary>
    /// Why a new checkpoint could not be written where <paramref name="file"/> says, found before training (its folder
    /// is created when missing), or null when it can.
    /// </summary>
    private static string? CheckpointFolderProblem(FileInfo file)
    {
        try
        {
            Directory.CreateDirectory(file.DirectoryName!);
            using (File.Create(Temporary(file.FullName), 1, FileOptions.DeleteOnClose))
            {
            }

            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot write a checkpoint there ({e.Message})";
        }
    }

    /// <summary>The file <see cref="WriteAtomically"/> writes before renaming it over <paramref name="path"/>.</summary>
    private static string Temporary(string path) => path + ".tmp";

    /// <summary>Writes to a temporary file and renames it over the target, so a crash never leaves half a checkpoint.</summary>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        var temp = Temporary(path);
        using (var stream = File.Create(temp))
        {
            write(stream);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }
}
