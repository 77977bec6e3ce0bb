"""AnomalyMatch: find rare objects in large image collections from a handful of labels.

Semi-supervised anomaly detection as binary classification (FixMatch on an EfficientNet
backbone, with active learning), after Gomez et al., arXiv 2505.03509. This package is the
Rust engine behind the ``anomalymatch`` command, driven from Python with numpy arrays:

>>> import anomalymatch
>>> model = anomalymatch.Model.load("out/checkpoint.safetensors")
>>> scores = model.score(images)          # uint8 or float32, (N, H, W[, C]) or (N, C, H, W)
>>> names, scores = anomalymatch.score_files("survey.h5", "out/checkpoint.safetensors")

Work runs without the GIL; Ctrl-C stops it at the next chunk (KeyboardInterrupt).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, List, Tuple, Union

import numpy as np

# The ImageNet weights inside the package start every training, as the command line's do.
_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights")
if os.path.isdir(_WEIGHTS):
    os.environ.setdefault("ANOMALYMATCH_WEIGHTS_DIR", _WEIGHTS)

# As the command line does (`anomalymatch::threads`): candle's elementwise ops stay on the
# calling thread and leave the cores to the network's kernels. Set before the module loads,
# since candle reads it once.
os.environ.setdefault("CANDLE_NUM_THREADS", "1")

from ._anomalymatch import AnomalyMatchError, Model, Session, __version__, train  # noqa: E402
from ._anomalymatch import score_files as _score_files  # noqa: E402

__all__ = ["AnomalyMatchError", "Model", "Session", "score_files", "train", "__version__"]


def score_files(
    source: Union[str, "os.PathLike[str]"],
    checkpoint: Union[str, "os.PathLike[str]"],
    *,
    batch_size: Union[int, None] = None,
    views: str = "single",
    device: str = "cpu",
    progress: bool = True,
    as_frame: bool = False,
) -> Union[Tuple[List[str], np.ndarray], Any]:
    """Score every image of ``source`` with ``checkpoint``.

    ``source`` is anything the command line reads: a folder of images, a zip archive, an HDF5
    file or a FITS file or folder. Returns ``(names, scores)`` in source order, or with
    ``as_frame=True`` a pandas DataFrame with columns ``name`` and ``score`` (pandas is then
    needed). Unreadable images are left out with a warning that counts them.
    """
    names, scores, failed = _score_files(
        os.fspath(source),
        os.fspath(checkpoint),
        batch_size=batch_size,
        views=views,
        device=device,
        progress=progress,
    )
    if failed:
        origin, message = failed[0]
        warnings.warn(
            f"{len(failed)} unreadable image(s) left out, first: {origin}: {message}",
            stacklevel=2,
        )
    if as_frame:
        import pandas as pd

        return pd.DataFrame({"name": names, "score": scores})
    return names, scores
