using Sweeper.Engine.Data;
using Sweeper.Engine.Training;

namespace Sweeper.Dashboard;

/// <summary>
/// The first-layer weights of a trial's best parameters drawn as 32x32 colour images, one per class (linear
/// classifiers) or hidden unit (nets), each scaled to 0..255 over its own minimum and maximum, as in the cs231n
/// notebooks. Images are channel-interleaved RGB bytes, base64-encoded.
/// </summary>
public static class Weights
{
    public static object FirstLayer(byte[] checkpoint, IReadOnlyDictionary<string, object> parameters, int max)
    {
        var best = Solver<float>.ReadBestParameters(new MemoryStream(checkpoint));
        if (!best.TryGetValue("W1", out var w) || w.Length % Cifar10.ImageBytes != 0)
        {
            return new { layer = "W1", images = Array.Empty<object>(), note = "the first layer does not take 32x32 colour images" };
        }

        var linear = parameters.TryGetValue("model", out var m) && m is "softmax" or "svm";
        var units = w.Length / Cifar10.ImageBytes;
        var images = new List<object>();
        for (var u = 0; u < Math.Min(units, max); u++)
        {
            var row = w.AsSpan(u * Cifar10.ImageBytes, Cifar10.ImageBytes);
            float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
            foreach (var v in row)
            {
                lo = Math.Min(lo, v);
                hi = Math.Max(hi, v);
            }

            var scale = hi > lo ? 255f / (hi - lo) : 0f;
            var rgb = new byte[Cifar10.ImageBytes];
            for (var p = 0; p < 1024; p++)
            {
                for (var c = 0; c < 3; c++)
                {
                    rgb[(p * 3) + c] = (byte)Math.Clamp((row[(c * 1024) + p] - lo) * scale, 0, 255);
                }
            }

            images.Add(new { label = linear && units == Cifar10.Classes ? Cifar10.ClassNames[u] : $"unit {u}", rgb = Convert.ToBase64String(rgb) });
        }

        return new { layer = "W1", units, images };
    }
}
