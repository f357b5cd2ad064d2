namespace Sweeper.Core.Trials;

/// <summary>The policy and wording shared by every store: what an expired lease leads to, and the events it writes.</summary>
public static class TrialEvents
{
    /// <summary>An expired lease: requeue the trial, or fail it once it has had 1 + retries attempts.</summary>
    public static (bool Fail, string Kind, string Message, string? Reason) Expired(int number, string owner, int attempts, int retries)
    {
        if (attempts >= 1 + retries)
        {
            var reason = $"lease expired on attempt {attempts} of {1 + retries} (last owner {owner}); retry budget spent";
            return (true, "trial_failed", $"trial {number}: {reason}", reason);
        }

        return (false, "trial_requeued", $"trial {number}: lease of {owner} expired on attempt {attempts}; requeued", null);
    }

    public static string Finished(Lease lease, TrialFinish finish) =>
        $"trial {lease.Number} {finish.State.ToText()} by {lease.Owner}" + (finish.ValAccuracy is { } v ? $", val acc {v:F4}" : "") + (finish.Reason is { } r ? $": {r}" : "");

    public static string Paused(Lease lease, TrialFinish summary) =>
        $"trial {lease.Number} paused by {lease.Owner} after epoch {summary.Epochs}" + (summary.ValAccuracy is { } v ? $", val acc {v:F4}" : "") + (summary.Reason is { } r ? $": {r}" : "");

    public static string Released(Lease lease, string reason) => $"trial {lease.Number} released by {lease.Owner}: {reason}";

    public static string Closed(StudyResult result) =>
        result.BestTrialNumber is { } n && result.TestAccuracy is not null ? $"best trial {n}: val acc {result.ValAccuracy:F4}, test acc {result.TestAccuracy:F4}" : result.Note ?? "no completed trial";
}
