"""Training from numpy arrays: the configuration's keys, labels in either form, bad inputs,
and Ctrl-C."""

import os
import signal
import threading

import numpy as np
import pytest

import anomalymatch

from test_model import images

# Small and quick: 32 pixels, a handful of steps.
QUICK = {"data": {"size": 32}, "train": {"iterations": 3, "batch_size": 4, "uratio": 2}}


def test_a_trained_model_scores_arrays():
    x = images(n=12, side=32)
    labels = ["anomaly" if i % 3 == 0 else "normal" for i in range(12)]
    model = anomalymatch.train(x, labels, unlabelled=images(n=16, side=32, seed=1),
                               config=QUICK, progress=False)
    assert (model.size, model.iteration) == (32, 3)
    assert "trained here" in repr(model)
    scores = model.score(x)
    assert scores.shape == (12,) and np.all(np.isfinite(scores))
    # Truth values are labels too, and dotted keys are keys.
    flags = [i % 3 == 0 for i in range(12)]
    dotted = {"data.size": 32, "train.iterations": 1, "train.batch_size": 4}
    assert anomalymatch.train(x, flags, config=dotted, progress=False).iteration == 1


def test_training_starts_from_the_weights_inside_the_package():
    weights = os.environ["ANOMALYMATCH_WEIGHTS_DIR"]
    assert weights.startswith(os.path.dirname(anomalymatch.__file__))
    assert os.path.isfile(os.path.join(weights, "efficientnet-lite0.safetensors"))


def test_the_configuration_is_checked_and_named(tmp_path):
    x, labels = images(n=4, side=32), ["normal", "anomaly", "normal", "anomaly"]
    with pytest.raises(ValueError, match="train.lr"):
        anomalymatch.train(x, labels, config={"train": {"lr": -1.0}}, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        anomalymatch.train(x, labels, config={"train": {"learning_rate": 1}}, progress=False)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        anomalymatch.train(x, labels[:3], config=QUICK, progress=False)
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        anomalymatch.train(x, ["normal", "odd", "normal", "anomaly"], config=QUICK,
                           progress=False)
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nlr = 0.01\nlearning_rate = 1\n")
    with pytest.raises(ValueError, match="c.toml:3"):
        anomalymatch.train(x, labels, config=toml, progress=False)


def test_ctrl_c_stops_training():
    x = images(n=8, side=32)
    labels = ["anomaly", "normal"] * 4
    config = {"data": {"size": 32}, "train": {"iterations": 10000, "batch_size": 4}}
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            anomalymatch.train(x, labels, config=config, progress=False)
    finally:
        timer.cancel()


def test_the_notebook_example_runs_on_the_built_in_data():
    pytest.importorskip("PIL")
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "discover.py"),
         "--iters", "1", "--size", "32", "--top", "5"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "2000 images" in done.stdout and "top 5:" in done.stdout, done.stdout
