#!/usr/bin/env python3
"""Copy an instance-map dataset with its TIFF images written as plain PNGs (no georeferencing).

The comparison run of the remote-sensing benchmark: the same pixels, read by
Pillow instead of through ``clickmask.io.rasters``. TIFFs are read with tifffile
(the file's stored values, no stretch), which suits 8-bit RGB tiles; others are
refused rather than converted in some way the GeoTIFF path would not match.

    python benchmarks/tiles_as_png.py ../shared/data/RemoteSensing /tmp/rs/RemoteSensing_png
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="dataset folder with images/<stem>.tif and instances/<stem>.png")
    parser.add_argument("out", type=Path, help="new dataset folder (replaced)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    (args.out / "images").mkdir(parents=True)
    for tif in sorted((args.source / "images").glob("*.tif*")):
        pixels = np.asarray(tifffile.imread(tif))
        if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
            raise SystemExit(f"{tif}: {pixels.dtype} {pixels.shape} is not an 8-bit gray or RGB tile")
        Image.fromarray(pixels).save(args.out / "images" / f"{tif.stem}.png")
    shutil.copytree(args.source / "instances", args.out / "instances")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
