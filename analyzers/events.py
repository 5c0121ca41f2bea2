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

Speed: almost every record of a training log is one ``simple_value`` written by
``add_scalar``. `_simple_scalars` reads those straight from the bytes with numpy, for all
records of a read at once, after checking each against that exact layout; every other record
(and any that does not fit byte for byte) goes through protobuf. Both give identical points
(tested on every external file and on odd records).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, types_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from lrdoctor.analyzers.records import HEADER_BYTES, Buffer, Framed

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


# Field keys of the one record layout read by the vectorized fast path (protobuf wire format:
# field number << 3 | wire type): Event.wall_time (double), Event.step (varint), Event.summary,
# Summary.value, Summary.Value.tag, Summary.Value.simple_value (float32).
_KEY_WALL, _KEY_STEP, _KEY_SUMMARY, _KEY_VALUE, _KEY_TAG, _KEY_SIMPLE = 0x09, 0x10, 0x2A, 0x0A, 0x0A, 0x15
_FAST_MIN_BYTES = 20  # wall (9) + summary key/len (2) + value key/len (2) + tag key/len (2) + float (5)
_FAST_MAX_TAG_BYTES = 118  # keeps every nested length a one-byte varint
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)

Points = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps int64, values float64, wall times float64


@dataclass(slots=True)
class Parsed:
    """What the records of one read of one event file hold.

    Attributes:
        points: per tag, ``(steps, values, wall_times)`` in file order.
        plugins: tag -> plugin name of its first metadata, updated with this read's.
        hparams: HParams plugin values (session start info) or names (experiment).
        run_info: our collector's run description (`RUN_INFO_TAG`), later keys win.
        warnings: ``"path:offset: problem"`` lines.
    """

    points: dict[str, Points] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, object] = field(default_factory=dict)
    run_info: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Collected:
    """Scalar points of the protobuf path, with the index of the record each came from."""

    records: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)

    def add(self, record: int, step: int, value: float, wall_time: float) -> None:
        self.records.append(record)
        self.steps.append(step)
        self.values.append(value)
        self.wall_times.append(wall_time)


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


def _parse_protobuf(
    buf: Buffer, framed: Framed, which: np.ndarray, path: str, base_offset: int, out: Parsed
) -> dict[str, _Collected]:
    """Parse records ``which`` of ``framed`` with protobuf; hparams/run info go to ``out``."""
    collected: dict[str, _Collected] = {}
    Event = event_pb2.Event
    starts, lengths = framed.starts, framed.lengths
    for i in which.tolist():
        start = int(starts[i])
        offset = base_offset + start - HEADER_BYTES
        try:
            event = Event.FromString(buf.bytes_at(start, int(lengths[i])))
        except DecodeError:
            out.warnings.append(f"{path}:{offset}: record is not an Event proto; skipped")
            continue
        if not event.HasField("summary"):
            continue
        step, wall = event.step, event.wall_time
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                collected.setdefault(value.tag, _Collected()).add(i, step, value.simple_value, wall)
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
                    info = json.loads(value.tensor.string_val[0])
                except (ValueError, UnicodeDecodeError):
                    info = None
                if isinstance(info, dict):
                    out.run_info.update(info)
                else:
                    out.warnings.append(f"{path}:{offset}: unreadable {RUN_INFO_TAG} JSON object; skipped")
            elif kind == "tensor" and plugin not in _NON_SCALAR_PLUGINS:
                x = tensor_scalar(value.tensor)
                if x is not None:
                    collected.setdefault(value.tag, _Collected()).add(i, step, x, wall)
    return collected


