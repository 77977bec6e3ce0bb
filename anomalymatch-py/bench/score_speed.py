"""Python's scoring rate against the command line's, on the same images and checkpoint.

10,000 gz1-sdss galaxies at 96 px (the 6,664 images, repeated) as one uint8 array: scored by
`model.score` from numpy, and by `anomalymatch score` from the same array written as an HDF5
cube (the rate it prints, which counts the scoring stream alone). Run on an idle machine:

    python anomalymatch-py/bench/score_speed.py CHECKPOINT [--bin target/release/anomalymatch]
"""

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

import anomalymatch

ROOT = Path(__file__).resolve().parents[2]
GZ1 = ROOT.parent / "shared" / "data" / "gz1-sdss" / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "anomalymatch"))
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    files = sorted(GZ1.iterdir())
    small = np.stack([
        np.asarray(Image.open(f).convert("RGB").resize((96, 96), Image.LANCZOS)) for f in files
    ])
    images = np.resize(small, (args.n, 96, 96, 3))
    model = anomalymatch.Model.load(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        cube = Path(tmp) / "cube.h5"
        with h5py.File(cube, "w") as f:
            f["images"] = images
            f["filenames"] = np.array([f"{i}" for i in range(args.n)], dtype="S")
        for _ in range(args.repeats):
            t = time.perf_counter()
            scores = model.score(images)
            py_rate = args.n / (time.perf_counter() - t)
            out = subprocess.run(
                [args.bin, "score", "--images", str(cube), "--checkpoint", args.checkpoint,
                 "--out", str(Path(tmp) / "out")],
                capture_output=True, text=True, check=True,
            )
            cli_rate = float(re.search(r"\(([\d.]+) images/s\)", out.stdout + out.stderr)[1])
            print(f"python {py_rate:.0f} images/s, command line {cli_rate:.0f} images/s, "
                  f"ratio {py_rate / cli_rate:.3f}")
        assert scores.shape == (args.n,)


if __name__ == "__main__":
    main()
