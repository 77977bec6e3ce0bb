"""Fixtures of the Python package's tests: a checkpoint trained by the command line.

The command line is `ANOMALYMATCH_BIN` (default: the workspace's debug build, which
`cargo test --workspace` makes, then the release build).
"""

import os
import subprocess
from pathlib import Path

import pytest

import anomalymatch

ROOT = Path(__file__).resolve().parents[2]


def command_line() -> Path:
    given = os.environ.get("ANOMALYMATCH_BIN")
    candidates = [Path(given)] if given else [
        ROOT / "target" / "debug" / "anomalymatch",
        ROOT / "target" / "release" / "anomalymatch",
    ]
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("no anomalymatch binary: build it with `cargo build` or set ANOMALYMATCH_BIN")


def run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(command_line()), *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """One training step at 32 pixels on the built-in data."""
    out = tmp_path_factory.mktemp("trained")
    run("train", "--quiet", "--size", "32", "--iters", "1", "--out", str(out))
    return out / "checkpoint.safetensors"


@pytest.fixture(scope="session")
def model(checkpoint):
    """That checkpoint, loaded."""
    return anomalymatch.Model.load(checkpoint)
