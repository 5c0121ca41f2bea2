"""What the run is: the JSON run description written under ``lrdoctor/run_info``.

`describe_run` fills the canonical keys the analyzers read (see `lrdoctor.analyzers.run`):
``optimizer``, ``lr``, ``batch_size``, ``model_kind``, ``batchnorm``, ``layernorm``,
``grad_clip``, ``momentum``, ``nesterov``, ``weight_decay``, ``num_classes``, ``run_kind``,
plus: ``lr_per_group``, ``betas``, ``eps``, ``dampening``, ``num_params``,
``num_trainable_params``, ``scheduler``, ``device``, ``dtype``, ``amp``, ``torch_version``,
``world_size``. Values are JSON scalars or lists of them; unknown facts are left out.

`session_start_summary` turns the same description into TensorBoard HParams plugin data, so
TensorBoard's HParams tab lists the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import torch
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from torch import nn

from lrdoctor.collectors import tags

# Optimizer settings copied from the first param group when present.
_OPTIMIZER_KEYS = ("momentum", "nesterov", "betas", "eps", "weight_decay", "dampening", "alpha")
# An output layer wider than this is a vocabulary or an embedding, not a list of classes.
MAX_PLAUSIBLE_CLASSES = 100_000


def model_kind(model: nn.Module) -> str | None:
    """The family of ``model`` from its modules: "transformer", "rnn", "cnn", "mlp" or None.

    The most LR-sensitive family present wins (attention, then recurrence, then convolution):
    a CNN feeding an LSTM is tuned like an RNN.
    """
    kinds = set()
    for m in model.modules():
        name = type(m).__name__
        if isinstance(m, nn.MultiheadAttention | nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
            kinds.add("transformer")
        elif "Attention" in name or "Transformer" in name:  # hand-written attention blocks
            kinds.add("transformer")
        elif isinstance(m, nn.RNNBase | nn.RNNCellBase):
            kinds.add("rnn")
        elif isinstance(m, nn.modules.conv._ConvNd):
            kinds.add("cnn")
        elif isinstance(m, nn.Linear):
            kinds.add("mlp")
    return next((k for k in ("transformer", "rnn", "cnn", "mlp") if k in kinds), None)


def num_classes(model: nn.Module) -> int | None:
    """Output width of the model's last layer when it is a Linear and looks like a classifier."""
    last = None
    for m in model.modules():
        if next(m.parameters(recurse=False), None) is not None:
            last = m
    if isinstance(last, nn.Linear) and 2 <= last.out_features <= MAX_PLAUSIBLE_CLASSES:
        return last.out_features
    return None


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Model facts: kind, normalization layers, parameter counts, device, dtype, classes."""
    modules = list(model.modules())
    params = list(model.parameters())
    info: dict[str, Any] = {
        "model_class": type(model).__name__,
        "model_kind": model_kind(model),
        "batchnorm": any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules),
        "layernorm": any(
            isinstance(m, nn.LayerNorm | nn.GroupNorm) or "RMSNorm" in type(m).__name__ for m in modules
        ),
        "num_params": sum(p.numel() for p in params),
        "num_trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "num_classes": num_classes(model),
    }
    if params:
        info["device"] = str(params[0].device)
        info["dtype"] = str(params[0].dtype).removeprefix("torch.")
    return info


def describe_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Optimizer class, initial LR per group and the first group's settings."""
    groups = optimizer.param_groups
    # A scheduler stores the LR it started from as "initial_lr"; "lr" may already be scheduled.
    lrs = [_json_number(g.get("initial_lr", g["lr"])) for g in groups]
    info: dict[str, Any] = {"optimizer": type(optimizer).__name__, "lr": lrs[0], "lr_per_group": lrs}
    for key in _OPTIMIZER_KEYS:
        if key in groups[0]:
            value = groups[0][key]
            info[key] = (
                [_json_number(v) for v in value] if isinstance(value, tuple | list) else _json_number(value)
            )
    info["num_param_groups"] = len(groups)
    return info


def describe_run(
    model: nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    *,
    batch_size: int | None = None,
    grad_clip: float | None = None,
    scheduler: object | None = None,
    amp: bool = False,
    world_size: int = 1,
    run_kind: str = "train",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run description: canonical keys first, then ``extra`` (which wins on a clash).

    Args:
        model: the trained module, or None.
        optimizer: its optimizer, or None.
        batch_size: samples per optimizer step, all ranks together.
        grad_clip: max gradient norm when clipping, else None.
        scheduler: the LR scheduler object (its class name is recorded).
        amp: mixed precision (autocast / GradScaler) in use.
        world_size: number of distributed processes.
        run_kind: "train" or "lr_range_test".
        extra: user facts to add.

    Returns:
        A JSON-ready dict; keys whose value is unknown are left out.
    """
    info: dict[str, Any] = {"run_kind": run_kind}
    if optimizer is not None:
        info.update(describe_optimizer(optimizer))
    if model is not None:
        info.update(describe_model(model))
    info.update(
        batch_size=batch_size,
        grad_clip=grad_clip,
        scheduler=type(scheduler).__name__ if scheduler is not None else None,
        amp=amp,
        world_size=world_size,
        torch_version=torch.__version__.split("+")[0],
    )
    info.update(extra or {})
    return {k: v for k, v in info.items() if v is not None}


def run_info_event(info: Mapping[str, Any], step: int) -> event_pb2.Event:
    """The run description as a TensorBoard text summary under ``lrdoctor/run_info``."""
    text = json.dumps(dict(info), sort_keys=True, default=str).encode()
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(), string_val=[text]
    )
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
    )
    value = summary_pb2.Summary.Value(tag=tags.RUN_INFO, metadata=metadata, tensor=tensor)
    return event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value]))


def session_start_event(info: Mapping[str, Any], group_name: str) -> event_pb2.Event:
    """HParams plugin data (``session_start_info``) for TensorBoard's HParams tab.

    Lists become their JSON text; None is left out (the plugin has no null).
    """
    start = plugin_data_pb2.SessionStartInfo(group_name=group_name, start_time_secs=time.time())
    for key, value in info.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, int | float):
            start.hparams[key].number_value = value
        elif isinstance(value, str):
            start.hparams[key].string_value = value
        elif value is not None:
            start.hparams[key].string_value = json.dumps(value)
    data = plugin_data_pb2.HParamsPluginData(version=0, session_start_info=start)
    return _hparams_event(data, "_hparams_/session_start_info")


def session_end_event(failed: bool) -> event_pb2.Event:
    """HParams plugin ``session_end_info``: the run ended (status SUCCESS or FAILURE)."""
    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _hparams_event(
        plugin_data_pb2.HParamsPluginData(version=0, session_end_info=end), "_hparams_/session_end_info"
    )


def _hparams_event(data: plugin_data_pb2.HParamsPluginData, tag: str) -> event_pb2.Event:
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="hparams", content=data.SerializeToString()
        )
    )
    value = summary_pb2.Summary.Value(tag=tag, metadata=metadata)
    return event_pb2.Event(wall_time=time.time(), summary=summary_pb2.Summary(value=[value]))


def _json_number(value: Any) -> Any:
    """A Python number for a tensor hyperparameter (Adam's ``lr`` may be a tensor)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
