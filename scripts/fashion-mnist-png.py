#!/usr/bin/env python3
"""Writes the first N images of the shipped Fashion-MNIST subset as 28x28 grayscale PNGs (standard library only).

Usage: scripts/fashion-mnist-png.py OUT_DIR [N=200] [--invert]   (--invert: white backgrounds, bright images)
"""
import gzip, os, struct, sys, zlib

def png(path, pixels, width, height):
    raw = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        sys.exit(__doc__)
    out, count, invert = args[0], int(args[1]) if len(args) > 1 else 200, "--invert" in sys.argv
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fashion-mnist")
    with gzip.open(os.path.join(root, "train-subset-images-idx3-ubyte.gz")) as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, "not an IDX image file"
        data = f.read()
    os.makedirs(out, exist_ok=True)
    for i in range(min(count, n)):
        pixels = data[i * rows * cols:(i + 1) * rows * cols]
        if invert:
            pixels = bytes(255 - p for p in pixels)
        png(os.path.join(out, f"{i:04d}.png"), pixels, cols, rows)
    print(f"wrote {min(count, n)} images to {out}")

main()
