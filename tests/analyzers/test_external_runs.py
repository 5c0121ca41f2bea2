"""Every file of ../shared/external_runs (real files from other people's code; see its SOURCES.md)
loads or is reported with a clear warning; exact figures below are from SOURCES.md."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from lrdoctor.analyzers import read_logdir
from lrdoctor.analyzers.events import parse
from lrdoctor.analyzers.records import Buffer, frame

EXTERNAL = (Path(__file__).resolve().parents[2] / ".." / "shared" / "external_runs").resolve()
pytestmark = pytest.mark.skipif(
    not EXTERNAL.is_dir(), reason=f"{EXTERNAL} not found (shared/ is expected beside the repository)"
)
ALL_FILES = sorted(str(p) for p in EXTERNAL.rglob("*tfevents*")) if EXTERNAL.is_dir() else []
MNIST = "cht619__tensorboardX-mnist/runs/classifier_mnist_0915"
STOCK = "huangyuan3h__StockData/logs/fit/20220213-124139"
HF = "CynthiaJerono__Phase_5_Project/logs"


@pytest.fixture(scope="module")
def runs():
    return read_logdir(EXTERNAL)


def test_every_file_is_read_and_the_runs_are_as_expected(runs):
    assert len(ALL_FILES) == 30
    assert sorted(f for r in runs.values() for f in r.files) == ALL_FILES
    assert sorted(runs) == [
        "07Sada__brand/runs/detect/train",
        "AkshayKulkarni3467__NAF_DQN/lightning_logs/version_0",
        "BFU-Graphics__NeRF-from-scratch/lightning_logs/version_0",
        HF,  # its two add_hparams sub-runs are folded in
        "UncleLLD__Facial-Frontal-Lateral-Classification/logs",  # the file named just `events.out.tfevents`
        MNIST,
        STOCK,  # train/ + validation/ folded
        "kwaneGX__awd-lstm-base/runs/Aug23_18-09-41_cvlab",
        "lcferrara4__IPOpredictor/data_model/eval",
    ]


def test_only_the_seven_empty_files_are_warned(runs):
    warnings = [w for r in runs.values() for w in r.warnings]
    assert len(warnings) == 7
    for w in warnings:
        assert re.fullmatch(
            rf"{re.escape(str(EXTERNAL))}/{MNIST}/events\.out\.tfevents\.\d+\.yca-2662-2:0: "
            r"empty event file \(0 bytes\)",
            w,
        ), w


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: Path(p).name)
def test_fast_path_equals_protobuf(path):
    buf = Buffer(Path(path).read_bytes())
    framed = frame(buf, path)
    fast, slow = parse(buf, framed, path), parse(buf, framed, path, fast=False)
    assert list(fast.points) == list(slow.points)
    for tag in fast.points:
        for a, b in zip(fast.points[tag], slow.points[tag], strict=True):
            assert np.array_equal(a, b, equal_nan=True)
    assert (fast.hparams, fast.warnings) == (slow.hparams, slow.warnings)


def test_truncated_graph_record_is_left_without_warning():
    path = EXTERNAL / MNIST / "events.out.tfevents.1600154935.yca-2662-2"  # #19: lacks its last 4 bytes
    framed = frame(Buffer(path.read_bytes()), str(path))
    assert len(framed.starts) == 1 and framed.end == 40 and framed.warnings == []


def test_tensorboardx_mnist_restart_later_file_wins(runs):
    r = runs[MNIST]
    assert len(r.files) == 13
    loss = r.signal("loss")
    assert loss.tag == "batch_loss" and len(loss) == 30  # #29's 30 points replace #20's
    assert loss.steps.tolist() == [s for s in range(10) for _ in range(3)]
    assert loss.values[0] == pytest.approx(2.30029, abs=1e-5) and loss.values[-1] == pytest.approx(
        1.70117, abs=1e-5
    )
    assert len(r.scalars["Average"]) == 30


def test_keras_tensor_scalars_merged_with_validation(runs):
    r = runs[STOCK]
    assert sorted(r.scalars) == [
        "epoch_loss",
        "epoch_mae",
        "validation/epoch_loss",
        "validation/epoch_mae",
        "validation/evaluation_loss_vs_iterations",
        "validation/evaluation_mae_vs_iterations",
    ]
    loss = r.signal("loss")
    assert loss.tag == "epoch_loss" and loss.steps.tolist() == list(range(20))  # third fit's file wins
    assert loss.values[0] == pytest.approx(4.57131, abs=1e-5) and loss.values[-1] == pytest.approx(
        4.31087, abs=1e-5
    )
    assert r.signals["val_loss"] == "validation/epoch_loss"
    assert np.isnan(r.signal("val_loss").values).all() and len(r.signal("val_loss")) == 20
    evals = r.scalars["validation/evaluation_loss_vs_iterations"]
    assert evals.steps.tolist() == list(range(1, 41)) and np.isnan(evals.values).all()


def test_huggingface_hparams_folded_in(runs):
    r = runs[HF]
    assert len(r.files) == 5
    assert r.hparams["learning_rate"] == 5e-05 and r.hparams["lr"] == 5e-05
    assert r.hparams["batch_size"] == 8 and r.hparams["optimizer"] == "AdamW"  # optim="adamw_hf"
    assert r.hparams["grad_clip"] == 1.0 and r.hparams["weight_decay"] == 0.01
    assert r.signals == {
        "loss": "train/loss",
        "lr": "train/learning_rate",
        "val_loss": "eval/loss",
        "val_accuracy": "eval/accuracy",
    }
    assert r.signal("val_loss").steps.tolist() == [405, 810]
    assert r.signal("val_loss").values[-1] == pytest.approx(0.368369, abs=1e-6)
    assert r.signal("lr").values.tolist() == [pytest.approx(2.1831e-05, rel=1e-4)]


def test_ultralytics_duplicate_steps_and_later_machine_wins(runs):
    r = runs["07Sada__brand/runs/detect/train"]
    assert len(r.scalars) == 10
    box = r.scalars["train/box_loss"]
    assert len(box) == 4080 and box.steps[0] == 1 and box.steps[-1] == 120
    assert box.values[-1] == pytest.approx(0.58773, abs=1e-5)
    assert len(r.scalars["metrics/mAP50(B)"]) == 120


def test_lightning_hparams_and_long_run(runs):
    r = runs["AkshayKulkarni3467__NAF_DQN/lightning_logs/version_0"]
    assert len(r.scalars["epoch"]) == 23_522 and len(r.scalars["episode/Return"]) == 21_780
    assert r.scalars["episode/Return"].steps[-1] == 87_119
    assert r.scalars["hp_metric"].values.tolist() == [-1.0]
    assert r.hparams["optimizer"] == "AdamW" and r.hparams["lr"] == 1e-4 and r.hparams["batch_size"] == 256
    nerf = runs["BFU-Graphics__NeRF-from-scratch/lightning_logs/version_0"]
    assert list(nerf.scalars) == ["hp_metric"] and nerf.hparams["lr"] == 0.01


def test_tf1_estimator_and_old_tensorboardx(runs):
    tf1 = runs["lcferrara4__IPOpredictor/data_model/eval"]
    assert len(tf1.scalars) == 8 and all(len(s) == 20 for s in tf1.scalars.values())
    assert tf1.scalars["auc"].steps[0] == 188 and tf1.scalars["auc"].steps[-1] == 3760
    old = runs["kwaneGX__awd-lstm-base/runs/Aug23_18-09-41_cvlab"]
    assert old.scalars["data/test_loss"].steps.tolist() == [500]
    assert math.isclose(old.scalars["data/test_loss"].values[0], 4.42495, abs_tol=1e-5)
    face = runs["UncleLLD__Facial-Frontal-Lateral-Classification/logs"]
    assert len(face.signal("loss")) == 79 and face.signal("loss").steps[-1] == 789
