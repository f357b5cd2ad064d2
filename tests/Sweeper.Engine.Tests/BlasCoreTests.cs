using System.Diagnostics;
using System.Text.Json;
using Sweeper.Engine.Kernels;

namespace Sweeper.Engine.Tests;

/// <summary>
/// The choice of OpenBLAS's kernel: the table from instruction sets, the self-check, the fallbacks, and (in fresh
/// processes, since OpenBLAS reads OPENBLAS_CORETYPE when loaded) what the real library ends up running.
/// </summary>
public class BlasCoreTests
{
    private static readonly CpuInfo _intelAvx512 = new() { Vendor = "GenuineIntel", Model = "test", Family = 6, ModelNumber = 207, Avx = true, Avx2 = true, Avx512 = true, Avx512Bf16 = true };
    private static readonly CpuInfo _amdAvx512 = new() { Vendor = "AuthenticAMD", Model = "test", Family = 25, ModelNumber = 17, Avx = true, Avx2 = true, Avx512 = true };
    private static readonly CpuInfo _intelAvx2 = new() { Vendor = "GenuineIntel", Model = "test", Family = 6, ModelNumber = 151, Avx = true, Avx2 = true };
    private static readonly CpuInfo _amdAvx2 = new() { Vendor = "AuthenticAMD", Model = "test", Family = 23, ModelNumber = 49, Avx = true, Avx2 = true };
    private static readonly CpuInfo _avxOnly = new() { Vendor = "GenuineIntel", Model = "test", Family = 6, ModelNumber = 42, Avx = true };

    public static TheoryData<string, string[]> CandidateTable => new()
    {
        { "intel-avx512", ["SkylakeX", "Haswell"] },
        { "amd-avx512", ["SkylakeX", "Zen", "Haswell"] },
        { "intel-avx2", ["Haswell"] },
        { "amd-avx2", ["Zen", "Haswell"] },
        { "avx-only", [] },
    };

    private static CpuInfo Cpu(string name) => name switch
    {
        "intel-avx512" => _intelAvx512,
        "amd-avx512" => _amdAvx512,
        "intel-avx2" => _intelAvx2,
        "amd-avx2" => _amdAvx2,
        _ => _avxOnly,
    };

    [Theory]
    [MemberData(nameof(CandidateTable))]
    public void The_candidate_kernels_follow_the_instruction_sets_best_first(string cpu, string[] expected)
    {
        Assert.Equal(expected, OpenBlasCores.Candidates(Cpu(cpu)));
        Assert.All(expected, core => Assert.True(OpenBlasCores.Runs(Cpu(cpu), core), $"{core} proposed for a {cpu} processor that cannot run it"));
    }

    [Fact]
    public void No_kernel_is_allowed_on_a_processor_missing_its_instructions()
    {
        Assert.False(OpenBlasCores.Runs(_intelAvx2, "SkylakeX"));
        Assert.False(OpenBlasCores.Runs(_amdAvx512, "Cooperlake"));
        Assert.False(OpenBlasCores.Runs(_avxOnly, "Haswell"));
        Assert.False(OpenBlasCores.Runs(_avxOnly, "Zen"));
        Assert.False(OpenBlasCores.Runs(_intelAvx512, "SapphireRapids"));
        Assert.True(OpenBlasCores.Runs(_avxOnly, "Sandybridge"));
        Assert.True(OpenBlasCores.Runs(_avxOnly, "prescott"));
    }

