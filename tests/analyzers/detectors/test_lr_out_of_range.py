"""lr_out_of_range: the notes' LR tables, as INFO context."""

import curves
import numpy as np
import pytest

from lrdoctor.analyzers.detectors import detect_lr_out_of_range
from lrdoctor.analyzers.findings import Severity


@pytest.mark.parametrize(
    ("hp", "lr", "where"),
    [
        ({"optimizer": "SGD", "model_kind": "cnn"}, 0.3, "above"),
        ({"optimizer": "SGD", "model_kind": "cnn", "batchnorm": True}, 0.005, "below"),
        ({"optimizer": "Adam", "model_kind": "cnn"}, 0.01, "above"),
        ({"optimizer": "AdamW", "model_kind": "rnn"}, 1e-5, "below"),
        ({"optimizer": "SGD", "arch": "lstm"}, 1.0, "above"),
    ],
)
def test_out_of_range_is_info(hp, lr, where):
    (f,) = detect_lr_out_of_range(curves.make_run(loss=curves.decay(), lr=np.full(300, lr), hparams=hp))
    assert f.severity is Severity.INFO and where in f.message


@pytest.mark.parametrize(
    ("hp", "lr"),
    [
        ({"optimizer": "SGD", "model_kind": "cnn", "batchnorm": True}, 0.1),
        ({"optimizer": "Adam", "model_kind": "cnn"}, 1e-3),
        ({"optimizer": "SGD", "model_kind": "rnn"}, 0.05),
        ({"optimizer": "RMSprop", "model_kind": "cnn"}, 10.0),  # not in the tables
        ({"model_kind": "cnn"}, 10.0),  # optimizer unknown
    ],
)
def test_quiet_in_range_or_unknown(hp, lr):
    assert detect_lr_out_of_range(curves.make_run(loss=curves.decay(), lr=np.full(300, lr), hparams=hp)) == []


def test_warmup_uses_peak_lr():
    lr = np.minimum(1.0, (np.arange(300) + 1) / 50) * 1e-3
    run = curves.make_run(loss=curves.decay(), lr=lr, hparams={"optimizer": "Adam", "model_kind": "cnn"})
    assert detect_lr_out_of_range(run) == []
