using System.Diagnostics;
using System.Text;
using Sweeper.Core.Sweeps;

namespace Sweeper.Core.Tests;

/// <summary>
/// Feeds the parser mutants of the example sweep files and of these tests' examples, and checks that nothing but a
/// <see cref="SweepFileException"/> comes out of parsing, counting and sampling. Seeded: every run tries the same inputs.
/// </summary>
public class SweepParserFuzzTests
{
    private const int Inputs = 20_000;

    private static readonly string[] _examples =
    [
        SweepParserTests.Valid,
        """
        name: g
        method: grid
        parameters:
          model: {values: [softmax, two_layer]}
          learning_rate: {values: [1.0e-3, 1.0e-4]}
        conditions:
          - when: {model: two_layer}
            parameters:
              hidden_size: {distribution: int_uniform, min: 50, max: 150, q: 50}
          - when: {model: [two_layer, softmax]}
            parameters:
              batch_size: {values: [100, 200]}
        budget: {max_trials: 100}
        seed: 3
        """,
        """
        name: r
        method: random
        model: fc
        parameters:
          learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
          dropout: {distribution: uniform, min: 0.1, max: 0.5, q: 0.1}
          hidden_size: {distribution: int_uniform, min: 10, max: 100, q: 10}
          iterations: {distribution: int_uniform, min: 1, max: 5000000000}
          update_rule: {values: [sgd, adam]}
        budget: {max_trials: 200}
        early_terminate: {type: median, warmup_epochs: 1, min_trials: 3}
        data: {train_size: 1000, val_size: 100, test_size: 100}
        metric: {name: val_accuracy, goal: maximize}
        seed: 12
        """,
        """
        name: a
        method: grid
        parameters:
          model: {values: [softmax, fc]}
          learning_rate: {value: 1.0e-3}
        conditions:
          - when: {model: fc}
            parameters:
              hidden_size: {values: [50, 100]}
              hidden_sizes: {values: [[100, 100], [200]]}
              dropout: {values: [0, 0.5]}
        budget: {max_trials: 5}
        """,
    ];

    private static readonly string[] _keys =
    [
        "name", "method", "model", "family", "parameters", "conditions", "when", "value", "values", "distribution", "min", "max", "q",
        "budget", "max_trials", "max_concurrent", "retries", "seed", "data", "train_size", "early_terminate", "type", "metric", "goal",
        "program", "command", "run_cap", "mu", "sigma", "probabilities", "min_iter", "max_iter", "s", "eta", "strict", "engine", "device",
        "bayes", "startup_trials", "trial", "env", "controller", "target", "project",
        "learning_rate", "reg", "hidden_size", "hidden_sizes", "num_layers", "dropout", "batch_size", "epochs", "iterations",
        "update_rule", "normalization", "momentum", "[a, b]", "{x: 1}", "? [k]", "\"quoted\"", "<<", "", "-",
    ];

    private static readonly string[] _values =
    [
        "0", "1", "-1", "2", "0.5", "1e-3", "1e400", "-1e400", "1e-320", "NaN", ".inf", "Infinity", "4294967296", "3e9", "5e9",
        "9007199254740992", "9007199254740993", "-9007199254740993", "9223372036854775807", "9223372036854775808", "1e18", "1e300",
        new string('9', 400), "\"1e-4\"", "'10'", "grid", "random", "int_uniform", "log_uniform", "uniform", "fc", "softmax", "adam",
        "[]", "{}", "[1, 2]", "[[1, 2], [3]]", "[a, b]", "{x: 1}", "{min: 1, max: 1e9}", "{distribution: int_uniform, min: 1, max: 1e9}",
        "{values: [1, 2, 3]}", "~", "null", "", "&a 1", "*a", "&b [1, *b]", "!!str 5", "|", ">", "'unclosed", "\"unclosed", "#", "true",
        "[1, 2", "{a: 1", "- 1", "? x", ": y", "\t1", "bayes", "hyperband", "median", "log_uniform_values", "q_uniform", "q_log_uniform",
        "inv_log_uniform", "normal", "q_normal", "log_normal", "q_log_normal", "categorical", "constant", "minimize", "maximize", "train.py",
        "[${env}, ${program}, ${args}]", "{parameters: {a: {value: 1}}}", "[0.5, 0.5]", "-745", "709", "710", "torch", "cuda",
    ];

