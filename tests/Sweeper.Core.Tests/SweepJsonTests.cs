using Sweeper.Core.Sweeps;
using Sweeper.Core.Trials;

namespace Sweeper.Core.Tests;

public class SweepJsonTests
{
    private const string Conditional = """
        name: cond
        description: every kind of domain
        method: random
        model: {family: fc, epochs: 3, init: he}
        data: {train_size: 2000, val_size: 500, test_size: 100}
        parameters:
          learning_rate: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}
          reg: {distribution: uniform, min: 0, max: 1, q: 0.25}
          lr_decay: {values: [1.0, 0.9]}
          update_rule: {values: [sgd_momentum, adam]}
          hidden_sizes: {values: [[100, 50], [200]]}
        conditions:
          - when: {update_rule: [adam]}
            parameters:
              beta1: {value: 0.85}
              batch_size: {distribution: int_uniform, min: 50, max: 250, q: 50}
          - when: {update_rule: sgd_momentum}
            parameters:
              momentum: {values: [0.5, 0.9]}
        budget: {max_trials: 200, max_concurrent: 3, retries: 5}
        early_terminate: {type: median, warmup_epochs: 2, min_trials: 4}
        seed: 9001
        """;

    private static StudyRecord Record(string text, string? json) =>
        new("cond", "hash", text, json, "random", 200, DateTimeOffset.UnixEpoch, false, null, 2);

    [Fact]
    public void A_definition_read_back_from_its_json_samples_and_grids_exactly_as_the_parsed_file()
    {
        foreach (var text in new[] { Conditional, Conditional.Replace("method: random", "method: grid", StringComparison.Ordinal).Replace("{distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}", "{values: [1.0e-3, 1.0e-4]}", StringComparison.Ordinal).Replace("{distribution: uniform, min: 0, max: 1, q: 0.25}", "{value: 0}", StringComparison.Ordinal) })
        {
            var parsed = SweepParser.Parse(text, "cond.yaml");
            var read = SweepJson.Deserialize(SweepJson.Serialize(parsed), text);
            Assert.Equal(parsed.ParameterNames, read.ParameterNames);
            Assert.Equal((parsed.Name, parsed.Description, parsed.Method, parsed.Metric, parsed.Goal, parsed.Seed, parsed.SourceHash),
                (read.Name, read.Description, read.Method, read.Metric, read.Goal, read.Seed, read.SourceHash));
            Assert.Equal((parsed.Data, parsed.Budget, parsed.EarlyTerminate), (read.Data, read.Budget, read.EarlyTerminate));
            Assert.Equal(SearchSpace.TrialCount(parsed), SearchSpace.TrialCount(read));
            var count = (int)SearchSpace.TrialCount(parsed);
            var expected = SearchSpace.CreateSampler(parsed).Propose(parsed, count);
            var actual = SearchSpace.CreateSampler(read).Propose(read, count);
            Assert.Equal(expected.Select(t => (t.Number, t.Seed, ParamJson.Serialize(t.Parameters))), actual.Select(t => (t.Number, t.Seed, ParamJson.Serialize(t.Parameters))));
            Assert.Equal(SweepJson.Serialize(parsed), SweepJson.Serialize(read));
        }
    }

    [Fact]
    public void Values_keep_their_types_so_a_float_written_as_a_whole_number_stays_a_float()
    {
        var read = SweepJson.Deserialize(SweepJson.Serialize(SweepParser.Parse(Conditional, "cond.yaml")), Conditional);
        Assert.Equal<object>([1.0, 0.9], ((ValueList)read.Parameters["lr_decay"]).Values);
        Assert.IsType<double>(((ValueList)read.Parameters["lr_decay"]).Values[0]);
        Assert.IsType<long>(((FixedValue)read.Parameters["epochs"]).Value);
        Assert.Equal<object>(["100,50", "200"], ((ValueList)read.Parameters["hidden_sizes"]).Values);
        Assert.Equal(new Distribution(Distribution.Uniform, 0, 1, 0.25), read.Parameters["reg"]);
        Assert.Equal(new Distribution(Distribution.IntUniform, 50, 250, 50), read.Conditions[0].Parameters["batch_size"]);
        Assert.Equal<object>(["adam"], read.Conditions[0].When["update_rule"]);
    }

    [Fact]
    public void The_document_has_the_documented_shape()
    {
        var sweep = SweepParser.Parse("""
            name: tiny
            method: random
            model: softmax
            parameters:
              learning_rate: {values: [1, 1.0e-4]}
              epochs: {value: 2}
            conditions:
              - when: {model: softmax}
                parameters:
                  reg: {distribution: uniform, min: 0, max: 1}
            seed: 3
            """, "tiny.yaml");
        const string Expected = """
            {"format":2,"name":"tiny","description":null,"project":null,"entity":null,"method":"random","metric":"val_accuracy","goal":"maximize","seed":3,
            "engine":"native","device":"cpu","bayes":{"startup_trials":10,"candidates":24},"program":null,
            "data":{"dataset":"cifar10","path":null,"train_size":49000,"val_size":1000,"test_size":1000,"dev_size":0,"subtract_mean":true,"bias_column":false},
            "budget":{"max_trials":20,"max_concurrent":null,"retries":2},"early_terminate":null,
            "parameters":[{"name":"model","value":"softmax"},{"name":"learning_rate","values":[1.0,0.0001],"probabilities":null},{"name":"epochs","value":2}],
            "conditions":[{"when":{"model":["softmax"]},"parameters":[{"name":"reg","distribution":"uniform","min":0.0,"max":1.0,"q":null,"mu":0.0,"sigma":1.0}]}],
            "warnings":[]}
            """;
        Assert.Equal(Expected.ReplaceLineEndings(""), SweepJson.Serialize(sweep));
    }

    [Fact]
    public void A_study_is_read_from_its_stored_definition_and_only_a_study_without_one_parses_its_file()
    {
        var json = SweepJson.Serialize(SweepParser.Parse(Conditional, "cond.yaml"));
        // The stored definition wins: the text is only the file the user wrote (here not even a sweep).
        Assert.Equal("cond", SweepJson.Of(Record("not yaml: [", json)).Name);
        Assert.Equal(SweepParser.Parse(Conditional, "cond").ParameterNames, SweepJson.Of(Record(Conditional, null)).ParameterNames);
        Assert.Throws<SweepFileException>(() => SweepJson.Of(Record("name: cond\nmethod: annealing\n", null)));
        Assert.Throws<InvalidDataException>(() => SweepJson.Deserialize("""{"format":2}""", Conditional));
        Assert.Throws<InvalidDataException>(() => SweepJson.Deserialize("{}", Conditional));
    }
}
