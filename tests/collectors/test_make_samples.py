"""sample_runs/: the committed runs match expected.json, and the script regenerates them."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from lrdoctor.analyzers import read_logdir

SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"
MAX_TOTAL_BYTES = 5 * 1024 * 1024


def _load_script():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def expected():
    return json.loads((SAMPLES / "expected.json").read_text())


@pytest.fixture(scope="module")
def runs():
    return read_logdir(str(SAMPLES))


def test_every_run_is_committed_and_described(script, expected, runs):
    assert list(expected) == list(script.ALL)
    assert sorted(runs) == sorted(script.ALL)
    for name, entry in expected.items():
        assert entry["verdict"] in ("healthy", "lr_too_high", "lr_too_low", "inconclusive"), name
        assert runs[name].warnings == (), name
        assert {"loss", "lr", "grad_norm"} <= set(runs[name].signals), name


def test_small_enough_to_commit():
    total = sum(f.stat().st_size for f in SAMPLES.rglob("*") if f.is_file())
    assert total < MAX_TOTAL_BYTES


def test_facts_match_the_files(expected, runs):
    nan_loss = runs["cnn_nan"].signal("loss")
    first_nan = int(nan_loss.steps[np.argmax(~np.isfinite(nan_loss.values))])
    assert expected["cnn_nan"]["facts"]["first_nan_step"] == first_nan
    assert "nan_loss" in expected["cnn_nan"]["codes"]
    assert runs["lr_range_test"].hparams["run_kind"] == "lr_range_test"
    assert runs["lr_range_test"].hparams["suggested_lr"] == expected["lr_range_test"]["facts"]["suggested_lr"]
    assert (
        runs["rnn_clipped"].hparams["grad_clip"] == 1.0
        and "grad_clip" not in runs["rnn_exploding_noclip"].hparams
    )
    assert (
        runs["batch_32"].hparams["batch_size"] == 32
        and runs["batch_256_unscaled"].hparams["batch_size"] == 256
    )
    assert runs["batch_32"].hparams["lr"] == runs["batch_256_unscaled"].hparams["lr"]
    high, healthy = (
        float(np.mean(runs[n].signal("loss").values[-50:])) for n in ("cnn_lr_too_high", "cnn_healthy")
    )
    assert high > 10 * healthy


def test_script_regenerates_a_run(script, expected, tmp_path):
    assert script.main(["--out", str(tmp_path), "--only", "cnn_nan"]) == 0
    written = json.loads((tmp_path / "expected.json").read_text())
    assert list(written) == ["cnn_nan"]
    entry = written["cnn_nan"]
    committed = expected["cnn_nan"]
    assert (entry["verdict"], entry["codes"]) == (committed["verdict"], committed["codes"])
    # Same seeds and one thread: the same run (a CPU with other float kernels may shift it a step).
    assert abs(entry["facts"]["first_nan_step"] - committed["facts"]["first_nan_step"]) <= 3
    assert os.listdir(tmp_path / "cnn_nan")


def test_unknown_run_name(script, tmp_path):
    with pytest.raises(ValueError, match="unknown sample run"):
        script.make(str(tmp_path), ("cnn_wonderful",))
