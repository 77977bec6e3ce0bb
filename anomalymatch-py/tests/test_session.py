"""A labelling session from Python: score, candidates, answers, training, export, and a
kernel killed mid-labelling that loses nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

import anomalymatch

from conftest import ROOT
from test_model import images

MINI = ROOT / "data" / "gz1-mini"
CONFIG = {"data": {"size": 32, "n_to_load": 60}, "train": {"batch_size": 4, "uratio": 2}}


def open_session(out):
    return anomalymatch.Session(out, MINI / "images", labels=MINI / "labeled_data.csv",
                                config=CONFIG)


def test_a_cycle_from_python(tmp_path):
    s = open_session(tmp_path)
    scores = s.score(progress=False)
    assert len(scores) >= 50
    picked = s.candidates(5, strategy="top")
    assert len(picked) == 5
    assert [v for _, v in picked] == sorted((v for _, v in picked), reverse=True)
    first, second = picked[0][0], picked[1][0]
    s.label(first, "anomaly")
    s.label(second, "remember")
    with pytest.raises(ValueError, match="answer must be"):
        s.label(first, "maybe")
    with pytest.raises(ValueError, match="unknown query strategy|strategy"):
        s.candidates(3, strategy="clairvoyant")
    s.train(2, progress=False)
    assert s.labels()[first] == "anomaly"
    labels, remembered = s.export()
    assert f"{first},anomaly" in Path(labels).read_text()
    assert second in Path(remembered).read_text()
    # The user's label file is never written.
    assert first not in (MINI / "labeled_data.csv").read_text()


def test_a_kernel_killed_mid_labelling_loses_no_answer(tmp_path):
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_session import open_session
s = open_session({str(tmp_path)!r})
s.score(progress=False)
names = [n for n, _ in s.candidates(3, strategy="top")]
for n in names:
    s.label(n, "normal")
print(",".join(names), flush=True)
os._exit(9)   # as a dying kernel: no clean-up at all
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    names = done.stdout.strip().split(",")
    labels = open_session(tmp_path).labels()
    assert all(labels.get(n) == "normal" for n in names), (names, labels)


def test_a_session_over_an_array_with_names_and_a_dict_of_labels(tmp_path):
    x = images(n=24, side=32)
    names = [f"cutout-{i:02}.fits" for i in range(24)]
    start = {names[0]: "anomaly", names[1]: "normal", names[2]: True}
    s = anomalymatch.Session(tmp_path, x, labels=start, names=names, config=CONFIG)
    x[:] = 0  # the session holds a copy: the caller's array is free to change
    scores = s.score(progress=False)
    assert set(scores) == set(names[3:])
    assert len(set(scores.values())) > 1, "the copy was scored, not the zeroed array"
    picked = [n for n, _ in s.candidates(2, strategy="top")]
    s.label(picked[0], "normal")
    s.train(1, progress=False)
    labels, _ = s.export()
    text = Path(labels).read_text()
    assert f"{names[0]},anomaly" in text and f"{picked[0]},normal" in text
    del s
    # The same array and names resume it, answers included.
    again = anomalymatch.Session(tmp_path, x, labels=start, names=names, config=CONFIG)
    assert again.labels()[picked[0]] == "normal"


def test_an_array_session_refuses_names_that_cannot_name_it(tmp_path):
    x = images(n=4, side=32)
    with pytest.raises(ValueError, match='names: the name "a" is given to two images'):
        anomalymatch.Session(tmp_path, x, names=["a", "a", "b", "c"], config=CONFIG)
    with pytest.raises(ValueError, match="names: 2 names for 4 images"):
        anomalymatch.Session(tmp_path, x, names=["a", "b"], config=CONFIG)
    with pytest.raises(ValueError, match="names are for an array"):
        anomalymatch.Session(tmp_path, MINI / "images", names=["a"], config=CONFIG)
    with pytest.raises(ValueError, match=r'labels\["a"\]: .*perhaps'):
        anomalymatch.Session(tmp_path, x, labels={"a": "perhaps"}, config=CONFIG)
