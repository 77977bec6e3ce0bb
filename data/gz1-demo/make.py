"""Rebuilds this folder from ../shared/data/gz1-sdss (see README.md for the command).

Draws the images at random with a fixed seed, keeps the central share of each frame, resizes
it (Lanczos, JPEG quality 92), and draws the starting labels from the drawn images.
"""
import argparse
import csv
import os
import random

from PIL import Image

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--src", required=True, help="gz1-sdss folder (images/, classes.csv)")
ap.add_argument("--out", required=True)
ap.add_argument("--images", type=int, default=2000)
ap.add_argument("--mergers", type=int, default=34)
ap.add_argument("--side", type=int, default=96)
ap.add_argument("--keep", type=float, default=0.5, help="central share of each side kept")
ap.add_argument("--labelled-mergers", type=int, default=10)
ap.add_argument("--labelled-normals", type=int, default=90)
ap.add_argument("--seed", type=int, default=2026)
a = ap.parse_args()

rows = [r for r in csv.DictReader(open(f"{a.src}/classes.csv")) if r["class_name"] != "uncertain"]
by_name = lambda r: r["filename"]
mergers = sorted((r for r in rows if r["class_name"] == "merger"), key=by_name)
others = sorted((r for r in rows if r["class_name"] != "merger"), key=by_name)
rng = random.Random(a.seed)
pick = rng.sample(mergers, a.mergers) + rng.sample(others, a.images - a.mergers)

os.makedirs(f"{a.out}/images", exist_ok=True)
for r in pick:
    im = Image.open(f"{a.src}/images/{r['filename']}").convert("RGB")
    w, h = im.size
    cw, ch = round(w * a.keep), round(h * a.keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    im = im.crop((left, top, left + cw, top + ch)).resize((a.side, a.side), Image.LANCZOS)
    im.save(f"{a.out}/images/{r['filename']}", quality=92)

pick.sort(key=by_name)
with open(f"{a.out}/classes.csv", "w", newline="") as f:
    out = csv.writer(f, lineterminator="\n")
    out.writerow(["filename", "objid", "class_id", "class_name"])
    out.writerows([r["filename"], r["objid"], r["class_id"], r["class_name"]] for r in pick)

picked_mergers = [r for r in pick if r["class_name"] == "merger"]
picked_others = [r for r in pick if r["class_name"] != "merger"]
labels = [(r["filename"], "anomaly") for r in rng.sample(picked_mergers, a.labelled_mergers)]
labels += [(r["filename"], "normal") for r in rng.sample(picked_others, a.labelled_normals)]
with open(f"{a.out}/labeled_data.csv", "w", newline="") as f:
    out = csv.writer(f, lineterminator="\n")
    out.writerow(["filename", "label"])
    out.writerows(sorted(labels))