    [Fact]
    public void Mutated_sweep_files_raise_nothing_but_sweep_file_errors()
    {
        var seeds = _examples.Concat(Directory.GetFiles(SweepParserTests.FindSweeps(), "*.yaml").Order(StringComparer.Ordinal).Select(File.ReadAllText))
            .Concat(Directory.GetFiles(WandbFilesTests.FindWandb(), "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Select(File.ReadAllText)).ToArray();
        var rng = new Rng(20_240_611);
        var failures = new List<string>();
        var parsed = 0;
        var slowest = (Time: TimeSpan.Zero, Input: "");
        for (var i = 0; i < Inputs && failures.Count < 5; i++)
        {
            var text = seeds[rng.NextInt(seeds.Length)];
            var mutations = 1 + rng.NextInt(4);
            for (var m = 0; m < mutations; m++)
            {
                text = Mutate(text, rng);
            }

            var clock = Stopwatch.StartNew();
            try
            {
                var sweep = SweepParser.Parse(text, "fuzz.yaml");
                var count = SearchSpace.TrialCount(sweep);
                // bayes (TPE) has no sampler in this build yet: its search space is checked with random draws.
                var sampler = sweep.Method == "bayes" ? new RandomSampler() : SearchSpace.CreateSampler(sweep);
                var trials = sampler.Propose(sweep, (int)Math.Min(count, 5));
                _ = SweepJson.Deserialize(SweepJson.Serialize(sweep), text);
                Assert.Equal(Math.Min(count, 5), trials.Count);
                parsed++;
            }
            catch (SweepFileException e)
            {
                Assert.StartsWith("fuzz.yaml:", e.Message);
                Assert.True(e.Line >= 1 && e.Column >= 1, e.Message);
            }
            catch (Exception e)
            {
                failures.Add($"input {i}: {e.GetType().Name}: {e.Message}\n{Escape(text)}\n{e.StackTrace}");
            }

            if (clock.Elapsed > slowest.Time)
            {
                slowest = (clock.Elapsed, Escape(text));
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n\n", failures));

        // The mutants must reach past the YAML reader: some are still valid sweeps (so counting and sampling ran).
        Assert.InRange(parsed, Inputs / 50, Inputs);
        // A hang guard, not a speed test: one input takes about a millisecond, so one that takes seconds means the parser
        // (or counting a grid, or sampling) went exponential or looped on it. The whole run's time is not asserted.
        Assert.True(slowest.Time < TimeSpan.FromSeconds(5), $"one input took {slowest.Time}:\n{slowest.Input}");
    }

    private static string Mutate(string text, Rng rng)
    {
        var lines = text.Split('\n').ToList();
        var at = rng.NextInt(lines.Count);
        switch (rng.NextInt(13))
        {
            case 0:
                lines.RemoveAt(at);
                break;
            case 1:
                lines.Insert(at, lines[at]);
                break;
            case 2:
                {
                    var other = rng.NextInt(lines.Count);
                    (lines[at], lines[other]) = (lines[other], lines[at]);
                    break;
                }

            case 3:
                {
                    // Swap two neighbouring characters.
                    if (text.Length < 2)
                    {
                        return text;
                    }

                    var c = rng.NextInt(text.Length - 1);
                    return string.Concat(text.AsSpan(0, c), text[c + 1].ToString(), text[c].ToString(), text.AsSpan(c + 2));
                }

            case 4:
            case 5:
                {
                    // Replace a value.
                    var colon = lines[at].IndexOf(": ", StringComparison.Ordinal);
                    var value = _values[rng.NextInt(_values.Length)];
                    lines[at] = colon >= 0 ? lines[at][..(colon + 2)] + value : lines[at] + ": " + value;
                    break;
                }

            case 6:
                {
                    // A new key at some indentation.
                    var indent = new string(' ', 2 * rng.NextInt(5));
                    lines.Insert(at, $"{indent}{_keys[rng.NextInt(_keys.Length)]}: {_values[rng.NextInt(_values.Length)]}");
                    break;
                }

            case 7:
                {
                    // A YAML-significant character somewhere.
                    const string Chars = ":[]{}-?#&*!|>'\",\t \n%@`";
                    var c = rng.NextInt(text.Length + 1);
                    return text.Insert(c, Chars[rng.NextInt(Chars.Length)].ToString());
                }

            case 8:
                {
                    // Deep nesting.
                    var depth = 1 + rng.NextInt(rng.NextInt(2) == 0 ? 100 : 3000);
                    var nest = rng.NextInt(4) switch
                    {
                        0 => new string('[', depth) + "1" + new string(']', depth),
                        1 => string.Concat(Enumerable.Repeat("{a: ", depth)) + "1" + new string('}', depth),
                        2 => string.Concat(Enumerable.Repeat("- ", depth)) + "1",
                        _ => string.Join("\n", Enumerable.Range(0, Math.Min(depth, 200)).Select(d => new string(' ', d + 2) + "k:")),
                    };
                    var colon = lines[at].IndexOf(':', StringComparison.Ordinal);
                    lines[at] = (colon >= 0 ? lines[at][..(colon + 1)] : lines[at] + ":") + " " + nest;
                    break;
                }

            case 9:
                {
                    // Re-indent a line (spaces or a tab).
                    var trimmed = lines[at].TrimStart();
                    lines[at] = (rng.NextInt(3) == 0 ? "\t" : new string(' ', rng.NextInt(9))) + trimmed;
                    break;
                }

            case 10:
                return text[..rng.NextInt(text.Length + 1)];
            case 11:
                {
                    // A big integer range, on a grid or not.
                    var name = new[] { "hidden_size", "iterations", "batch_size", "epochs", "num_layers" }[rng.NextInt(5)];
                    var max = new[] { "1e9", "4294967296", "3e9", "9007199254740992", "1e6", "1000" }[rng.NextInt(6)];
                    var q = rng.NextInt(3) == 0 ? ", q: " + _values[rng.NextInt(_values.Length)] : "";
                    var parameters = lines.FindIndex(l => l.StartsWith("parameters:", StringComparison.Ordinal));
                    lines.Insert(parameters < 0 ? at : parameters + 1, $"  {name}: {{distribution: int_uniform, min: 1, max: {max}{q}}}");
                    break;
                }

            default:
                text = text.Replace(rng.NextInt(2) == 0 ? "random" : "grid", rng.NextInt(2) == 0 ? "grid" : "random", StringComparison.Ordinal);
                return text;
        }

        return string.Join("\n", lines);
    }

    private static string Escape(string text)
    {
        var sb = new StringBuilder();
        foreach (var c in text.Length > 2000 ? text[..2000] + "..." : text)
        {
            sb.Append(c switch
            {
                '\t' => "\\t",
                '\r' => "\\r",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }
}
