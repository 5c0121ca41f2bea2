"""What the run is: model kind, classes, optimizer settings, and how they are written."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from torch import nn

from lrdoctor.analyzers import read_logdir
from lrdoctor.collectors import hparams
from lrdoctor.collectors.writer import BackgroundWriter


class CustomSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)


class CRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3)
        self.rnn = nn.GRU(8, 16)
        self.head = nn.Linear(16, 5)


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10)), "cnn"),
        (nn.LSTM(4, 8), "rnn"),
        (nn.Sequential(nn.RNNCell(4, 8)), "rnn"),
        (CRNN(), "rnn"),
        (nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, batch_first=True), 1), "transformer"),
        (CustomSelfAttention(), "transformer"),
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), "mlp"),
        (nn.Sequential(nn.ReLU()), None),
    ],
)
def test_model_kind(model, kind):
    assert hparams.model_kind(model) == kind


@pytest.mark.parametrize(
    ("model", "classes"),
    [
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10)), 10),
        (CRNN(), 5),
        (nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1)), None),  # a regression head
        (nn.Sequential(nn.Linear(4, 8), nn.Conv1d(1, 3, 1)), None),  # last layer is not Linear
        (nn.Sequential(nn.Linear(4, 8), nn.ReLU()), 8),  # parameter-free layers after it do not count
    ],
)
def test_num_classes(model, classes):
    assert hparams.num_classes(model) == classes


def test_describe_model_counts_and_norm_layers():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4 * 6 * 6))
    model[0].weight.requires_grad_(False)
    info = hparams.describe_model(model)
    total = sum(p.numel() for p in model.parameters())
    assert info["num_params"] == total
    assert info["num_trainable_params"] == total - model[0].weight.numel()
    assert info["batchnorm"] is True and info["layernorm"] is True
    assert info["device"] == "cpu" and info["dtype"] == "float32"


def test_describe_sgd():
    params = [nn.Parameter(torch.zeros(2))]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    info = hparams.describe_optimizer(opt)
    assert info["optimizer"] == "SGD"
    assert info["lr"] == 0.1 and info["lr_per_group"] == [0.1]
    assert info["momentum"] == 0.9 and info["nesterov"] is True and info["weight_decay"] == 5e-4


def test_describe_adam_groups_and_scheduled_lr():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b], "lr": 1e-4}], lr=1e-3, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    sched.step()  # the groups' "lr" is now halved; the initial LR is what was chosen
    info = hparams.describe_optimizer(opt)
    assert info["optimizer"] == "AdamW"
    assert info["lr_per_group"] == [1e-3, 1e-4] and info["lr"] == 1e-3
    assert info["betas"] == [0.8, 0.99] and info["num_param_groups"] == 2


def test_describe_run_leaves_unknowns_out_and_extra_wins():
    info = hparams.describe_run(None, None, run_kind="lr_range_test", extra={"lr": 0.5, "note": "x"})
    assert info["run_kind"] == "lr_range_test" and info["lr"] == 0.5 and info["note"] == "x"
    assert "batch_size" not in info and "grad_clip" not in info and "optimizer" not in info
    assert info["torch_version"] == torch.__version__.split("+")[0]


def test_run_info_and_hparams_read_back(tmp_path):
    info = {"optimizer": "SGD", "lr": 0.05, "batch_size": 64, "betas": [0.9, 0.999], "batchnorm": True}
    writer = BackgroundWriter(str(tmp_path / "run"))
    writer.submit(lambda: [hparams.run_info_event(info, 0), hparams.session_start_event(info, "run")])
    writer.submit(lambda: [hparams.session_end_event(failed=True)])
    writer.close()
    run = read_logdir(str(tmp_path))["run"]
    scalars = {k: v for k, v in info.items() if not isinstance(v, list)}  # the reader keeps scalars
    assert {k: run.hparams[k] for k in scalars} == scalars

    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    text = acc.Tensors("lrdoctor/run_info")[0].tensor_proto.string_val[0]
    assert json.loads(text) == info
    content = acc.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"])
    assert start.hparams["lr"].number_value == 0.05
    assert start.hparams["batchnorm"].bool_value is True
    assert json.loads(start.hparams["betas"].string_value) == [0.9, 0.999]
    end = hp_metadata.parse_session_end_info_plugin_data(content["_hparams_/session_end_info"])
    assert end.status == api_pb2.STATUS_FAILURE
