#!/usr/bin/env python3
"""Writes a synthetic survey file for memory and scale measurements: COUNT grey 64x64 cutouts
as an HDF5 uint8 cube (N, 64, 64) with a `filenames` dataset, written in slabs so that this
script's own memory stays small.

    python3 examples/make_survey_cube.py OUT.h5 COUNT

Needs numpy and h5py.
"""

import sys

import h5py
import numpy as np


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    side, slab = 64, 10_000
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    blob = 200 * np.exp(-np.hypot(xx - side / 2, yy - side / 2) / 6)
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (count, side, side), dtype="uint8", chunks=(1000, side, side))
        names = f.create_dataset("filenames", (count,), dtype=h5py.string_dtype())
        for start in range(0, count, slab):
            n = min(slab, count - start)
            noise = rng.normal(20, 6, (n, side, side))
            images[start:start + n] = np.clip(noise + blob, 0, 255).astype(np.uint8)
            names[start:start + n] = [f"obj{i:09d}" for i in range(start, start + n)]


if __name__ == "__main__":
    main()
