using System.Text.RegularExpressions;
using Sweeper.Cli;
using Sweeper.Core.Sweeps;
using YamlDotNet.RepresentationModel;

namespace Sweeper.Runtime.Tests;

/// <summary>
/// There is no container engine here, so the deployment files are checked as far as they can be: they parse, and
/// every command, flag, environment variable, image, file and secret key they name exists.
/// </summary>
public class DeployFilesTests
{
    private static readonly string _root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sweeper.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("the repository root (Sweeper.sln) was not found above the test binaries");
    }

    private static IEnumerable<YamlMappingNode> Documents(string relative)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(_root, relative))));
        return stream.Documents.Select(d => (YamlMappingNode)d.RootNode);
    }

    private static YamlNode? Get(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return null;
            }

            node = next;
        }

        return node;
    }

    private static string[] Strings(YamlNode? node) => node is YamlSequenceNode seq ? seq.Children.Select(c => ((YamlScalarNode)c).Value!).ToArray() : [];

    /// <summary>Fails unless the program's own parser accepts <paramref name="args"/> without errors.</summary>
    private static void AssertValidCommand(string where, string[] args)
    {
        Assert.NotEmpty(args);
        var result = SweeperProgram.CreateRootCommand().Parse(args);
        Assert.True(result.Errors.Count == 0, $"{where}: sweeper {string.Join(' ', args)}: {string.Join("; ", result.Errors.Select(e => e.Message))}");
        foreach (var sweep in args.Where(a => a.StartsWith("/sweeps/", StringComparison.Ordinal)))
        {
            SweepParser.ParseFile(Path.Combine(_root, sweep.TrimStart('/')));
        }
    }

    private static void AssertKnownVariable(string where, string name)
    {
        if (name.StartsWith("SWEEPER_", StringComparison.Ordinal))
        {
            Assert.True(SweeperProgram.EnvironmentVariables.Contains(name), $"{where}: the program does not read ${name}");
        }
    }

    [Fact]
    public void The_programs_list_of_environment_variables_matches_its_code()
    {
        var code = string.Join("\n", Directory.GetFiles(Path.Combine(_root, "src"), "*.cs", SearchOption.AllDirectories).Select(File.ReadAllText));
        foreach (var name in SweeperProgram.EnvironmentVariables)
        {
            Assert.Contains($"\"{name}\"", code);
        }
    }

    [Fact]
    public void Docker_compose_services_name_real_commands_flags_variables_and_files()
    {
        var compose = Documents("docker-compose.yml").Single();
        var services = (YamlMappingNode)Get(compose, "services")!;
        Assert.Equal(["postgres", "coordinator", "worker", "dashboard"], services.Children.Keys.Select(k => ((YamlScalarNode)k).Value));
        Assert.Equal("postgres:15", ((YamlScalarNode)Get(services, "postgres", "image")!).Value);
        Assert.NotNull(Get(services, "postgres", "healthcheck"));
        Assert.True(File.Exists(Path.Combine(_root, ((YamlScalarNode)Get(services, "coordinator", "build", "dockerfile")!).Value!)));
        foreach (var role in new[] { "coordinator", "worker", "dashboard" })
        {
            Assert.Equal("sweeper", ((YamlScalarNode)Get(services, role, "image")!).Value);
            if (Get(services, role, "ports") is YamlSequenceNode ports)
            {
                // The published container port is the one the command listens on.
                var url = Strings(Get(services, role, "command")).SkipWhile(a => a != "--url").Skip(1).First();
                Assert.EndsWith(":" + new Uri(url).Port, ((YamlScalarNode)ports.Children[0]).Value);
            }

            AssertValidCommand($"compose {role}", Strings(Get(services, role, "command")));
            var healthcheck = Strings(Get(services, role, "healthcheck", "test"));
            Assert.Equal(["CMD", "/app/sweeper"], healthcheck[..2]);
            AssertValidCommand($"compose {role} healthcheck", healthcheck[2..]);
            foreach (var env in ((YamlMappingNode?)Get(services, role, "environment"))?.Children.Keys ?? [])
            {
                AssertKnownVariable($"compose {role}", ((YamlScalarNode)env).Value!);
            }
        }

        // A worker scales with --scale worker=N: nothing in it may pin one container (a name or a host port).
        Assert.Null(Get(services, "worker", "container_name"));
        Assert.Null(Get(services, "worker", "ports"));
    }

    [Fact]
    public void Kubernetes_manifests_name_real_commands_variables_and_secret_keys()
    {
        var secret = Documents("deploy/kubernetes/secret.yaml").Single();
        var keys = ((YamlMappingNode)Get(secret, "stringData")!).Children.Keys.Select(k => ((YamlScalarNode)k).Value).ToHashSet();
        var kinds = new List<string>();
        foreach (var file in new[] { "deploy/kubernetes/coordinator.yaml", "deploy/kubernetes/workers.yaml", "deploy/kubernetes/dashboard.yaml" })
        {
            foreach (var doc in Documents(file))
            {
                kinds.Add(((YamlScalarNode)Get(doc, "kind")!).Value!);
                if (Get(doc, "spec", "template", "spec", "containers") is null)
                {
                    continue; // a Service
                }

                var containers = (YamlSequenceNode)Get(doc, "spec", "template", "spec", "containers")!;
                foreach (var container in containers.Children)
                {
                    Assert.Equal("sweeper:latest", ((YamlScalarNode)Get(container, "image")!).Value);
                    AssertValidCommand(file, Strings(Get(container, "args")));
                    foreach (var env in ((YamlSequenceNode?)Get(container, "env"))?.Children ?? [])
                    {
                        AssertKnownVariable(file, ((YamlScalarNode)Get(env, "name")!).Value!);
                        if (Get(env, "valueFrom", "secretKeyRef", "key") is YamlScalarNode key)
                        {
                            Assert.Contains(key.Value, keys);
                            Assert.Equal("sweeper-store", ((YamlScalarNode)Get(env, "valueFrom", "secretKeyRef", "name")!).Value);
                        }
                    }
                }
            }
        }

        Assert.Equal(["Deployment", "Job", "Deployment", "Service"], kinds);
        var job = Documents("deploy/kubernetes/workers.yaml").Single();
        Assert.True(int.Parse(((YamlScalarNode)Get(job, "spec", "parallelism")!).Value!, System.Globalization.CultureInfo.InvariantCulture) > 1);
    }

    [Fact]
    public void The_slurm_script_starts_a_real_worker_command_per_array_task()
    {
        var text = File.ReadAllText(Path.Combine(_root, "deploy/slurm/sweeper-workers.sbatch"));
        Assert.Matches(new Regex(@"^#SBATCH --array=\d+-\d+$", RegexOptions.Multiline), text);
        var line = text.Split('\n').Single(l => l.StartsWith("srun ", StringComparison.Ordinal));
        // Shell words, with each "$VAR" or "${VAR:-default}" standing for one value.
        var words = Regex.Matches(line, "\"[^\"]*\"|\\S+").Select(m => m.Value.Trim('"')).ToArray();
        Assert.Equal(["srun", "$SWEEPER"], words[..2]);
        AssertValidCommand("slurm", words[2..].Select(w => w.StartsWith('$') ? "value" : w).ToArray());
        foreach (Match m in Regex.Matches(text, @"\$\{?(SWEEPER_[A-Z_]+)"))
        {
            AssertKnownVariable("slurm", m.Groups[1].Value);
        }
    }

    [Fact]
    public void The_dockerfile_builds_the_program_and_installs_openblas()
    {
        var text = File.ReadAllText(Path.Combine(_root, "deploy/Dockerfile"));
        Assert.Contains("libopenblas0-pthread", text);
        Assert.Contains("ENTRYPOINT [\"/app/sweeper\"]", text);
        foreach (Match m in Regex.Matches(text, @"dotnet publish (\S+)"))
        {
            Assert.True(File.Exists(Path.Combine(_root, m.Groups[1].Value)), m.Groups[1].Value);
        }

        Assert.Contains("<AssemblyName>sweeper</AssemblyName>", File.ReadAllText(Path.Combine(_root, "src/Sweeper.Cli/Sweeper.Cli.csproj")));
        foreach (Match m in Regex.Matches(text, @"^COPY (?!--from)(\S+) ", RegexOptions.Multiline))
        {
            Assert.True(m.Groups[1].Value == "." || Directory.Exists(Path.Combine(_root, m.Groups[1].Value)), m.Groups[1].Value);
        }

        foreach (Match m in Regex.Matches(text, @"^ENV (SWEEPER_[A-Z_]+)=", RegexOptions.Multiline))
        {
            AssertKnownVariable("Dockerfile", m.Groups[1].Value);
        }
    }
}
