"""Scoring numpy arrays: every accepted shape and dtype, the command line's scores, bad
inputs, interrupts."""

import os
import signal
import threading

import numpy as np
import pytest

import anomalymatch

from conftest import run


def images(n=12, side=40, bands=3, seed=0):
    """uint8 images, bands last, with a bright blob of varying size so scores differ."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, size=(n, side, side, bands), dtype=np.uint8)
    yy, xx = np.mgrid[:side, :side]
    for i in range(n):
        r = 3 + i % 9
        x[i][(yy - side // 2) ** 2 + (xx - side // 2) ** 2 < r * r] = 220
    return x


def test_the_checkpoint_says_what_it_decodes(model):
    assert (model.architecture, model.size, model.channels) == ("efficientnet-lite0", 32, 3)
    assert model.iteration == 1
    assert "efficientnet-lite0" in repr(model)


def test_every_layout_and_dtype_gives_the_same_scores(model):
    x = images()
    base = model.score(x)
    assert base.dtype == np.float32 and base.shape == (12,)
    assert np.all((base >= 0) & (base <= 1)) and np.ptp(base) > 0
    same = {
        "channels first": model.score(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
        "uint16": model.score(x.astype(np.uint16) * 257),
        "not contiguous": model.score(np.repeat(x, 2, axis=2)[:, :, ::2]),
    }
    for what, scores in same.items():
        np.testing.assert_array_equal(scores, base, err_msg=what)
    # Other batch sizes block the matrix products differently: the last bit may move.
    np.testing.assert_allclose(model.score(x, batch_size=5), base, rtol=1e-6)
    # Floats are physical values, stretched as the checkpoint says: one score each, finite.
    floats = model.score(x.astype(np.float32))
    np.testing.assert_array_equal(floats, model.score(x.astype(np.float64)))
    assert floats.shape == (12,) and np.all(np.isfinite(floats))
    grey = model.score(x[..., 0])
    assert grey.shape == (12,) and np.all(np.isfinite(grey))
    flips = model.score(x, views="flips")
    assert flips.shape == (12,) and not np.array_equal(flips, base)


def test_embeddings_have_one_row_per_image(model):
    e = model.embed(images(n=5))
    assert e.shape == (5, 1280) and e.dtype == np.float32


def test_bad_inputs_raise_with_the_expected_shape(model, tmp_path):
    with pytest.raises(ValueError, match=r"expected \(N, H, W\), \(N, H, W, C\) or \(N, C, H, W\) with C = 3"):
        model.score(np.zeros((3, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="3 or 4 dimensions"):
        model.score(np.zeros((3, 40), np.uint8))
    with pytest.raises(ValueError, match="dtype int32"):
        model.score(np.zeros((3, 40, 40), np.int32))
    with pytest.raises(ValueError, match="list"):
        model.score([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="views"):
        model.score(images(n=2), views="sideways")
    with pytest.raises(ValueError, match="batch_size"):
        model.score(images(n=2), batch_size=0)
    with pytest.raises(FileNotFoundError, match="missing.safetensors: no such checkpoint"):
        anomalymatch.Model.load(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(anomalymatch.AnomalyMatchError, match="broken.safetensors"):
        anomalymatch.Model.load(broken)


def test_a_saved_model_scores_the_same(model, tmp_path):
    path = tmp_path / "copy.safetensors"
    model.save(path)
    copy = anomalymatch.Model.load(path)
    np.testing.assert_array_equal(copy.score(images()), model.score(images()))


def test_scores_equal_the_command_lines(model, checkpoint, tmp_path):
    h5py = pytest.importorskip("h5py")
    x = images(n=20)
    cube = tmp_path / "cube.h5"
    with h5py.File(cube, "w") as f:
        f["images"] = x
        f["filenames"] = np.array([f"cutout{i}" for i in range(20)], dtype="S")
    names, scores = anomalymatch.score_files(cube, checkpoint, progress=False)
    assert names == [f"cutout{i}" for i in range(20)]
    np.testing.assert_array_equal(scores, model.score(x))
    out = tmp_path / "out"
    run("score", "--quiet", "--images", str(cube), "--checkpoint", str(checkpoint),
        "--out", str(out))
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out / "scores.parquet")
    cli = dict(zip(table.column("name").to_pylist(), table.column("score").to_pylist()))
    np.testing.assert_array_equal(
        np.array([cli[n] for n in names], dtype=np.float32), scores
    )


def test_unreadable_files_are_counted_in_a_warning(checkpoint, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"\x89PNG but not really")
    pytest.importorskip("PIL")
    from PIL import Image

    for i, image in enumerate(images(n=3)):
        Image.fromarray(image).save(folder / f"good{i}.png")
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\) left out, first: .*bad.png"):
        names, scores = anomalymatch.score_files(folder, checkpoint, progress=False)
    assert sorted(names) == ["good0.png", "good1.png", "good2.png"]


def test_ctrl_c_stops_scoring_and_the_model_still_works(model):
    x = images(n=4000, side=32)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.score(x, batch_size=16)
    finally:
        timer.cancel()
    assert model.score(x[:3]).shape == (3,)
