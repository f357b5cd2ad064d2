using Sweeper.Core.Sweeps;

namespace Sweeper.Storage;

/// <summary>The migration to schema 5 of both stores: the resolved sweep definition of a study stored before then.</summary>
internal static class StudySweeps
{
    /// <summary>
    /// Parses the study's stored sweep file once and returns its definition as <see cref="SweepJson"/>, or null when the
    /// file no longer parses (this build's catalogue refuses it): such a study keeps working as far as it can, and whoever
    /// reads its definition (<see cref="SweepJson.Of"/>) gets the parser's error. Never throws for a bad file, so that one
    /// study cannot keep the store from opening.
    /// </summary>
    public static string? Resolve(string study, string sweepText)
    {
        try
        {
            return SweepJson.Serialize(SweepParser.Parse(sweepText, study));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }
}
