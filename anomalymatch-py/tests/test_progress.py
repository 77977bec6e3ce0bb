"""Progress: a tqdm bar where tqdm is installed, a plain line on stderr where it is not, and
nothing at all with progress=False."""

import sys
import types

import anomalymatch

from test_model import images
from test_train import QUICK


class RecordingBar:
    """Stands in for tqdm: records what the package tells its bar."""

    made = []

    def __init__(self, total=None, desc=None):
        self.total, self.desc, self.done, self.closed = total, desc, 0, False
        RecordingBar.made.append(self)

    def update(self, n):
        self.done += n

    def close(self):
        self.closed = True


def with_tqdm(monkeypatch):
    RecordingBar.made = []
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = RecordingBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)


def test_a_tqdm_bar_counts_every_image_and_every_step(monkeypatch, model):
    with_tqdm(monkeypatch)
    x = images(n=9, side=32)
    model.score(x, batch_size=4, progress=True)
    anomalymatch.train(x, [i % 2 == 0 for i in range(9)], config=QUICK, progress=True)
    scoring, training = RecordingBar.made
    assert (scoring.desc, scoring.total, scoring.done, scoring.closed) == ("scoring", 9, 9, True)
    assert (training.desc, training.total, training.done, training.closed) == (
        "training", 3, 3, True)


def test_without_tqdm_a_line_on_stderr_and_without_progress_nothing(monkeypatch, capfd, model):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed: importing fails
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x = images(n=5, side=32)
    model.score(x, progress=True)
    assert "scoring: 5/5" in capfd.readouterr().err
    model.score(x, progress=False)
    anomalymatch.train(x, [True, False, True, False, False], config=QUICK, progress=False)
    assert capfd.readouterr() == ("", "")
