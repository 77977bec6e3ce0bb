import os
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, os.PathLike[str]]
_Views = Literal["single", "flips", "dihedral"]
_Layout = Literal["auto", "nhw", "nhwc", "nchw"]

class AnomalyMatchError(RuntimeError):
    """A job failed (an unreadable file, a damaged checkpoint); the message says which."""

class Model:
    """A trained model: an AnomalyMatch checkpoint, scoring images as its training decoded them."""

    @staticmethod
    def load(path: _Path, device: str = "cpu") -> Model: ...
    def save(self, path: _Path) -> None: ...
    def score(
        self,
        images: npt.NDArray[Any],
        batch_size: Optional[int] = None,
        views: _Views = "single",
        layout: _Layout = "auto",
        progress: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    def embed(
        self,
        images: npt.NDArray[Any],
        batch_size: Optional[int] = None,
        layout: _Layout = "auto",
        progress: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    @property
    def architecture(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def iteration(self) -> int: ...

class Session:
    """A labelling session over a source of images or a numpy array, kept in out_dir/session;
    answers are journalled at once, and the same call resumes it."""

    def __init__(
        self,
        out_dir: _Path,
        images: Union[_Path, npt.NDArray[Any]],
        labels: Union[None, _Path, Dict[str, Any]] = None,
        config: Union[None, dict, _Path] = None,
        names: Optional[List[str]] = None,
        layout: _Layout = "auto",
    ) -> None: ...
    def train(self, iterations: int, progress: bool = True) -> None: ...
    def score(self, progress: bool = True) -> Dict[str, float]: ...
    def candidates(self, n: int = 10, strategy: Optional[str] = None) -> List[Tuple[str, float]]: ...
    def label(self, name: str, answer: Literal["anomaly", "normal", "remember"]) -> None: ...
    def labels(self) -> Dict[str, str]: ...
    def next_window(self) -> None: ...
    def export(self) -> Tuple[str, str]: ...

def train(
    images: npt.NDArray[Any],
    labels: Any,
    unlabelled: Optional[npt.NDArray[Any]] = None,
    config: Union[None, dict, _Path] = None,
    layout: _Layout = "auto",
    progress: bool = True,
) -> Model:
    """Train a model on labelled images (labels "anomaly"/"normal" or truth values) and
    unlabelled ones; config holds the TOML configuration's keys, or is a TOML file."""

def score_files(
    source: _Path,
    checkpoint: _Path,
    *,
    batch_size: Optional[int] = None,
    views: _Views = "single",
    device: str = "cpu",
    progress: bool = True,
    as_frame: bool = False,
) -> Union[Tuple[List[str], npt.NDArray[np.float32]], Any]: ...
