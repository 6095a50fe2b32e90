#!/usr/bin/env python3
"""Reads every PDF417 symbol in a PGM image with zxing-cpp (an independent decoder) and prints them
as JSON: the decoded bytes (hex), the error correction the decoder reports, and the bounding box."""
import json
import sys

import numpy as np
import zxingcpp


def read_pgm(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, dims, maxval, pixels = data.split(b"\n", 3)
    if magic != b"P5" or maxval != b"255":
        raise SystemExit(f"{path}: not an 8-bit binary PGM")
    width, height = map(int, dims.split())
    return np.frombuffer(pixels[: width * height], dtype=np.uint8).reshape(height, width)


def main():
    image = read_pgm(sys.argv[1])
    out = []
    for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.PDF417):
        p = r.position
        xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
        ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
        out.append({
            "bytes": bytes(r.bytes).hex(),
            "ec_level": r.ec_level,
            "x_min": min(xs), "x_max": max(xs), "y_min": min(ys), "y_max": max(ys),
            "image_width": image.shape[1], "image_height": image.shape[0],
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
