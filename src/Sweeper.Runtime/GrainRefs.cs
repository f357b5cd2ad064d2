namespace Sweeper.Runtime;

/// <summary>
/// References to the study and trial grains without Orleans' per-call type resolution. <c>GetGrain&lt;T&gt;(key)</c>
/// resolves <typeparamref name="T"/>'s grain type and interface type on every call, by reflection over its attributes
/// (about 5% of a silo's CPU per trial on the orchestration benchmark: a slot makes several such references per trial,
/// and each trial's grain has a key of its own). Both are fixed for a type, so they are resolved once; the reference is
/// the same one Orleans would build.
/// </summary>
public static class GrainRefs
{
    /// <summary>The study grain of <paramref name="study"/>.</summary>
    public static IStudyGrain Study(this IGrainFactory grains, string study) => Of<IStudyGrain>.Get(grains, study);

    /// <summary>The trial grain of key <paramref name="key"/> (see <see cref="ITrialGrain.Key"/>).</summary>
    public static ITrialGrain Trial(this IGrainFactory grains, string key) => Of<ITrialGrain>.Get(grains, key);

    private static class Of<T>
        where T : IGrainWithStringKey
    {
        // A class, so that a reader sees the pair whole (a struct of two could be read half-written by another thread).
        private static Kind? _kind;

        public static T Get(IGrainFactory grains, string key)
        {
            if (Volatile.Read(ref _kind) is not { } kind)
            {
                var probe = (GrainReference)(object)grains.GetGrain<T>(key);
                _kind = new Kind(probe.GrainId.Type, probe.InterfaceType);
                return (T)(object)probe;
            }

            return (T)grains.GetGrain(GrainId.Create(kind.Type, key), kind.Interface);
        }
    }

    private sealed record Kind(GrainType Type, GrainInterfaceType Interface);
}
