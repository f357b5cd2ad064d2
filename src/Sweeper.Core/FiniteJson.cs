using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sweeper.Core;

/// <summary>
/// Writes a double that is not finite (NaN, +-infinity: a diverged run's loss, a program's own report) as JSON null,
/// which JSON has no number for; System.Text.Json refuses to write one otherwise, and the whole answer fails with it.
/// Finite values are written and read as usual.
/// </summary>
public sealed class NonFiniteAsNull : JsonConverter<double>
{
    public override bool HandleNull => false;

    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}
