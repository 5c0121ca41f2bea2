"""Event files written by a background thread: record framing and the writing thread.

The format is TensorBoard's: a sequence of records ::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

(little-endian), each data an ``Event`` proto, the first one carrying ``file_version``.
TensorBoard's protos define the payload; the framing is written here (a dozen lines) so that
writing needs neither TensorFlow nor TensorBoard's writer thread. Scalar events, the bulk of a
run, are serialized here too (`scalar_event`): the bytes protobuf would produce for
``Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value), ...]))``. With the
block's values laid out by numpy (`buffer.py`) this halves the writer thread's CPU time (5.2 ->
2.7 us per logged step of 4 values), which a busy machine takes from the training.

The training thread never touches the file: it hands *jobs* (callables returning events) to a
`BackgroundWriter`, whose thread runs them, frames the events, appends them and flushes the
file to the OS after each job, so a killed process loses at most the job being written. Jobs
travel on a `queue.SimpleQueue`, whose ``put`` is reentrant: a signal handler may enqueue the
last jobs even when it interrupts the training thread in the middle of a ``put``.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from itertools import count

import google_crc32c
from tensorboard.compat.proto import event_pb2

# A job returns events, as protos or already serialized.
Job = Callable[[], Iterable[event_pb2.Event | bytes]]

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_file_counter = count()
# How long close() and flush(wait=True) wait for the thread before giving up, in seconds.
WAIT_TIMEOUT_S = 60.0


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data`` (rotated right by 15 bits, plus a constant)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord: header, ``data``, footer."""
    header = _U64.pack(len(data))
    return header + _U32.pack(masked_crc32c(header)) + data + _U32.pack(masked_crc32c(data))


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of ``n`` (a negative int64 as its two's complement)."""
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def scalar_value_prefix(tag: str) -> bytes:
    """Serialized ``Summary.value`` entry of ``tag`` up to its float32 ``simple_value``.

    Append the 4 little-endian bytes of the value to get the whole entry.
    """
    tag_bytes = tag.encode()
    value = b"\x0a" + varint(len(tag_bytes)) + tag_bytes + b"\x15"  # Value.tag (1), simple_value (2)
    return b"\x0a" + varint(len(value) + 4) + value  # Summary.value (1)


def scalar_event(wall_time: float, step: int, values: bytes) -> bytes:
    """Serialized ``Event`` of ``step`` whose summary holds ``values`` (joined value entries).

    Fields in number order, zero ``wall_time``/``step`` left out, as protobuf writes them.
    """
    head = b"\x09" + _F64.pack(wall_time) if wall_time != 0.0 else b""  # wall_time (1)
    if step:
        head += b"\x10" + varint(step)  # step (2)
    return head + b"\x2a" + varint(len(values)) + values  # summary (5)


def event_file_name() -> str:
    """A TensorBoard-style event file name, unique within this process."""
    return (
        f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_file_counter)}"
    )


class CollectorError(RuntimeError):
    """The collector cannot start (its logdir cannot be created or written)."""


class BackgroundWriter:
    """Appends events to one new event file from a background thread.

    The file is created (and its ``file_version`` record written) in the constructor, so that an
    unwritable logdir is a clear `CollectorError` before training starts. Any later failure
    (disk full, file removed, a job raising) is kept in `error`; from then on jobs are dropped.
    The caller reports `error` (the training thread must not learn of it by an exception).

    Args:
        logdir: directory of the run; created if missing.
    """

    def __init__(self, logdir: str) -> None:
        try:
            os.makedirs(logdir, exist_ok=True)
            self.path = os.path.join(logdir, event_file_name())
            self._file = open(self.path, "xb")  # noqa: SIM115 -- closed by the thread
            self._file.write(frame(_file_version_event().SerializeToString()))
            self._file.flush()
        except OSError as e:
            raise CollectorError(f"cannot write event files in {logdir!r}: {e.strerror or e}") from None
        self.error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lrdoctor-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; its events are appended after those of earlier jobs."""
        if not self._closed:
            self._queue.put(job)

    def flush(self, timeout_s: float = WAIT_TIMEOUT_S) -> bool:
        """Wait until every job queued so far is written and flushed to the OS.

        Returns:
            True if that happened within ``timeout_s`` seconds.
        """
        if self._closed:
            return not self._thread.is_alive()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Write what is queued, then close the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if isinstance(item, threading.Event):
                item.set()
                continue
            if self.error is None:
                self._write(item)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            self.error = self.error or f"{self.path}: {e.strerror or e}"
        finally:
            try:
                self._file.close()
            except OSError as e:
                self.error = self.error or f"{self.path}: {e.strerror or e}"

    def _write(self, job: Job) -> None:
        try:
            data = b"".join(frame(ev if isinstance(ev, bytes) else ev.SerializeToString()) for ev in job())
            self._file.write(data)
            self._file.flush()
        except OSError as e:
            self.error = f"{self.path}: {e.strerror or e}"
        except Exception as e:  # a bug in a job must not stop training either
            self.error = f"{self.path}: {type(e).__name__}: {e}"


def _file_version_event() -> event_pb2.Event:
    return event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