    [Fact]
    public void This_machines_cpuid_agrees_with_the_runtimes_instruction_set_flags()
    {
        var cpu = CpuInfo.Current;
        Assert.False(string.IsNullOrWhiteSpace(cpu.Model));
        if (System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            Assert.Equal(System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported, cpu.Avx2);
            Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, cpu.Avx512);
            Assert.Contains(cpu.Family.ToString(System.Globalization.CultureInfo.InvariantCulture), cpu.ToString());
            if (File.Exists("/proc/cpuinfo"))
            {
                // Family and model as the kernel read them at boot (CPUID leaf 1). Not the brand string: a hypervisor
                // may show the kernel one ("AMD EPYC") and a process another ("Oxide Virtual Turin-like Processor").
                string Field(string name) => File.ReadLines("/proc/cpuinfo").First(l => l.Split(':', 2)[0].Trim() == name).Split(':', 2)[1].Trim();
                Assert.Equal(int.Parse(Field("cpu family"), System.Globalization.CultureInfo.InvariantCulture), cpu.Family);
                Assert.Equal(int.Parse(Field("model"), System.Globalization.CultureInfo.InvariantCulture), cpu.ModelNumber);
            }
        }
    }

    [Fact]
    public void An_avx512_processor_unknown_to_OpenBLAS_gets_SkylakeX_instead_of_the_generic_kernel()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "SkylakeX");
        var (selection, coreType) = OpenBlasCores.Select(_intelAvx512, null, null, "SkylakeX", library);
        Assert.Equal("SkylakeX", selection.Core);
        Assert.Equal("SkylakeX", library.Current);
        Assert.Equal("SkylakeX", coreType);
        Assert.Equal(BlasCoreOrigin.Sweeper, selection.Origin);
        Assert.Equal("Prescott", selection.OpenBlasDefault);
        Assert.Empty(selection.Rejected);
        Assert.Equal(["SkylakeX", "Haswell", "Cooperlake", "Prescott"], selection.Alternatives);
    }

    [Fact]
    public void A_kernel_failing_the_self_check_is_replaced_by_the_next_candidate()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "SkylakeX") { Wrong = { "SkylakeX" } };
        var (selection, _) = OpenBlasCores.Select(_intelAvx512, null, null, "SkylakeX", library);
        Assert.Equal("Haswell", selection.Core);
        Assert.Equal("Haswell", library.Current);
        Assert.Equal(BlasCoreOrigin.Sweeper, selection.Origin);
        Assert.StartsWith("SkylakeX: wrong product", Assert.Single(selection.Rejected));
    }

    [Fact]
    public void When_every_candidate_fails_OpenBLAS_own_choice_is_used_and_then_the_generic_kernel()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "Zen") { Wrong = { "Zen", "Haswell" } };
        var (own, ownType) = OpenBlasCores.Select(_amdAvx2, null, null, "Zen", library);
        Assert.Equal(("Prescott", BlasCoreOrigin.OpenBlasDefault, (string?)null), (own.Core, own.Origin, ownType));
        Assert.Equal(2, own.Rejected.Count);

        library = new FakeOpenBlas("Cooperlake", loadedWith: "SkylakeX") { Wrong = { "SkylakeX", "Haswell", "Cooperlake" } };
        var (generic, genericType) = OpenBlasCores.Select(_intelAvx512, null, null, "SkylakeX", library);
        Assert.Equal(("Prescott", BlasCoreOrigin.SafeFallback, "Prescott"), (generic.Core, generic.Origin, genericType));
        Assert.Equal("Prescott", library.Current);
    }

    [Fact]
    public void When_every_kernel_fails_the_self_check_loading_fails_with_the_reasons()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "Haswell") { Wrong = { "Haswell", "Prescott" } };
        var ex = Assert.Throws<BlasUnavailableException>(() => OpenBlasCores.Select(_intelAvx2, null, null, "Haswell", library));
        Assert.Contains("Haswell: wrong product", ex.Message);
        Assert.Contains("Prescott (OpenBLAS's own choice): wrong product", ex.Message);
    }

    [Fact]
    public void A_forced_kernel_is_kept_and_Sweeper_tries_none_of_its_own()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "Haswell");
        var (selection, coreType) = OpenBlasCores.Select(_intelAvx512, "Haswell", null, "Haswell", library);
        Assert.Equal(("Haswell", BlasCoreOrigin.User, "Haswell"), (selection.Core, selection.Origin, coreType));
        Assert.DoesNotContain("SkylakeX", library.Switches);
        Assert.Equal("Haswell", library.Current);
        Assert.Contains("forced by the user with SWEEPER_BLAS_CORE=Haswell", selection.ToString());
    }

    [Fact]
    public void A_forced_kernel_giving_wrong_products_is_replaced_by_OpenBLAS_own_choice_and_reported()
    {
        var library = new FakeOpenBlas("Haswell", loadedWith: "SkylakeX") { Wrong = { "SkylakeX" } };
        var (selection, _) = OpenBlasCores.Select(_intelAvx512, "SkylakeX", null, "SkylakeX", library);
        Assert.Equal(("Haswell", BlasCoreOrigin.OpenBlasDefault), (selection.Core, selection.Origin));
        Assert.Contains("SWEEPER_BLAS_CORE=SkylakeX", Assert.Single(selection.Rejected));
    }

    [Fact]
    public void OPENBLAS_CORETYPE_from_the_environment_is_overridden_by_a_better_kernel_and_the_override_is_said()
    {
        // Seen here: an environment setting Haswell on an AVX-512 EPYC, where SkylakeX runs sgemm about twice as fast.
        var library = new FakeOpenBlas("Cooperlake", loadedWith: "SkylakeX");
        var (selection, coreType) = OpenBlasCores.Select(_amdAvx512, null, "Haswell", "SkylakeX", library);
        Assert.Equal(("SkylakeX", BlasCoreOrigin.Sweeper, "SkylakeX"), (selection.Core, selection.Origin, coreType));
        Assert.Equal("Haswell", selection.EnvironmentValue);
        Assert.Contains("overriding OPENBLAS_CORETYPE=Haswell from the environment (SWEEPER_BLAS_CORE forces a kernel)", selection.ToString());

        // The environment naming Sweeper's own choice is not reported as overridden.
        var same = OpenBlasCores.Select(_amdAvx512, null, "skylakex", "SkylakeX", new FakeOpenBlas("Cooperlake", loadedWith: "SkylakeX")).Selection;
        Assert.DoesNotContain("overriding", same.ToString());
    }

    [Fact]
    public void OPENBLAS_CORETYPE_from_the_environment_stands_on_a_processor_Sweeper_has_no_kernel_for_once_proven()
    {
        var library = new FakeOpenBlas("Prescott", loadedWith: "Sandybridge");
        var (selection, coreType) = OpenBlasCores.Select(_avxOnly, null, "Sandybridge", "Sandybridge", library);
        Assert.Equal(("Sandybridge", BlasCoreOrigin.Environment, "Sandybridge"), (selection.Core, selection.Origin, coreType));
        Assert.Contains("OPENBLAS_CORETYPE=Sandybridge from the environment", selection.ToString());

        var wrong = new FakeOpenBlas("Prescott", loadedWith: "Sandybridge") { Wrong = { "Sandybridge" } };
        var (replaced, _) = OpenBlasCores.Select(_avxOnly, null, "Sandybridge", "Sandybridge", wrong);
        Assert.Equal(("Prescott", BlasCoreOrigin.OpenBlasDefault), (replaced.Core, replaced.Origin));
        Assert.Contains("OPENBLAS_CORETYPE=Sandybridge", Assert.Single(replaced.Rejected));
    }

    [Fact]
    public void A_library_that_cannot_switch_kernels_keeps_the_one_it_runs()
    {
        var library = new FakeOpenBlas("Haswell", loadedWith: "SkylakeX", known: []) { Switchable = false };
        var (selection, _) = OpenBlasCores.Select(_intelAvx512, null, null, "SkylakeX", library);
        Assert.Equal("Haswell", selection.Core);
        Assert.Empty(library.Switches);
        Assert.Contains("SkylakeX: OpenBLAS ran Haswell when asked for it", selection.Rejected);
    }

    [Fact]
    public void The_self_check_accepts_the_loaded_OpenBLAS_in_float_and_double()
    {
        Assert.Null(BlasSelfCheck.Run(Blas.Gemm, Blas.Gemm));
    }

    [Theory]
    [InlineData("drops the last term of every sum")]
    [InlineData("ignores beta")]
    [InlineData("reads C when beta is zero")]
    [InlineData("writes past n into the padding of C")]
    [InlineData("ignores the leading dimension of B")]
    [InlineData("sums in half precision")]
    [InlineData("is one part in a thousand off in one element")]
    public void The_self_check_rejects_a_deliberately_wrong_product(string fault)
    {
        GemmKernel<float> wrong = fault == "is one part in a thousand off in one element"
            ? (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
            {
                Blas.Gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                c[((m - 1) * ldc) + n - 1] *= 1.001f;
            }
            : (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => FaultyGemm(fault, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        Assert.NotNull(BlasSelfCheck.Run(wrong, null));
    }

    [Fact]
    public void The_self_check_accepts_a_correct_naive_product()
    {
        Assert.Null(BlasSelfCheck.Run((ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => FaultyGemm("none", ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), null));
    }

    /// <summary>A naive float product with one chosen mistake ("none": correct, summing in double).</summary>
    private static void FaultyGemm(string fault, bool ta, bool tb, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                var half = (Half)0;
                var terms = fault == "drops the last term of every sum" ? k - 1 : k;
                for (var p = 0; p < terms; p++)
                {
                    var stride = fault == "ignores the leading dimension of B" ? (tb ? k : n) : ldb;
                    var bv = tb ? b[(j * stride) + p] : b[(p * stride) + j];
                    var product = (double)(ta ? a[(p * lda) + i] : a[(i * lda) + p]) * bv;
                    sum += product;
                    half += (Half)product;
                }

                if (fault == "sums in half precision")
                {
                    sum = (double)half;
                }

                var old = fault == "ignores beta" ? c[(i * ldc) + j] : beta * c[(i * ldc) + j];
                c[(i * ldc) + j] = beta == 0 && fault != "reads C when beta is zero" ? (float)(alpha * sum) : (float)((alpha * sum) + old);
            }

            if (fault == "writes past n into the padding of C" && ldc > n)
            {
                c[(i * ldc) + n] = 0;
            }
        }
    }

    [Fact]
    public void Describe_reports_the_cpu_model_the_kernel_OpenBLAS_runs_and_how_it_was_chosen()
    {
        var text = Blas.Describe();
        var selection = Blas.Selection;
        Assert.Contains(CpuInfo.Current.Model, text);
        Assert.Contains($"core {selection.Core} (", text);
        Assert.Contains(selection.Origin switch
        {
            BlasCoreOrigin.User => "forced by the user",
            BlasCoreOrigin.Environment => "from the environment",
            BlasCoreOrigin.Sweeper => "chosen by Sweeper",
            BlasCoreOrigin.OpenBlasDefault => "OpenBLAS's own choice",
            _ => "safe fallback",
        }, text);
        Assert.Contains("self-check passed", text);
    }

    [Fact]
    public void Without_OPENBLAS_CORETYPE_an_avx2_machine_runs_Sweepers_kernel_and_not_the_generic_Prescott()
    {
        var child = Child([]);
        var cpu = CpuInfo.Current;
        if (cpu.Avx2)
        {
            Assert.Equal("Sweeper", child.GetProperty("origin").GetString());
            Assert.Equal(OpenBlasCores.Candidates(cpu)[0], child.GetProperty("core").GetString());
            Assert.Equal(OpenBlasCores.Candidates(cpu)[0], child.GetProperty("core_now").GetString());
            Assert.NotEqual("Prescott", child.GetProperty("core").GetString());
            Assert.Empty(child.GetProperty("rejected").EnumerateArray());
            Assert.False(string.IsNullOrEmpty(child.GetProperty("openblas_default").GetString()));
        }
        else
        {
            Assert.Equal("OpenBlasDefault", child.GetProperty("origin").GetString());
        }

        Assert.Equal(JsonValueKind.Null, child.GetProperty("native_coretype_after").ValueKind); // Sweeper's setting is not left behind
        var describe = child.GetProperty("describe").GetString()!;
        Assert.Contains(cpu.Model, describe);
        Assert.Contains($"core {child.GetProperty("core").GetString()} (", describe);
    }

    [Fact]
    public void SWEEPER_BLAS_CORE_forces_the_kernel_and_OPENBLAS_CORETYPE_is_put_back_as_it_was()
    {
        var core = CpuInfo.Current.Avx2 ? "Haswell" : "Prescott";
        var child = Child(new() { ["SWEEPER_BLAS_CORE"] = core.ToLowerInvariant(), ["OPENBLAS_CORETYPE"] = "Prescott" });
        Assert.Equal("User", child.GetProperty("origin").GetString());
        Assert.Equal(core, child.GetProperty("core").GetString());
        Assert.Equal(core, child.GetProperty("core_now").GetString());
        Assert.Equal(core.ToLowerInvariant(), child.GetProperty("user_value").GetString());
        Assert.Equal("Prescott", child.GetProperty("native_coretype_after").GetString());
        Assert.Contains($"forced by the user with SWEEPER_BLAS_CORE={core.ToLowerInvariant()}", child.GetProperty("describe").GetString());
    }

    [Fact]
    public void OPENBLAS_CORETYPE_naming_a_lesser_kernel_does_not_hold_the_engine_back()
    {
        // The environment may set a kernel below what the processor runs; the engine runs its own best candidate.
        var cpu = CpuInfo.Current;
        Assert.True(cpu.Avx2, "this test needs a processor with AVX2");
        var child = Child(new() { ["OPENBLAS_CORETYPE"] = "Prescott" });
        Assert.Equal(("Sweeper", OpenBlasCores.Candidates(cpu)[0]), (child.GetProperty("origin").GetString(), child.GetProperty("core_now").GetString()));
        Assert.Contains("overriding OPENBLAS_CORETYPE=Prescott from the environment", child.GetProperty("describe").GetString());
        Assert.Equal("Prescott", child.GetProperty("native_coretype_after").GetString()); // left as found, for other libraries and children
    }

    [Fact]
    public void SWEEPER_BLAS_CORE_set_only_in_the_dotnet_environment_still_reaches_OpenBLAS()
    {
        var core = CpuInfo.Current.Avx2 ? "Haswell" : "Prescott";
        var child = Child([], "--managed-force", core);
        Assert.Equal(("User", core), (child.GetProperty("origin").GetString(), child.GetProperty("core_now").GetString()));
    }

    [Fact]
    public void The_real_library_replaces_a_kernel_with_wrong_products_in_the_same_process()
    {
        var candidates = OpenBlasCores.Candidates(CpuInfo.Current);
        Assert.True(candidates.Count >= 1, "this test needs a processor with AVX2");
        var child = Child([], "--corrupt", candidates[0]);
        var rejected = child.GetProperty("rejected").EnumerateArray().Select(r => r.GetString()!).ToList();
        Assert.StartsWith($"{candidates[0]}: sgemm", Assert.Single(rejected));
        var expected = candidates.Count > 1 ? candidates[1] : child.GetProperty("openblas_default").GetString();
        Assert.Equal(expected, child.GetProperty("core").GetString());
        Assert.Equal(expected, child.GetProperty("core_now").GetString());

        var allWrong = Child([], "--corrupt", string.Join(',', candidates));
        Assert.Equal("OpenBlasDefault", allWrong.GetProperty("origin").GetString());
        Assert.Equal(allWrong.GetProperty("openblas_default").GetString(), allWrong.GetProperty("core_now").GetString());
    }

    [Fact]
    public void Every_kernel_this_processor_runs_passes_the_self_check_and_the_chosen_one_comes_back_after_trying_them()
    {
        var child = Child([], "--switch-all");
        var switched = child.GetProperty("switched").EnumerateObject().ToList();
        Assert.True(switched.Count >= 2);
        foreach (var s in switched.Where(s => !s.Name.StartsWith('(')))
        {
            Assert.Equal(s.Name, s.Value.GetString());
        }

        Assert.Equal(child.GetProperty("openblas_default").GetString(), switched.Single(s => s.Name.StartsWith('(')).Value.GetString());
        Assert.Equal(child.GetProperty("core").GetString(), child.GetProperty("core_now").GetString());
    }

    /// <summary>
    /// Runs <see cref="ChildProgram"/> in a fresh process with OPENBLAS_CORETYPE and SWEEPER_BLAS_CORE removed from the
    /// environment, then <paramref name="environment"/> set, and returns the selection it printed.
    /// </summary>
    private static JsonElement Child(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "Sweeper.Engine.Tests.dll"), "blas", .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment.Remove("OPENBLAS_CORETYPE");
        start.Environment.Remove("SWEEPER_BLAS_CORE");
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stderr.Result);
        using var json = JsonDocument.Parse(stdout);
        return json.RootElement.Clone();
    }

    /// <summary>
    /// A DYNAMIC_ARCH OpenBLAS in miniature: runs <c>ownChoice</c> unless told otherwise, knows <see cref="Known"/>,
    /// falls to its own choice for names it does not know, and gives wrong products on the kernels in <see cref="Wrong"/>.
    /// </summary>
    private sealed class FakeOpenBlas : IOpenBlasCores
    {
        private readonly string _ownChoice;

        public FakeOpenBlas(string ownChoice, string? loadedWith, string[]? known = null)
        {
            _ownChoice = ownChoice;
            Known = known ?? ["Prescott", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"];
            Current = loadedWith is not null && Has(loadedWith) ? Known.First(k => OpenBlasCores.Same(k, loadedWith)) : ownChoice;
        }

        public HashSet<string> Wrong { get; } = new(StringComparer.OrdinalIgnoreCase);

        public string[] Known { get; }

        public bool Switchable { get; init; } = true;

        public List<string?> Switches { get; } = [];

        public string Current { get; private set; }

        public bool CanSwitch => Switchable;

        public bool Has(string core) => Known.Any(k => OpenBlasCores.Same(k, core));

        public void Switch(string? coreType)
        {
            Assert.True(Switchable);
            Switches.Add(coreType);
            Current = coreType is not null && Has(coreType) ? Known.First(k => OpenBlasCores.Same(k, coreType)) : _ownChoice;
        }

        public string? SelfCheck() => Wrong.Contains(Current) ? "wrong product" : null;
    }
}
