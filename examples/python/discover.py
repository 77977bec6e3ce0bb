"""Find merging galaxies in the built-in data from a notebook, with numpy arrays.

Loads data/gz1-demo's 2,000 SDSS galaxies with Pillow, trains under the recommended preset
from its 100 starting labels with the other images unlabelled, ranks those, and says how many
of the top candidates are mergers by Galaxy Zoo (a class the training never sees). Shows the
top candidates with matplotlib where it is installed.

    python examples/python/discover.py [--iters N] [--size PX] [--top K]
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

import anomalymatch

DATA = Path(__file__).resolve().parents[2] / "data" / "gz1-demo"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, help="training iterations (default: the preset's)")
    ap.add_argument("--size", type=int, help="image side in pixels (default: the preset's)")
    ap.add_argument("--top", type=int, default=20, help="candidates to show")
    args = ap.parse_args()

    names = sorted(p.name for p in (DATA / "images").iterdir())
    images = np.stack([np.asarray(Image.open(DATA / "images" / n).convert("RGB")) for n in names])
    with open(DATA / "labeled_data.csv") as f:
        labels = {row["filename"]: row["label"] for row in csv.DictReader(f)}
    labelled = [i for i, n in enumerate(names) if n in labels]
    pool = [i for i, n in enumerate(names) if n not in labels]
    print(f"{len(names)} images {images.shape[1:]}, {len(labelled)} labelled")

    config = {"preset": "recommended"}
    if args.iters is not None:
        config["train.iterations"] = args.iters
    if args.size is not None:
        config["data.size"] = args.size
    model = anomalymatch.train(
        images[labelled], [labels[names[i]] for i in labelled],
        unlabelled=images[pool], config=config,
    )
    scores = model.score(images[pool], progress=True)
    order = np.argsort(-scores)[: args.top]
    top = [names[pool[i]] for i in order]

    with open(DATA / "classes.csv") as f:
        mergers = {row["filename"] for row in csv.DictReader(f) if row["class_name"] == "merger"}
    found = sum(n in mergers for n in top)
    print(f"top {args.top}: {found} mergers (the unlabelled pool holds "
          f"{sum(names[i] in mergers for i in pool)} in {len(pool)})")
    for rank, i in enumerate(order[:5], 1):
        print(f"  {rank}. {names[pool[i]]}  {scores[i]:.3f}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    cols = 5
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), order):
        ax.imshow(images[pool[i]])
        ax.set_title(f"{scores[i]:.2f}" + (" merger" if names[pool[i]] in mergers else ""),
                     fontsize=8)
    fig.tight_layout()
    plt.show()


if __name__ == "__main__":
    main()
