#!/usr/bin/env python3
"""Writes the inputs of the `source_throughput` example: the same synthetic cutouts (a galaxy-like
blob on a noisy sky) as a JPEG folder, a zip of those JPEGs, the original AnomalyMatch's HDF5
layout, two HDF5 cubes and a folder of FITS files.

    python3 make_bench_inputs.py DIR [COUNT] [SIZE]

Needs numpy, h5py, astropy and Pillow (pip install h5py astropy numpy pillow).
"""

import io
import os
import sys
import zipfile

import h5py
import numpy as np
from astropy.io import fits
from PIL import Image


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    os.makedirs(os.path.join(out, "jpeg"), exist_ok=True)
    os.makedirs(os.path.join(out, "fits"), exist_ok=True)
    names = [f"img_{i:05d}" for i in range(count)]
    flux = np.empty((count, size, size), dtype=np.float32)
    rgb = np.empty((count, size, size, 3), dtype=np.uint8)
    jpegs = []
    for i in range(count):
        cx, cy = size / 2 + rng.normal(0, size / 30, 2)
        radius = rng.uniform(size / 40, size / 10)
        blob = 400 * np.exp(-np.hypot(xx - cx, yy - cy) / radius)
        flux[i] = blob + rng.normal(20, 4, (size, size))
        colours = np.stack([flux[i] * w for w in (0.9, 0.7, 0.5)], axis=-1)
        rgb[i] = np.clip(colours, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb[i], "RGB").save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
        with open(os.path.join(out, "jpeg", names[i] + ".jpg"), "wb") as f:
            f.write(jpegs[i])
        fits.PrimaryHDU(data=flux[i]).writeto(os.path.join(out, "fits", names[i] + ".fits"), overwrite=True)
    with zipfile.ZipFile(os.path.join(out, "images.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in zip(names, jpegs):
            z.writestr(name + ".jpg", data)
    vlen_u8 = h5py.vlen_dtype(np.dtype("uint8"))
    vlen_str = h5py.special_dtype(vlen=str)
    # As the original's paper_scripts/prepare_datasets.py writes it.
    with h5py.File(os.path.join(out, "encoded.h5"), "w") as f:
        images = f.create_dataset("images", shape=(count,), dtype=vlen_u8, compression="gzip")
        f.create_dataset("filenames", data=[n + ".jpg" for n in names], dtype=vlen_str)
        for i, data in enumerate(jpegs):
            images[i] = np.frombuffer(data, dtype=np.uint8)
    with h5py.File(os.path.join(out, "cube_u8.h5"), "w") as f:
        f.create_dataset("images", data=rgb)
        f.create_dataset("filenames", data=names, dtype=vlen_str)
    with h5py.File(os.path.join(out, "cube_f32.h5"), "w") as f:
        f.create_dataset("images", data=flux)
        f.create_dataset("filenames", data=names, dtype=vlen_str)


if __name__ == "__main__":
    main()
