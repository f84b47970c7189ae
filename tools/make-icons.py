#!/usr/bin/env python3
"""Draws rim's app icons, web/icons/icon-192.png and icon-512.png, from the
shapes of web/favicon.svg (a blue rounded square, a white speech bubble with
three dots), so phones can install the web client (the manifest lists them).

Pure standard library: the shapes are tested per pixel on a 64-unit grid,
with 4x4 samples per pixel for smooth edges, and written as PNG with zlib.
Run it again after changing the favicon: python3 tools/make-icons.py
"""
import os
import struct
import zlib

BLUE = (0x2F, 0x6F, 0xED)
WHITE = (0xFF, 0xFF, 0xFF)


def in_round_rect(x, y, x0, y0, x1, y1, r):
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def in_tail(x, y):
    # The bubble's tail: the triangle (20,44) (30,44) (20,52).
    if x < 20 or y < 44:
        return False
    return (x - 20) / 10 + (y - 44) / 8 <= 1


def colour_at(x, y):
    """The colour at (x, y) in the favicon's 64x64 units, or None outside."""
    if not in_round_rect(x, y, 0, 0, 64, 64, 16):
        return None
    for cx in (24, 32, 40):
        if (x - cx) ** 2 + (y - 31) ** 2 <= 9:
            return BLUE
    if in_round_rect(x, y, 10, 18, 54, 44, 6) or in_tail(x, y):
        return WHITE
    return BLUE


def draw(size, samples=4):
    rows = []
    step = 64 / size / samples
    for py in range(size):
        row = bytearray([0])  # PNG filter type 0 for this row
        for px in range(size):
            r = g = b = a = 0
            for sy in range(samples):
                y = (py * samples + sy + 0.5) * step
                for sx in range(samples):
                    c = colour_at((px * samples + sx + 0.5) * step, y)
                    if c is not None:
                        r += c[0]
                        g += c[1]
                        b += c[2]
                        a += 1
            n = samples * samples
            if a:
                row += bytes((r // a, g // a, b // a, 255 * a // n))
            else:
                row += b"\0\0\0\0"
        rows.append(bytes(row))
    return png(size, size, b"".join(rows))


def png(width, height, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # RGBA, 8 bits
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "web", "icons")
    os.makedirs(out, exist_ok=True)
    for size in (192, 512):
        path = os.path.join(out, f"icon-{size}.png")
        with open(path, "wb") as f:
            f.write(draw(size))
        print(path)


if __name__ == "__main__":
    main()