def _factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, codes)`` with ``uniques[codes] == keys``; fast when few keys repeat a lot."""
    sample = np.unique(keys[:4096])
    codes = np.minimum(np.searchsorted(sample, keys), len(sample) - 1)
    if (sample[codes] == keys).all():
        return sample, codes
    return np.unique(keys, return_inverse=True)


def _simple_scalars(buf: Buffer, starts: np.ndarray, lengths: np.ndarray):
    """Vectorized reader of the commonest record: one ``simple_value`` in an Event with a step.

    That is what torch's ``SummaryWriter.add_scalar``, tensorboardX and TF1 write for each
    scalar: ``Event{wall_time, step, summary{value{tag, simple_value}}}`` with nothing else.
    Each record's bytes are checked against that exact layout (keys, nested lengths, end);
    anything else is left to protobuf.

    Returns:
        ``(rows, tags, codes, steps, values, walls)``: the indices (into ``starts``) of the
        records read, the distinct tag names, each row's index into ``tags``, and its point.
    """
    u8, last = buf.u8, len(buf.u8) - 1

    def at(pos: np.ndarray) -> np.ndarray:
        return u8[np.minimum(pos, last)]

    rows = np.flatnonzero((lengths >= _FAST_MIN_BYTES) & (u8[starts] == _KEY_WALL))
    d = starts[rows]
    has_step = at(d + 9) == _KEY_STEP
    step = np.zeros(len(d), dtype=np.uint64)
    nbytes = np.zeros(len(d), dtype=np.int64)
    more = has_step.copy()
    for j in range(10):  # a varint has at most 10 bytes
        if not more.any():
            break
        b = at(d + 10 + j)
        step |= np.where(more, b & 0x7F, 0).astype(np.uint64) << np.uint64(7 * j)
        nbytes += more
        more &= b >= 0x80
    q = d + 9 + np.where(has_step, 1 + nbytes, 0)  # the summary key
    tag_len = at(q + 5).astype(np.int64)
    ok = ~more & (at(q) == _KEY_SUMMARY) & (at(q + 2) == _KEY_VALUE) & (at(q + 4) == _KEY_TAG)
    ok &= (tag_len <= _FAST_MAX_TAG_BYTES) & (at(q + 1) == tag_len + 9) & (at(q + 3) == tag_len + 7)
    ok &= (at(q + 6 + tag_len) == _KEY_SIMPLE) & (q + 11 + tag_len == d + lengths[rows])
    rows, d, q, tag_len, step = rows[ok], d[ok], q[ok], tag_len[ok], step[ok]
    tag_at = q + 6

    # Group rows by tag bytes: hash 8 bytes at a time, then check every row against its
    # group's first row word by word (a collision would send those rows to protobuf).
    words = []
    key = tag_len.astype(np.uint64) * _HASH_MULT
    for k in range(0, int(tag_len.max(initial=0)), 8):
        left = np.clip(tag_len - k, 0, 8).astype(np.uint64)
        partial = (np.uint64(1) << ((left * np.uint64(8)) & np.uint64(63))) - np.uint64(1)
        keep = np.where(left >= 8, np.uint64(0xFFFFFFFFFFFFFFFF), partial)
        w = buf.u64(tag_at + k) & keep
        words.append(w)
        key = (key ^ w) * _HASH_MULT
        key ^= key >> np.uint64(29)
    uniq, codes = _factorize(key)
    counts = np.bincount(codes, minlength=len(uniq))
    first = np.argsort(codes, kind="stable")[np.cumsum(counts) - counts]  # each key's first row
    same = tag_len == tag_len[first][codes]
    for w in words:
        same &= w == w[first][codes]
    tags: list[str | None] = []
    for r in first.tolist():
        try:
            tags.append(buf.bytes_at(int(tag_at[r]), int(tag_len[r])).decode("utf-8"))
        except UnicodeDecodeError:  # protobuf rejects it too, with a warning
            tags.append(None)
    same &= np.array([t is not None for t in tags], dtype=bool)[codes]
    rows, d, q, tag_len, step, codes = rows[same], d[same], q[same], tag_len[same], step[same], codes[same]
    walls = buf.u64(d + 1).view(np.float64)
    values = buf.u32(q + 7 + tag_len).view(np.float32).astype(np.float64)
    return rows, tags, codes, step.view(np.int64), values, walls


def parse(
    buf: Buffer,
    framed: Framed,
    path: str,
    base_offset: int = 0,
    plugins: dict[str, str] | None = None,
    *,
    fast: bool = True,
) -> Parsed:
    """Turn the checked records of one read into scalar points, hparams and run info.

    Args:
        buf: the bytes read.
        framed: its records (`records.frame`).
        path: file name for warnings.
        base_offset: file offset of ``buf``'s first byte.
        plugins: tag -> plugin name remembered from earlier reads of this file.
        fast: use the vectorized reader for simple scalar records (False: protobuf for all,
            the reference the fast path is tested against).

    Returns:
        A `Parsed`; points of a tag are in file order whichever path read them.
    """
    out = Parsed(plugins=dict(plugins or {}))
    n = len(framed.starts)
    fast_points: dict[str, tuple[np.ndarray, ...]] = {}
    slow = np.arange(n)
    if fast and n:
        rows, tags, codes, steps, values, walls = _simple_scalars(buf, framed.starts, framed.lengths)
        is_fast = np.zeros(n, dtype=bool)
        is_fast[rows] = True
        slow = np.flatnonzero(~is_fast)
        order = np.argsort(codes, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(tags)))))
        for code, tag in enumerate(tags):
            sel = order[bounds[code] : bounds[code + 1]]
            if len(sel):
                fast_points[tag] = (rows[sel], steps[sel], values[sel], walls[sel])
    collected = _parse_protobuf(buf, framed, slow, path, base_offset, out)
    for tag in sorted(set(fast_points) | set(collected)):
        parts = [fast_points[tag]] if tag in fast_points else []
        if tag in collected:
            c = collected[tag]
            parts.append(
                (
                    np.asarray(c.records, dtype=np.int64),
                    np.asarray(c.steps, dtype=np.int64),
                    np.asarray(c.values, dtype=np.float64),
                    np.asarray(c.wall_times, dtype=np.float64),
                )
            )
        if len(parts) == 1:
            out.points[tag] = parts[0][1:]
            continue
        rec, steps, values, walls = (np.concatenate(a) for a in zip(*parts, strict=True))
        order = np.argsort(rec, kind="stable")  # back to file order
        out.points[tag] = (steps[order], values[order], walls[order])
    return out


def concat(parts: list[Parsed], plugins: dict[str, str]) -> Parsed:
    """One `Parsed` from those of consecutive reads of one file (points in file order)."""
    if len(parts) == 1:
        return parts[0]
    out = Parsed(plugins=dict(plugins))
    per_tag: dict[str, list[Points]] = {}
    for p in parts:
        for tag, pts in p.points.items():
            per_tag.setdefault(tag, []).append(pts)
        for k, v in p.hparams.items():
            if v is not None or k not in out.hparams:
                out.hparams[k] = v
        out.run_info.update(p.run_info)
        out.warnings.extend(p.warnings)
    for tag, chunks in sorted(per_tag.items()):
        out.points[tag] = (
            chunks[0] if len(chunks) == 1 else tuple(np.concatenate(c) for c in zip(*chunks, strict=True))
        )
    return out
