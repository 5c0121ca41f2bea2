"""Event protos -> scalar points, hyperparameters and run metadata.

Uses TensorBoard's own protos (`tensorboard.compat.proto`) as the definition of the format.
Scalars come in two encodings, both read here:

- ``Summary.Value.simple_value`` (torch, tensorboardX, TF1);
- a rank-0 (or single-element) ``tensor`` with the "scalars" plugin (TF2 / Keras
  ``tf.summary.scalar``): float16/32/64 or integer, in ``tensor_content`` or the typed fields.
  TF2 may put the plugin metadata only on a tag's first occurrence in a file, so the plugin of
  each tag is remembered per file.

HParams plugin data (what ``SummaryWriter.add_hparams`` and the HParams plugin write) becomes
hyperparameters; our collector's JSON run info (text summary, tag `RUN_INFO_TAG`) too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, types_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

# Our collector stores its description of the run as JSON in a text summary under this tag.
RUN_INFO_TAG = "lrdoctor/run_info"
_NON_SCALAR_PLUGINS = {"text", "hparams", "histograms", "images", "audio", "pr_curves", "mesh", "graph"}
_TENSOR_DTYPES = {
    types_pb2.DT_HALF: ("half_val", np.float16),
    types_pb2.DT_FLOAT: ("float_val", np.float32),
    types_pb2.DT_DOUBLE: ("double_val", np.float64),
    types_pb2.DT_INT32: ("int_val", np.int32),
    types_pb2.DT_INT64: ("int64_val", np.int64),
    types_pb2.DT_INT16: ("int_val", np.int16),
    types_pb2.DT_INT8: ("int_val", np.int8),
    types_pb2.DT_UINT8: ("int_val", np.uint8),
    types_pb2.DT_BOOL: ("bool_val", np.bool_),
}


@dataclass(slots=True)
class TagPoints:
    """Growing point lists of one tag in one file (turned into arrays by `logdir.py`)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)


@dataclass(slots=True)
class FileContent:
    """Everything read so far from one event file."""

    points: dict[str, TagPoints] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin name seen first
    hparams: dict[str, object] = field(default_factory=dict)
    run_info: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, tag: str, step: int, value: float, wall_time: float) -> None:
        tp = self.points.get(tag)
        if tp is None:
            tp = self.points[tag] = TagPoints()
        tp.steps.append(step)
        tp.values.append(value)
        tp.wall_times.append(wall_time)


def tensor_scalar(tensor) -> float | None:
    """The value of a single-element numeric TensorProto, or None if it is not one."""
    spec = _TENSOR_DTYPES.get(tensor.dtype)
    if spec is None:
        return None
    field_name, np_dtype = spec
    if tensor.tensor_content:
        arr = np.frombuffer(tensor.tensor_content, dtype=np_dtype)
        return float(arr[0]) if arr.size == 1 else None
    vals = getattr(tensor, field_name)
    if len(vals) != 1:
        return None
    if tensor.dtype == types_pb2.DT_HALF:  # half_val holds the raw 16 bits in an int
        return float(np.array([vals[0]], dtype=np.uint16).view(np.float16)[0])
    return float(vals[0])


def _read_hparams(content: bytes, into: dict[str, object]) -> None:
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if data.HasField("session_start_info"):
        for name, value in data.session_start_info.hparams.items():
            into[name] = json_format.MessageToDict(value)
    elif data.HasField("experiment"):
        # An experiment lists the hparams' names and domains; values come with the session.
        for info in data.experiment.hparam_infos:
            into.setdefault(info.name, None)


def parse_into(payloads: list[bytes], offsets: list[int], path: str, out: FileContent) -> None:
    """Parse record payloads of ``path`` and add what they hold to ``out``."""
    Event = event_pb2.Event
    for payload, offset in zip(payloads, offsets):
        try:
            event = Event.FromString(payload)
        except DecodeError:
            out.warnings.append(f"{path}:{offset}: record is not an Event proto; skipped")
            continue
        if not event.HasField("summary"):
            continue
        step, wall = event.step, event.wall_time
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                out.add(value.tag, step, value.simple_value, wall)
                continue
            plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
            if plugin:
                out.plugins.setdefault(value.tag, plugin)
            else:
                plugin = out.plugins.get(value.tag, "")
            if plugin == "hparams":
                try:
                    _read_hparams(value.metadata.plugin_data.content, out.hparams)
                except DecodeError:
                    out.warnings.append(f"{path}:{offset}: unreadable hparams data; skipped")
            elif value.tag == RUN_INFO_TAG and kind == "tensor" and value.tensor.string_val:
                try:
                    out.run_info.update(json.loads(value.tensor.string_val[0]))
                except (ValueError, UnicodeDecodeError):
                    out.warnings.append(f"{path}:{offset}: unreadable {RUN_INFO_TAG} JSON; skipped")
            elif kind == "tensor" and plugin not in _NON_SCALAR_PLUGINS:
                x = tensor_scalar(value.tensor)
                if x is not None:
                    out.add(value.tag, step, x, wall)
