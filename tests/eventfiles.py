"""Write real TensorBoard event files for tests (import as ``import eventfiles``).

Three writers, as in the wild:

- `torch_scalars`: ``torch.utils.tensorboard.SummaryWriter.add_scalar`` (``simple_value``);
- `tf2_scalars`: TensorBoard's own ``EventFileWriter`` with tensor-valued scalars as TF2 /
  Keras ``tf.summary.scalar`` writes them (a rank-0 ``tensor`` with the "scalars" plugin),
  for float16/32/64 and integer dtypes;
- `write_records`: any payloads framed by TensorBoard's ``RecordWriter``, for hand-made events
  (`scalar_event`, `tensor_event`, `text_event`) and for files to corrupt (`record_offsets`,
  `flip_bit`).
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter

Point = tuple[str, int, float]  # (tag, step, value)

# dtype name -> (TensorProto dtype, numpy dtype, typed field)
TENSOR_DTYPES = {
    "float16": (types_pb2.DT_HALF, np.float16, "half_val"),
    "float32": (types_pb2.DT_FLOAT, np.float32, "float_val"),
    "float64": (types_pb2.DT_DOUBLE, np.float64, "double_val"),
    "int32": (types_pb2.DT_INT32, np.int32, "int_val"),
    "int64": (types_pb2.DT_INT64, np.int64, "int64_val"),
}


def _new_files(logdir: Path, before: set[str]) -> Path:
    new = sorted(set(os.listdir(logdir)) - before)
    assert len(new) == 1, f"expected one new event file in {logdir}, got {new}"
    return logdir / new[0]


def torch_scalars(
    logdir: str | os.PathLike, points: Iterable[Point], *, wall_time: float | None = None, suffix: str = ""
) -> Path:
    """Write ``points`` with torch's ``SummaryWriter.add_scalar`` into a new file in ``logdir``.

    Args:
        logdir: run directory (created).
        points: ``(tag, step, value)`` in writing order.
        wall_time: wall time of the first point (seconds); each next point is 1 s later.
            None: the writer's clock.
        suffix: ``filename_suffix`` of the writer (to order files written in one second).

    Returns:
        The event file written.
    """
    from torch.utils.tensorboard import SummaryWriter

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(logdir))
    with SummaryWriter(log_dir=str(logdir), filename_suffix=suffix) as w:
        for i, (tag, step, value) in enumerate(points):
            w.add_scalar(tag, value, step, walltime=None if wall_time is None else wall_time + i)
    return _new_files(logdir, before)


def tensor_proto(value: float, dtype: str, *, content: bool) -> tensor_pb2.TensorProto:
    """A rank-0 TensorProto of ``value``, stored in ``tensor_content`` or in the typed field."""
    tf_dtype, np_dtype, typed = TENSOR_DTYPES[dtype]
    proto = tensor_pb2.TensorProto(dtype=tf_dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto())
    x = np.array(value, dtype=np_dtype)
    if content:
        proto.tensor_content = x.tobytes()
    elif dtype == "float16":
        proto.half_val.append(int(x.view(np.uint16)))  # TF keeps the raw 16 bits in an int
    else:
        getattr(proto, typed).append(x.item())
    return proto


def tensor_event(
    tag: str,
    step: int,
    value: float,
    dtype: str = "float32",
    *,
    content: bool = True,
    plugin: str | None = "scalars",
    wall_time: float = 1.7e9,
) -> event_pb2.Event:
    """An Event holding one tensor-valued scalar, as TF2 ``tf.summary.scalar`` writes it."""
    v = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(value, dtype, content=content))
    if plugin:
        v.metadata.plugin_data.plugin_name = plugin
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


def tf2_scalars(
    logdir: str | os.PathLike,
    points: Iterable[Point],
    dtype: str = "float32",
    *,
    content: bool = True,
    metadata: str = "first",
    wall_time: float = 1.7e9,
) -> Path:
    """Write tensor-valued scalars with TensorBoard's ``EventFileWriter`` into a new file.

    Args:
        logdir: run directory (created).
        points: ``(tag, step, value)``.
        dtype: a key of `TENSOR_DTYPES`.
        content: store values in ``tensor_content`` (bytes) rather than the typed field.
        metadata: "first" (plugin metadata on a tag's first point only, as TF2 does) or "every".
        wall_time: wall time of the first point; each next one is 1 s later.

    Returns:
        The event file written.
    """
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(logdir))
    w = EventFileWriter(str(logdir))
    seen: set[str] = set()
    for i, (tag, step, value) in enumerate(points):
        plugin = "scalars" if metadata == "every" or tag not in seen else None
        seen.add(tag)
        w.add_event(
            tensor_event(tag, step, value, dtype, content=content, plugin=plugin, wall_time=wall_time + i)
        )
    w.close()
    return _new_files(logdir, before)


def scalar_event(tag: str, step: int, value: float, wall_time: float = 1.7e9) -> event_pb2.Event:
    """An Event with one ``simple_value``, exactly as ``add_scalar`` writes it."""
    v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


def text_event(tag: str, text: str, step: int = 0, wall_time: float = 1.7e9) -> event_pb2.Event:
    """A text-plugin summary (a string tensor), as ``SummaryWriter.add_text`` writes it."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()])
    v = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    v.metadata.plugin_data.plugin_name = "text"
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


def run_info_event(info: dict, step: int = 0) -> event_pb2.Event:
    """Our collector's run description (JSON in a text summary under ``lrdoctor/run_info``)."""
    return text_event("lrdoctor/run_info", json.dumps(info), step)


def file_version_event(wall_time: float = 1.7e9) -> event_pb2.Event:
    """The first record of every event file."""
    return event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2")


def write_records(
    path: str | os.PathLike, payloads: Iterable[bytes | event_pb2.Event], *, mode: str = "wb"
) -> Path:
    """Frame ``payloads`` (bytes, or Events to serialize) as TFRecords into ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        writer = RecordWriter(f)
        for p in payloads:
            writer.write(p if isinstance(p, bytes) else p.SerializeToString())
    return path


def event_file_name(stamp: int | None = None, suffix: str = "test") -> str:
    """A TensorBoard-style file name, ``events.out.tfevents.<stamp>.<suffix>``."""
    return f"events.out.tfevents.{int(time.time()) if stamp is None else stamp}.{suffix}"


def record_offsets(path: str | os.PathLike) -> list[tuple[int, int]]:
    """``(header offset, payload length)`` of each record of a well-formed file."""
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, length))
        pos += 16 + length
    return out


def flip_bit(path: str | os.PathLike, offset: int, bit: int = 0) -> None:
    """Invert one bit of the byte at ``offset`` of ``path``, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))


def series_points(values: Sequence[float], tag: str = "loss", start: int = 0) -> list[Point]:
    """``[(tag, start + i, v) ...]``: one point per step."""
    return [(tag, start + i, v) for i, v in enumerate(values)]
